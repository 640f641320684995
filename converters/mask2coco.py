"""DSB / TCGA mask folders -> COCO instance JSON (optionally split into train/val).

    python converters/mask2coco.py data/dsb2018_he/train --out-dir data/coco [--val-ratio 0.2 --seed 0]
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from nucleus_seg.converters.pipeline import mask2coco, print_lines  # noqa: E402
from nucleus_seg.converters.validate import DEFAULT_MIN_POLYGON_IOU  # noqa: E402
from nucleus_seg.errors import run_cli  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, help="folder(s) of <id>/images/<id>.png + <id>/masks/*.png")
    p.add_argument("--out-dir", type=Path, required=True,
                   help="writes instance_all.json, or instance_train.json + instance_val.json with --val-ratio")
    p.add_argument("--image-root", type=Path, default=None,
                   help="file_name is relative to this folder (default: the input folder)")
    p.add_argument("--polygons", action="store_true", help="store polygons instead of exact RLE")
    p.add_argument("--val-ratio", type=float, default=0.0, help="fraction of images for val (0: no split)")
    p.add_argument("--seed", type=int, default=0, help="split seed (same seed, same split everywhere)")
    p.add_argument("--workers", type=int, default=0, help="worker processes over images")
    p.add_argument("--validate", action="store_true", help="decode every annotation and compare with its mask")
    p.add_argument("--min-polygon-iou", type=float, default=DEFAULT_MIN_POLYGON_IOU)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no notes")
    args = p.parse_args(argv)
    outputs, report = mask2coco(args.inputs, args.out_dir, args.image_root,
                                "polygon" if args.polygons else "rle", args.val_ratio, args.seed,
                                args.workers, args.validate, args.overwrite, not args.quiet,
                                args.min_polygon_iou)
    if not args.quiet:
        print_lines(report.notes, "note: ")
        print_lines([f"{m}: empty mask skipped" for m in report.empty_masks], "note: ")
    print(report.summary())
    for path in outputs:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
