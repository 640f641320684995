"""QuPath GeoJSON exports (annotations, detections, cells) -> COCO instance JSON for the matching
images or tiles (optionally split into train/val).

    # a folder of images and a folder of their exports (<stem>.geojson), images referred to in place
    python converters/geojson2coco.py data/qupath/images data/qupath/geojson --out-dir data/qupath/coco

    # a region of a slide cut into 512 px tiles (written to <out-dir>/images/), objects clipped per tile
    python converters/geojson2coco.py slide.svs slide.geojson --out-dir data/qupath/coco \\
        --region 20000 14000 4096 4096 --tile 512 --classes Tumor Stroma Immune

Each Polygon / MultiPolygon object is one instance (holes kept), named by its QuPath classification.
Coordinates are QuPath's (full-resolution pixels, pixel-corner origin); pixels whose centres the
polygon covers are the instance, the exact inverse of this project's GeoJSON export. Invalid polygons
(self-intersecting, ...) and coordinates outside the image are errors naming the file and object.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from nucleus_seg.converters.cli import add_coco_output_arguments, print_label_report, segmentation_form  # noqa: E402,E501
from nucleus_seg.converters.geojson import DEFAULT_OBJECT_TYPES, DEFAULT_SLIDE_TILE, GeojsonOptions  # noqa: E402,E501
from nucleus_seg.converters.pipeline import geojson2coco  # noqa: E402
from nucleus_seg.errors import InputError, run_cli  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", type=Path, help="an image or slide file, or a folder of images")
    p.add_argument("geojson", type=Path, help="its QuPath GeoJSON export, or a folder of <stem>.geojson|.json")
    add_coco_output_arguments(p, image_root="the images folder; <out-dir>/images when tiles are cut")
    p.add_argument("--geojson-suffix", default="", help="export stem = image stem + this")
    p.add_argument("--region", type=int, nargs=4, metavar=("X", "Y", "W", "H"), default=None,
                   help="only this region (QuPath's full-resolution pixels); cut into tiles")
    p.add_argument("--tile", type=int, default=None,
                   help=f"cut the image / region into tiles of this side (default {DEFAULT_SLIDE_TILE} with "
                        "--region and for slides); objects are clipped to each tile")
    p.add_argument("--skip-empty", action="store_true", help="leave out tiles without any instance")
    p.add_argument("--object-types", nargs="+", default=list(DEFAULT_OBJECT_TYPES),
                   help="QuPath object types kept (default: annotation detection cell)")
    p.add_argument("--cell-boundary", action="store_true",
                   help="cells: the whole cell instead of its nucleus (nucleusGeometry, the default)")
    names = p.add_mutually_exclusive_group()
    names.add_argument("--classes", nargs="+", default=None,
                       help="categories in this order; objects of other classes are skipped "
                            "(default: every class found, sorted)")
    names.add_argument("--single-class", action="store_true", help="every object is a 'nucleus'")
    p.add_argument("--unclassified", default="nucleus",
                   help="class of unclassified objects (default: nucleus; '' skips them)")
    p.add_argument("--min-area", type=int, default=0,
                   help="drop instances (after clipping to a tile) under this many pixels")
    args = p.parse_args(argv)
    if args.min_area < 0:
        raise InputError(None, f"--min-area must be >= 0, got {args.min_area}")
    options = GeojsonOptions(object_types=tuple(args.object_types), cell_boundary=args.cell_boundary,
                             classes=args.classes, unclassified=args.unclassified or None,
                             single_class=args.single_class, min_area=args.min_area)
    outputs, report, coco = geojson2coco(args.images, args.geojson, args.out_dir, options, args.image_root,
                                         args.geojson_suffix, args.region, args.tile,
                                         segmentation_form(args), args.val_ratio, args.seed,
                                         args.validate, args.overwrite, args.skip_empty,
                                         args.min_polygon_iou)
    print_label_report(report, coco, outputs, args.quiet)
    return 0


if __name__ == "__main__":
    run_cli(main)
