"""Validate a COCO instance JSON: structure, and every annotation decoded with pycocotools against
its source mask (RLE pixel-exact; polygons by IoU >= --min-polygon-iou).

    python converters/validate_coco.py data/coco/instance_all.json --image-root data/dsb2018_he/train
    python converters/validate_coco.py data/pannuke/coco/instance_fold1.json --pannuke "data/pannuke/Fold 1"
    python converters/validate_coco.py data/coco/instance_test.json --image-root data/dsb2018_he/test

Prints one line per problem ("problem: <file>: <what>") and exits 2 if there is any.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from nucleus_seg.converters.pipeline import raise_if_problems, validate_file  # noqa: E402
from nucleus_seg.converters.validate import DEFAULT_MIN_POLYGON_IOU  # noqa: E402
from nucleus_seg.errors import run_cli  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json", type=Path, help="COCO instance JSON")
    p.add_argument("--image-root", type=Path, default=None,
                   help="folder file_name is relative to; DSB masks are read from <image>/../../masks")
    p.add_argument("--pannuke", type=Path, default=None, help="PanNuke fold the JSON was made from")
    p.add_argument("--min-polygon-iou", type=float, default=DEFAULT_MIN_POLYGON_IOU)
    args = p.parse_args(argv)
    coco, problems = validate_file(args.json, args.image_root, args.pannuke, args.min_polygon_iou)
    raise_if_problems(problems, args.json)
    print(f"ok: {args.json}: {len(coco['images'])} images, {len(coco['annotations'])} annotations")
    return 0


if __name__ == "__main__":
    run_cli(main)
