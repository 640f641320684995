"""Score COCO instance results (a ``*.segm.json`` / ``*.bbox.json``) against a COCO GT JSON.

    python tools/evaluate.py --gt instance_val.json --pred results.segm.json [--per-image]
                             [--out-csv per_image.csv] [--out-json scores.json] [--overwrite]

Prints AJI, AJI+, PQ, DQ, SQ, F1, precision, recall, Dice, mPQ/bPQ (PanNuke reference protocol) and
per-class PQ when the GT has more than one category -- of the cleaned output: predictions scoring at least
the threshold, overlaps resolved by score, slivers and near-duplicates dropped (``--raw``: the thresholded
predictions rasterised into label maps by score; ``--scoring overlap-aware``: as given) -- and COCO
segm/bbox AP over all predictions (the raw ranked list) at the largest --max-dets and at 100. The threshold
is --score-thr, else the calibration of --calibration (calibration.json or a checkpoint), else the
calibration.json beside --pred, else 0.5; the one used is printed with its source. Malformed input ends
with one line ``error: <file>: <problem>`` and exit status 2.
Definitions: docs/metrics.md. The work is done by :mod:`nucleus_seg.evaluation`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nucleus_seg.errors import run_cli  # noqa: E402
from nucleus_seg.evaluation import evaluate_calibrated, format_report, json_safe, per_image_csv  # noqa: E402
from nucleus_seg.fileio import atomic_write_json, atomic_write_text, check_writable  # noqa: E402
from nucleus_seg.metrics.dataset import DEFAULT_MAX_DETS  # noqa: E402
from nucleus_seg.metrics.instance import SCORING_MODES  # noqa: E402


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Nucleus metrics (AJI, PQ, Dice, mPQ/bPQ) and dense COCO AP "
                                             "of COCO results against a COCO GT JSON.")
    ap.add_argument("--gt", required=True, help="COCO instance GT JSON")
    ap.add_argument("--pred", required=True, help="COCO results JSON (segm or bbox)")
    ap.add_argument("--score-thr", type=float, default=None,
                    help="drop predictions below this score for the instance metrics (default: calibrated, "
                         "else 0.5; AP uses all)")
    ap.add_argument("--calibration", help="calibration.json or checkpoint whose calibrated threshold to use "
                                          "(default: calibration.json beside --pred, if any)")
    ap.add_argument("--raw", action="store_true",
                    help="score the thresholded predictions as given (no overlap clean-up)")
    ap.add_argument("--scoring", choices=[m.replace("_", "-") for m in SCORING_MODES], default="label-map",
                    help="label-map (default): predictions rasterised by score, a pixel belongs to one nucleus, "
                         "as HoVer-Net / PanNuke score; overlap-aware: the thresholded instances scored as "
                         "given, overlaps and all (implies --raw)")
    ap.add_argument("--max-dets", type=int, nargs="+", default=list(DEFAULT_MAX_DETS),
                    help="COCO maxDets; AP is reported at the largest and at 100 (default 100 300 1000)")
    ap.add_argument("--no-ap", action="store_true", help="skip COCO AP (faster)")
    ap.add_argument("--per-image", action="store_true", help="also print one row per image")
    ap.add_argument("--out-csv", help="write per-image metrics as CSV")
    ap.add_argument("--out-json", help="write summary, per-tissue and per-image metrics as JSON")
    ap.add_argument("--overwrite", action="store_true", help="replace existing --out-csv / --out-json")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    for path in (args.out_csv, args.out_json):
        if path:
            check_writable(path, args.overwrite)  # fail before the work, not after
    threshold, res = evaluate_calibrated(args.gt, args.pred, args.score_thr, args.calibration, args.raw,
                                         args.scoring.replace("-", "_"), args.max_dets, with_ap=not args.no_ap)
    print(threshold.describe())
    print(format_report(res, per_image=args.per_image))
    if args.out_csv:
        atomic_write_text(args.out_csv, per_image_csv(res), overwrite=args.overwrite)
        print(f"wrote {args.out_csv}")
    if args.out_json:
        atomic_write_json(args.out_json, json_safe(res), overwrite=args.overwrite, indent=1)
        print(f"wrote {args.out_json}")
    return 0


if __name__ == "__main__":
    run_cli(main)
