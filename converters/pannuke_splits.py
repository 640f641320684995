"""Training / validation files of the PanNuke 3-fold protocol, from the three converted folds.

    python converters/pannuke_splits.py data/pannuke/coco [--val-ratio 0.1] [--seed 0] [--overwrite]

Reads <coco-dir>/instance_fold{1,2,3}.json (converters/pannuke2coco.py) and writes, for split k of the
protocol (1: train folds 1+2, test fold 3; 2: 2+3 / 1; 3: 3+1 / 2), <coco-dir>/split<k>_train.json and
<coco-dir>/split<k>_val.json: the two training folds merged, with --val-ratio of their images held out
for validation (by image, in proportion within each tissue, fixed seed). The PanNuke configs validate and
select checkpoints on split<k>_val.json; the test fold is evaluated once, at the end (tools/test.py).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from nucleus_seg.converters.pipeline import DEFAULT_PANNUKE_VAL_RATIO, pannuke_splits  # noqa: E402
from nucleus_seg.errors import run_cli  # noqa: E402
from nucleus_seg.fileio import load_json  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("coco_dir", type=Path, help="folder holding instance_fold1.json ... instance_fold3.json")
    p.add_argument("--val-ratio", type=float, default=DEFAULT_PANNUKE_VAL_RATIO,
                   help=f"share of the training folds' images held out per tissue (default {DEFAULT_PANNUKE_VAL_RATIO})")
    p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace existing split files")
    args = p.parse_args(argv)
    for path in pannuke_splits(args.coco_dir, args.val_ratio, args.seed, args.overwrite):
        coco = load_json(path)
        print(f"wrote {path}: {len(coco['images'])} images, {len(coco['annotations'])} annotations")
    return 0


if __name__ == "__main__":
    run_cli(main)
