"""COCO results (this project's predictions) -> instance label maps, type maps and PanNuke-style
masks.npy, for the evaluation scripts of other projects.

    python converters/coco2labels.py work_dirs/pred/results.segm.json data/pannuke/coco/instance_fold3.json \\
        --out-dir work_dirs/pred/labels --score-thr 0.5 --pannuke

Writes <out-dir>/inst/<stem>.png (16-bit instance ids; .npy uint32 from id 65536),
<out-dir>/types/<stem>.png (category id per pixel) and with --pannuke <out-dir>/masks.npy
(N x H x W x 6 float64, rows in the order of the image list, channel 5 background). Overlapping
predictions are resolved by score: each pixel belongs to the most confident prediction covering it.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from nucleus_seg.converters.results import coco_results_to_label_maps, parse_channel_map  # noqa: E402
from nucleus_seg.errors import run_cli  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="COCO results JSON (a list of predictions with scores)")
    p.add_argument("images", type=Path, help="COCO file listing the images (ground truth or images2coco's)")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--score-thr", type=float, default=0.0,
                   help="drop predictions scoring below this (default 0: keep all)")
    p.add_argument("--pannuke", action="store_true", help="also write PanNuke-style masks.npy")
    p.add_argument("--channel", nargs="+", default=[], metavar="NAME=INDEX",
                   help="PanNuke channel (0-4) of categories not named as PanNuke's classes, e.g. nucleus=0")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    args = p.parse_args(argv)
    report = coco_results_to_label_maps(args.results, args.images, args.out_dir, args.score_thr,
                                        args.pannuke, parse_channel_map(args.channel), args.overwrite)
    print(report.summary())
    print(f"wrote {len(report.outputs)} files under {args.out_dir}")
    return 0


if __name__ == "__main__":
    run_cli(main)
