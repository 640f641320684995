"""One binary mask per image (Kvasir-SEG and the other OpenMMLab medical sets, semantic nucleus masks)
-> COCO instances by connected components (optionally split into train/val).

    python converters/binary2coco.py data/kvasir/images data/kvasir/masks --out-dir data/kvasir/coco \\
        --threshold 127 --min-area 20 --val-ratio 0.2

Right for separated objects (polyps, well-separated nuclei); wrong for touching nuclei, which become
one instance: use per-nucleus masks (mask2coco.py) or label maps (labels2coco.py) for those.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from nucleus_seg.converters.cli import add_coco_output_arguments, print_label_report, segmentation_form  # noqa: E402,E501
from nucleus_seg.converters.labels import LabelOptions  # noqa: E402
from nucleus_seg.converters.pipeline import labels2coco  # noqa: E402
from nucleus_seg.errors import InputError, run_cli  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", type=Path, help="folder of images")
    p.add_argument("masks", type=Path, help="folder of binary masks, one per image (same stem)")
    add_coco_output_arguments(p)
    p.add_argument("--mask-suffix", default="", help="mask stem = image stem + this (e.g. _mask)")
    p.add_argument("--min-area", type=int, default=0,
                   help="drop components under this many pixels (counted in the summary; default 0 keeps all)")
    p.add_argument("--threshold", type=float, default=0,
                   help="foreground = brightest colour channel > this (default 0: any non-zero pixel; "
                        "JPEG masks need ~127)")
    p.add_argument("--connectivity", type=int, choices=(4, 8), default=8,
                   help="pixels touching diagonally join one component with 8 (default)")
    args = p.parse_args(argv)
    if args.min_area < 0:
        raise InputError(None, f"--min-area must be >= 0, got {args.min_area}")
    options = LabelOptions(binary=True, threshold=args.threshold, connectivity=args.connectivity,
                           min_area=args.min_area)
    outputs, report, coco = labels2coco(args.images, args.masks, args.out_dir, options, args.image_root,
                                        args.mask_suffix, None, segmentation_form(args), args.val_ratio,
                                        args.seed, args.validate, args.overwrite, args.min_polygon_iou)
    print_label_report(report, coco, outputs, args.quiet)
    return 0


if __name__ == "__main__":
    run_cli(main)
