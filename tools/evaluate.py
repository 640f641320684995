"""Score COCO instance results (a ``*.segm.json`` / ``*.bbox.json``) against a COCO GT JSON.

    python tools/evaluate.py --gt instance_val.json --pred results.segm.json [--per-image]
                             [--out-csv per_image.csv] [--out-json scores.json] [--overwrite]

Prints AJI, AJI+, PQ, DQ, SQ, F1, precision, recall, Dice (predictions with score >= --score-thr), mPQ/bPQ
and per-class PQ when the GT has more than one category, and COCO segm/bbox AP at the largest --max-dets
(all predictions). Malformed input ends with one line ``error: <file>: <problem>`` and exit status 2.
Definitions: docs/metrics.md.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nucleus_seg.errors import InputError, run_cli  # noqa: E402
from nucleus_seg.fileio import atomic_write_json, atomic_write_text, check_writable, load_json  # noqa: E402
from nucleus_seg.results import load_results, validate_coco_gt, validate_results  # noqa: E402

LABELS = {"AJI_plus": "AJI+"}
PER_IMAGE_COLUMNS = ("image_id", "file_name", "tissue", "n_gt", "n_pred", "TP", "FP", "FN", "AJI", "AJI_plus",
                     "PQ", "DQ", "SQ", "F1", "precision", "recall", "Dice")


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Nucleus metrics (AJI, PQ, Dice, mPQ/bPQ) and dense COCO AP "
                                             "of COCO results against a COCO GT JSON.")
    ap.add_argument("--gt", required=True, help="COCO instance GT JSON")
    ap.add_argument("--pred", required=True, help="COCO results JSON (segm or bbox)")
    ap.add_argument("--score-thr", type=float, default=None,
                    help="drop predictions below this score for the instance metrics (default 0.5; AP uses all)")
    ap.add_argument("--max-dets", type=int, nargs="+", default=[100, 300, 1000],
                    help="COCO maxDets; AP is reported at the largest (default 100 300 1000)")
    ap.add_argument("--no-ap", action="store_true", help="skip COCO AP (faster)")
    ap.add_argument("--per-image", action="store_true", help="also print one row per image")
    ap.add_argument("--out-csv", help="write per-image metrics as CSV")
    ap.add_argument("--out-json", help="write summary, per-tissue and per-image metrics as JSON")
    ap.add_argument("--overwrite", action="store_true", help="replace existing --out-csv / --out-json")
    return ap.parse_args(argv)


def _fmt(v) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) or v == -1.0 else f"{v:.4f}"
    return str(v)


def _json_safe(obj):
    """NaN is not JSON: undefined scores become null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalar
        return _json_safe(obj.item())
    return obj


def format_table(rows, headers) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def evaluate_files(gt_path, pred_path, score_thr=None, max_dets=(100, 300, 1000), with_ap=True) -> dict:
    """Validate both files (InputError on the first problem) and compute every metric; returns a dict
    with 'summary', 'coco', 'per_tissue', 'per_image', 'settings'."""
    from nucleus_seg.metrics.dataset import DEFAULT_SCORE_THR, coco_ap, evaluate_instances

    score_thr = DEFAULT_SCORE_THR if score_thr is None else score_thr
    gt = load_json(gt_path)
    validate_coco_gt(gt, gt_path)
    results = load_results(pred_path)
    problems = validate_results(results, gt["images"], gt["categories"], iou_type=None,
                                require_compressed_rle=False)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise InputError(pred_path, f"{problems[0]}{more}")
    has_segm = bool(results) and all("segmentation" in r for r in results)
    has_bbox = bool(results) and all("bbox" in r for r in results)
    if not results:
        has_segm = True  # an empty result list scores 0 on every metric, it is not malformed
    out = {"settings": {"gt": str(gt_path), "pred": str(pred_path), "score_thr": score_thr,
                        "max_dets": sorted(max_dets)},
           "summary": {}, "coco": {}, "per_tissue": {}, "per_image": []}
    if has_segm:
        ev = evaluate_instances(gt, results, score_thr=score_thr)
        out["summary"], out["per_tissue"], out["per_image"] = ev.summary, ev.per_tissue, ev.per_image
    if with_ap:
        for iou_type, present in (("segm", has_segm), ("bbox", has_bbox)):
            if present:
                stats = coco_ap(gt, results, iou_type, max_dets=max_dets)
                out["coco"].update({f"{iou_type}_{k}": v for k, v in stats.items()})
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    for path in (args.out_csv, args.out_json):
        if path:
            check_writable(path, args.overwrite)  # fail before the work, not after
    res = evaluate_files(args.gt, args.pred, args.score_thr, args.max_dets, with_ap=not args.no_ap)
    summary, coco = res["summary"], res["coco"]
    rows = [(LABELS.get(k, k), summary[k]) for k in
            ("AJI", "AJI_plus", "PQ", "DQ", "SQ", "F1", "precision", "recall", "Dice", "mPQ", "bPQ") if k in summary]
    rows += [(k, v) for k, v in summary.items() if k.startswith("PQ_")]
    rows += [(k, v) for k, v in coco.items()]
    if summary:
        rows += [("images", summary["n_images"]), ("GT / predicted nuclei", f"{summary['n_gt']} / {summary['n_pred']}")]
    ap_note = "no AP" if args.no_ap else f"AP: all predictions, maxDets={max(args.max_dets)}"
    print(f"{args.pred} vs {args.gt} (instance metrics: score >= {res['settings']['score_thr']}; {ap_note})")
    print(format_table(rows, ("metric", "value")))
    if res["per_tissue"]:
        keys = [k for k in next(iter(res["per_tissue"].values())) if k != "n_images"]
        print()
        print(format_table([(t, v["n_images"], *[v[k] for k in keys]) for t, v in res["per_tissue"].items()],
                           ("tissue", "images", *keys)))
    columns = list(PER_IMAGE_COLUMNS)
    if res["per_image"] and "mPQ" in res["per_image"][0]:
        columns += ["mPQ", "bPQ"]
    if args.per_image:
        print()
        print(format_table([[r[c] for c in columns] for r in res["per_image"]], [LABELS.get(c, c) for c in columns]))
    if args.out_csv:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for r in res["per_image"]:
            writer.writerow(["" if isinstance(r[c], float) and math.isnan(r[c]) else r[c] for c in columns])
        atomic_write_text(args.out_csv, buf.getvalue(), overwrite=args.overwrite)
        print(f"wrote {args.out_csv}")
    if args.out_json:
        atomic_write_json(args.out_json, _json_safe(res), overwrite=args.overwrite, indent=1)
        print(f"wrote {args.out_json}")
    return 0


if __name__ == "__main__":
    run_cli(main)
