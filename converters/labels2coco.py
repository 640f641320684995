"""Instance label maps (CoNSeP / Kumar / Lizard .mat, NuInsSeg TIFFs, label PNGs, HoVer-Net .npy)
-> COCO instance JSON (optionally split into train/val).

    python converters/labels2coco.py data/consep/Train/Images data/consep/Train/Labels \\
        --out-dir data/consep/coco --class-map data/consep/classes.json --val-ratio 0.2 --validate

Images and label files are paired by name (<stem>.png <-> <stem><--label-suffix>.mat|.npy|.png|.tif).
Every distinct non-zero id is one instance (ids need not be contiguous; a nucleus in several pieces
stays one instance). Types: a type map (majority per instance, HoVer-Net's rule) or a vector of one
type per instance; named by --class-map / --classes (type_<id> without).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from nucleus_seg.converters.cli import add_coco_output_arguments, print_label_report, segmentation_form  # noqa: E402,E501
from nucleus_seg.converters.labels import (DEFAULT_ID_KEY, DEFAULT_INST_KEY, DEFAULT_TYPE_KEY,  # noqa: E402
                                           LabelOptions, parse_class_map)
from nucleus_seg.converters.pipeline import labels2coco  # noqa: E402
from nucleus_seg.errors import InputError, run_cli  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", type=Path, help="folder of images")
    p.add_argument("labels", type=Path, help="folder of label files (.mat, .npy, .png, .tif)")
    add_coco_output_arguments(p)
    p.add_argument("--label-suffix", default="", help="label stem = image stem + this (e.g. _label)")
    p.add_argument("--inst-key", default=DEFAULT_INST_KEY, help=".mat variable of instance ids")
    p.add_argument("--type-key", default=None,
                   help=f".mat variable of types: a map or one type per instance (default: "
                        f"{DEFAULT_TYPE_KEY} where present)")
    p.add_argument("--id-key", default=DEFAULT_ID_KEY,
                   help=".mat variable of the ids a per-instance type vector refers to (Lizard: id)")
    p.add_argument("--type-dir", type=Path, default=None,
                   help="folder of type maps (<stem>.png|.tif|.npy) for label images without types")
    classes = p.add_mutually_exclusive_group()
    classes.add_argument("--class-map", type=Path, default=None,
                         help='type id -> class name: JSON {"1": "name"} or "<id> <name>" lines')
    classes.add_argument("--classes", nargs="+", metavar="ID=NAME", help="the class map inline")
    classes.add_argument("--single-class", action="store_true", help="ignore types: one class 'nucleus'")
    args = p.parse_args(argv)
    if args.type_key is not None and args.type_dir is not None:
        raise InputError(None, "give --type-key (.mat variable) or --type-dir (type map files), not both")
    class_map = parse_class_map(args.class_map if args.class_map else args.classes) \
        if (args.class_map or args.classes) else None
    options = LabelOptions(inst_key=args.inst_key, type_key=args.type_key or DEFAULT_TYPE_KEY,
                           type_key_required=args.type_key is not None, id_key=args.id_key,
                           class_map=class_map, single_class=args.single_class)
    outputs, report, coco = labels2coco(args.images, args.labels, args.out_dir, options, args.image_root,
                                        args.label_suffix, args.type_dir, segmentation_form(args),
                                        args.val_ratio, args.seed, args.validate, args.overwrite,
                                        args.min_polygon_iou)
    print_label_report(report, coco, outputs, args.quiet)
    return 0


if __name__ == "__main__":
    run_cli(main)
