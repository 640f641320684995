"""PanNuke fold (images.npy, masks.npy, types.npy) -> PNG images + COCO instance JSON.

    python converters/pannuke2coco.py "data/pannuke/Fold 1" --out-dir data/pannuke/coco [--single-class]

Writes <out-dir>/images/<name>_<index>.png and <out-dir>/instance_<name>.json (file_name relative to
<out-dir>); <name> defaults to the fold folder's name ("Fold 1" -> fold1).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from nucleus_seg.converters.pipeline import pannuke2coco  # noqa: E402
from nucleus_seg.converters.validate import DEFAULT_MIN_POLYGON_IOU  # noqa: E402
from nucleus_seg.errors import run_cli  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fold_dir", type=Path, help="folder holding images.npy, masks.npy, types.npy (any depth)")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--name", default=None, help="prefix of image files and JSON (default: fold folder name)")
    p.add_argument("--single-class", action="store_true", help="map all 5 classes to 'nucleus'")
    p.add_argument("--polygons", action="store_true", help="store polygons instead of exact RLE")
    p.add_argument("--validate", action="store_true", help="decode every annotation and compare with masks.npy")
    p.add_argument("--min-polygon-iou", type=float, default=DEFAULT_MIN_POLYGON_IOU)
    p.add_argument("--overwrite", action="store_true", help="replace existing images and JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    out, report = pannuke2coco(args.fold_dir, args.out_dir, args.name, args.single_class,
                               "polygon" if args.polygons else "rle", args.validate, args.overwrite,
                               not args.quiet, args.min_polygon_iou)
    print(f"wrote {out}: {report.images} images, {report.annotations} annotations")
    return 0


if __name__ == "__main__":
    run_cli(main)
