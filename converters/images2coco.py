"""Unlabeled image folder -> COCO JSON with images and categories only (annotations: []).

    python converters/images2coco.py data/dsb2018_he/test --ids data/dsb2018_he/test_img_ids.json \\
        --out data/coco/instance_test.json
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from nucleus_seg.converters.pipeline import images2coco, print_lines  # noqa: E402
from nucleus_seg.errors import run_cli  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="folder of images")
    p.add_argument("--out", type=Path, required=True, help="COCO JSON to write")
    p.add_argument("--ids", type=Path, default=None,
                   help="test_img_ids.json ([{file_name, id, height, width}]) whose ids to keep")
    p.add_argument("--image-root", type=Path, default=None,
                   help="file_name is relative to this folder (default: the input folder)")
    p.add_argument("--validate", action="store_true", help="check the output's structure")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--quiet", action="store_true", help="no notes about ignored files")
    args = p.parse_args(argv)
    out, coco, notes = images2coco(args.folder, args.out, args.ids, args.image_root,
                                   args.validate, args.overwrite)
    if not args.quiet:
        print_lines(notes, "note: ")
    print(f"wrote {out}: {len(coco['images'])} images, no annotations")
    return 0


if __name__ == "__main__":
    run_cli(main)
