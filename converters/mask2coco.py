"""DSB / TCGA mask folders -> COCO instance JSON (optionally split into train/val).

    python converters/mask2coco.py data/dsb2018_he/train --out-dir data/coco [--val-ratio 0.2 --seed 0]
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from nucleus_seg.converters.cli import add_coco_output_arguments, segmentation_form  # noqa: E402
from nucleus_seg.converters.pipeline import mask2coco, print_lines  # noqa: E402
from nucleus_seg.errors import run_cli  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, help="folder(s) of <id>/images/<id>.png + <id>/masks/*.png")
    add_coco_output_arguments(p, image_root="the input folder")
    p.add_argument("--workers", type=int, default=0, help="worker processes over images")
    args = p.parse_args(argv)
    outputs, report = mask2coco(args.inputs, args.out_dir, args.image_root, segmentation_form(args),
                                args.val_ratio, args.seed, args.workers, args.validate, args.overwrite,
                                not args.quiet, args.min_polygon_iou)
    if not args.quiet:
        print_lines(report.notes, "note: ")
        print_lines([f"{m}: empty mask skipped" for m in report.empty_masks], "note: ")
    print(report.summary())
    for path in outputs:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
