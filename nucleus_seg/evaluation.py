"""Scoring COCO results files on disk against a COCO GT file, and the tables ``tools/evaluate.py``
prints. Definitions of the metrics: docs/metrics.md."""
from __future__ import annotations

import csv
import io
import math
from typing import Sequence

from .fileio import load_json
from .metrics.dataset import (DEFAULT_MAX_DETS, DEFAULT_SCORE_THR, coco_ap, describe_ap, describe_settings,
                              evaluate_instances)
from .metrics.instance import LABEL_MAP
from .validation import ProblemsError, load_results, validate_coco_gt, validate_results

LABELS = {"AJI_plus": "AJI+"}
SUMMARY_KEYS = ("AJI", "AJI_plus", "PQ", "DQ", "SQ", "F1", "precision", "recall", "Dice", "mPQ", "bPQ",
                "mPQ_strict", "bPQ_strict")
PER_IMAGE_COLUMNS = ("image_id", "file_name", "tissue", "n_gt", "n_pred", "TP", "FP", "FN", "AJI", "AJI_plus",
                     "PQ", "DQ", "SQ", "F1", "precision", "recall", "Dice")


def evaluate_files(gt_path, pred_path, score_thr=None, max_dets: Sequence[int] = DEFAULT_MAX_DETS,
                   with_ap: bool = True, scoring: str = LABEL_MAP, clean=None) -> dict:
    """Validate both files (ProblemsError naming the file and its first problem) and compute every
    metric; returns a dict with 'summary', 'coco', 'per_tissue', 'per_image', 'settings'.

    Instance metrics on label maps by default (``scoring``, see
    :func:`~nucleus_seg.metrics.dataset.evaluate_instances`); AP on all predictions (the raw ranked
    list) at the largest ``max_dets`` and at 100. ``clean`` (a
    :class:`~nucleus_seg.calibration.CleanUp`, whose threshold then replaces ``score_thr``): the
    instance metrics score the cleaned, non-overlapping output, as the tools write it."""
    if clean is not None:
        score_thr = clean.score_thr
    score_thr = DEFAULT_SCORE_THR if score_thr is None else score_thr
    gt = load_json(gt_path)
    validate_coco_gt(gt, gt_path)
    results = load_results(pred_path)
    problems = validate_results(results, gt["images"], gt["categories"], iou_type=None,
                                require_compressed_rle=False)
    if problems:
        raise ProblemsError(pred_path, problems)
    has_segm = bool(results) and all("segmentation" in r for r in results)
    has_bbox = bool(results) and all("bbox" in r for r in results)
    if not results:
        has_segm = True  # an empty result list scores 0 on every metric, it is not malformed
    out = {"settings": {"gt": str(gt_path), "pred": str(pred_path), "score_thr": score_thr, "scoring": scoring,
                        "max_dets": sorted(max_dets), "with_ap": with_ap},
           "summary": {}, "coco": {}, "per_tissue": {}, "per_image": []}
    if clean is not None:
        out["settings"]["clean_up"] = clean.describe()
    if has_segm:
        if clean is not None:
            from .calibration import clean_results
            instances = clean_results(results, gt["images"], clean)
        else:
            instances = results
        ev = evaluate_instances(gt, instances, score_thr=score_thr, scoring=scoring)
        out["summary"], out["per_tissue"], out["per_image"] = ev.summary, ev.per_tissue, ev.per_image
        out["settings"].update(ev.settings)
    if with_ap:
        for iou_type, present in (("segm", has_segm), ("bbox", has_bbox)):
            if present:
                stats = coco_ap(gt, results, iou_type, max_dets=max_dets)
                out["coco"].update({f"{iou_type}_{k}": v for k, v in stats.items()})
    return out


def evaluate_calibrated(gt_path, pred_path, score_thr=None, calibration=None, raw: bool = False,
                        scoring: str = LABEL_MAP, max_dets: Sequence[int] = DEFAULT_MAX_DETS,
                        with_ap: bool = True):
    """What ``tools/evaluate.py`` scores: the threshold from ``score_thr``, else ``calibration``, else the
    calibration.json beside ``pred_path``, else 0.5 (:func:`~nucleus_seg.calibration.threshold_for_results`);
    the cleaned output unless ``raw`` or overlap-aware scoring (defined on the predictions as given; the
    cleaned output has no overlaps). Returns (the ScoreThreshold, the :func:`evaluate_files` dict with
    ``settings['threshold_source']``)."""
    from .calibration import CleanUp, threshold_for_results

    threshold = threshold_for_results(score_thr, calibration, pred_path)
    clean = None if raw or scoring != LABEL_MAP else CleanUp(threshold.value)
    res = evaluate_files(gt_path, pred_path, threshold.value, max_dets, with_ap=with_ap, scoring=scoring,
                         clean=clean)
    res["settings"]["threshold_source"] = threshold.source
    return threshold, res


# ------------------------------------------------------------------------------------------ tables
def format_value(v) -> str:
    """Scores with 4 decimals; NaN (undefined) and pycocotools' -1 as n/a."""
    if isinstance(v, float):
        return "n/a" if math.isnan(v) or v == -1.0 else f"{v:.4f}"
    return str(v)


def format_table(rows, headers) -> str:
    """A text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[format_value(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def json_safe(obj):
    """A structure JSON can hold: NaN (undefined) becomes null, numpy scalars plain numbers."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalar
        return json_safe(obj.item())
    return obj


def per_image_columns(res: dict) -> list:
    columns = list(PER_IMAGE_COLUMNS)
    if res["per_image"] and "mPQ" in res["per_image"][0]:
        columns += ["mPQ", "bPQ", "mPQ_strict", "bPQ_strict"]
    return columns


def describe_report(res: dict) -> str:
    """The lines above the tables: what was scored, how (scoring mode, score threshold, PanNuke
    protocol) and at which maxDets each AP column is read."""
    settings = res["settings"]
    lines = [f"{settings['pred']} vs {settings['gt']}", describe_settings(settings)]
    lines.append(describe_ap(settings["max_dets"]) if settings.get("with_ap", True) else "COCO AP: not computed")
    return "\n".join(lines)


def format_report(res: dict, per_image: bool = False) -> str:
    """The lines that say how the figures were computed, the summary table (instance metrics,
    per-class PQ, COCO AP, counts), the per-tissue table when there is one, and with ``per_image`` one
    row per image."""
    summary, coco = res["summary"], res["coco"]
    rows = [(LABELS.get(k, k), summary[k]) for k in SUMMARY_KEYS if k in summary]
    rows += [(k, v) for k, v in summary.items() if k.startswith("PQ_")]
    rows += list(coco.items())
    if summary:
        rows += [("images", summary["n_images"]),
                 ("GT / predicted nuclei", f"{summary['n_gt']} / {summary['n_pred']}")]
    parts = [describe_report(res), format_table(rows, ("metric", "value"))]
    if res["per_tissue"]:
        keys = [k for k in next(iter(res["per_tissue"].values())) if k != "n_images"]
        parts.append(format_table([(t, v["n_images"], *[v[k] for k in keys])
                                   for t, v in res["per_tissue"].items()], ("tissue", "images", *keys)))
    if per_image:
        columns = per_image_columns(res)
        parts.append(format_table([[r[c] for c in columns] for r in res["per_image"]],
                                  [LABELS.get(c, c) for c in columns]))
    return "\n\n".join(parts)


def per_image_csv(res: dict) -> str:
    """Per-image metrics as CSV text (undefined values empty)."""
    columns = per_image_columns(res)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in res["per_image"]:
        writer.writerow(["" if isinstance(r[c], float) and math.isnan(r[c]) else r[c] for c in columns])
    return buf.getvalue()


__all__ = ["evaluate_files", "format_value", "format_table", "json_safe",
           "per_image_columns", "describe_report", "format_report", "per_image_csv"]
