"""Calibrated score thresholds and non-overlapping nucleus outputs.

Mask R-CNN returns a ranked list of overlapping detections; nucleus metrics (PQ, AJI) and every
consumer of label maps want one decision per pixel. Two steps turn one into the other:

1. **Clean-up** (:func:`clean_instances`, :func:`clean_results`): keep detections scoring at least the
   threshold, give each pixel to the highest-scoring nucleus covering it, drop a nucleus left with
   less than ``min_kept_fraction`` of its own mask, and suppress near-duplicates (mask IoU above
   ``max_mask_iou`` with a kept, higher-scoring nucleus). The resolving itself is
   :mod:`nucleus_seg.overlaps`; this module holds the output defaults.
2. **Calibration** (:func:`calibrate_score_threshold`): the score threshold that maximises PQ of the
   cleaned output on a validation set. It is stored in the checkpoint's ``meta`` (key
   ``nucleus_calibration``) and as ``calibration.json`` beside the checkpoint;
   :func:`score_threshold_for` finds it again for the tools, which print what they use and why.

COCO AP is computed on the raw ranked list (it integrates over all thresholds and needs the
low-scoring tail); everything that is a set of nuclei uses the cleaned, thresholded output.
"""
from __future__ import annotations

import os.path as osp
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from .errors import InputError
from .fileio import atomic_write_json, load_json

# What the tools used before calibration existed, and still use for an uncalibrated checkpoint.
DEFAULT_SCORE_THR = 0.5
# Output clean-up defaults (docs/calibration.md: measured on the validation tiles of the peer benchmark).
OUTPUT_MIN_KEPT_FRACTION = 0.5
OUTPUT_MAX_MASK_IOU = 0.5
# Thresholds tried by the calibration: 0.05 apart, the extremes left out (0 keeps every proposal
# fragment, 1 keeps nothing).
DEFAULT_CANDIDATES = tuple(round(t, 2) for t in np.arange(0.05, 0.951, 0.05))
CALIBRATION_FILE = "calibration.json"
META_KEY = "nucleus_calibration"


@dataclass(frozen=True)
class CleanUp:
    """How detections become output nuclei."""

    score_thr: float = DEFAULT_SCORE_THR
    min_kept_fraction: float = OUTPUT_MIN_KEPT_FRACTION
    max_mask_iou: Optional[float] = OUTPUT_MAX_MASK_IOU

    def describe(self) -> str:
        """The clean-up after the score threshold, in words."""
        dup = "off" if self.max_mask_iou is None else f"mask IoU > {self.max_mask_iou:g}"
        return (f"overlaps resolved by score, nuclei left with < {self.min_kept_fraction:g} of their mask "
                f"dropped, near-duplicates ({dup}) suppressed")


# ----------------------------------------------------------------------------------- clean-up
def clean_instances(instances, clean: CleanUp):
    """:class:`Instances` -> the non-overlapping output nuclei (score order, resolved masks)."""
    from .overlaps import resolve_instances

    kept = instances.select(np.flatnonzero(instances.scores >= clean.score_thr))
    return resolve_instances(kept, clean.min_kept_fraction, clean.max_mask_iou).sorted_by_score()


def clean_results(results: Sequence[dict], images: Sequence[dict], clean: CleanUp) -> List[dict]:
    """COCO segm results -> non-overlapping results (each image's nuclei in descending score).

    ``images`` are the COCO image records (``id``, ``height``, ``width``) the results refer to. Each
    kept record gets its resolved mask as compressed RLE, and the ``bbox`` and ``area`` of that mask;
    other keys are kept. Polygon or uncompressed-RLE segmentations are accepted."""
    from .geometry import crop_from_segmentation, crop_to_rle
    from .overlaps import resolve_overlaps

    size = {im["id"]: (int(im["height"]), int(im["width"])) for im in images}
    by_image: Dict[object, List[dict]] = defaultdict(list)
    for r in results:
        if r["score"] >= clean.score_thr:
            by_image[r["image_id"]].append(r)
    out: List[dict] = []
    for image_id in sorted(by_image, key=str):
        records = by_image[image_id]
        if image_id not in size:
            raise ValueError(f"result for unknown image_id {image_id!r}")
        h, w = size[image_id]
        crops = [crop_from_segmentation(r["segmentation"], h, w) for r in records]
        present = [i for i, c in enumerate(crops) if c is not None]
        res = resolve_overlaps([crops[i] for i in present], [records[i]["score"] for i in present],
                               clean.min_kept_fraction, clean.max_mask_iou)
        kept = []
        for k, crop in zip(res.keep, res.masks):
            rec = dict(records[present[k]])
            rec["segmentation"] = crop_to_rle(crop, h, w)
            rec["bbox"] = [float(v) for v in crop.xywh]
            rec["area"] = crop.area
            kept.append(rec)
        out += sorted(kept, key=lambda r: -r["score"])
    return out


# -------------------------------------------------------------------------------- calibration
def calibrate_score_threshold(gt: dict, results: Sequence[dict], candidates: Sequence[float] = DEFAULT_CANDIDATES,
                              min_kept_fraction: float = OUTPUT_MIN_KEPT_FRACTION,
                              max_mask_iou: Optional[float] = OUTPUT_MAX_MASK_IOU) -> dict:
    """The candidate score threshold whose cleaned output has the highest PQ against ``gt``.

    PQ is the scorer's (:func:`nucleus_seg.metrics.dataset.evaluate_instances`: mean over the images).
    Ties go to the lowest threshold (more recall for the same PQ). Returns the calibration record:
    ``score_thr``, its ``PQ``/``DQ``/``SQ``/``AJI``, ``PQ_at_default`` (at 0.5), the clean-up settings,
    ``n_images``/``n_gt`` and ``table`` (one row per candidate)."""
    from .metrics.dataset import evaluate_instances

    if not gt.get("images"):
        raise InputError(None, "calibration needs a validation set with images")
    if not any(not a.get("iscrowd", 0) for a in gt.get("annotations", [])):
        raise InputError(None, "calibration needs a validation set with annotated nuclei")
    candidates = sorted({float(t) for t in candidates} | {DEFAULT_SCORE_THR})
    table = []
    for thr in candidates:
        cleaned = clean_results(results, gt["images"], CleanUp(thr, min_kept_fraction, max_mask_iou))
        s = evaluate_instances(gt, cleaned, score_thr=thr).summary
        table.append({"score_thr": thr, "PQ": s["PQ"], "DQ": s["DQ"], "SQ": s["SQ"], "AJI": s["AJI"],
                      "n_pred": s["n_pred"]})
    best = max(table, key=lambda row: (np.nan_to_num(row["PQ"], nan=-1.0), -row["score_thr"]))
    at_default = next(row for row in table if row["score_thr"] == DEFAULT_SCORE_THR)
    return {"score_thr": best["score_thr"], "PQ": best["PQ"], "DQ": best["DQ"], "SQ": best["SQ"],
            "AJI": best["AJI"], "PQ_at_default": at_default["PQ"], "default_score_thr": DEFAULT_SCORE_THR,
            "min_kept_fraction": min_kept_fraction, "max_mask_iou": max_mask_iou,
            "n_images": len(gt["images"]),
            "n_gt": sum(1 for a in gt["annotations"] if not a.get("iscrowd", 0)), "table": table}


def format_calibration_table(calib: dict) -> str:
    lines = ["score_thr     PQ     DQ     SQ    AJI  nuclei"]
    for row in calib["table"]:
        mark = "  <- chosen" if row["score_thr"] == calib["score_thr"] else ""
        lines.append(f"{row['score_thr']:9.2f}  {row['PQ']:.3f}  {row['DQ']:.3f}  {row['SQ']:.3f}  "
                     f"{row['AJI']:.3f}  {row['n_pred']:6d}{mark}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ storage
def calibration_file_for(checkpoint) -> str:
    return osp.join(osp.dirname(osp.abspath(str(checkpoint))), CALIBRATION_FILE)


def read_meta_calibration(checkpoint) -> Optional[dict]:
    """The calibration stored in a checkpoint's meta, or None."""
    from .checkpoints import read_checkpoint

    meta = read_checkpoint(checkpoint).get("meta") or {}
    calib = meta.get(META_KEY)
    return dict(calib) if isinstance(calib, dict) and "score_thr" in calib else None


def check_calibration_writable(checkpoint, overwrite: bool = False) -> None:
    """InputError when ``checkpoint`` already has a calibration (meta or calibration.json) and not
    ``overwrite``."""
    if overwrite:
        return
    if read_meta_calibration(checkpoint) is not None:
        raise InputError(checkpoint, "already holds a calibration; pass --overwrite to replace it")
    side_file = calibration_file_for(checkpoint)
    if osp.exists(side_file) and load_json(side_file).get("checkpoint") == osp.basename(str(checkpoint)):
        raise InputError(side_file, "already exists for this checkpoint; pass --overwrite to replace it")


def write_calibration(checkpoint, calib: dict, overwrite: bool = False) -> List[str]:
    """Store ``calib`` in the checkpoint's meta and as calibration.json beside it; the paths written.

    The checkpoint is rewritten atomically with only ``meta[nucleus_calibration]`` added (weights and
    everything else unchanged). An existing calibration (in the meta or the file) is replaced only with
    ``overwrite``."""
    from .checkpoints import write_checkpoint_meta

    checkpoint = str(checkpoint)
    record = {**calib, "checkpoint": osp.basename(checkpoint),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    check_calibration_writable(checkpoint, overwrite)
    write_checkpoint_meta(checkpoint, META_KEY, record)
    side_file = calibration_file_for(checkpoint)
    atomic_write_json(side_file, record, overwrite=True, indent=1)
    return [checkpoint, side_file]


@dataclass(frozen=True)
class ScoreThreshold:
    """The threshold a tool uses and where it came from (printed by every tool)."""

    value: float
    source: str
    calibration: Optional[dict] = None

    def describe(self) -> str:
        return f"score threshold {self.value:g} ({self.source})"


def _describe_calibration(calib: dict, where: str) -> str:
    pq = calib.get("PQ")
    pq_text = f", val PQ {pq:.3f}" if isinstance(pq, (int, float)) else ""
    return f"calibrated on {calib.get('n_images', '?')} validation images{pq_text}; {where}"


def score_threshold_for(explicit: Optional[float] = None, checkpoint=None, calibration_file=None,
                        meta: Optional[dict] = None) -> ScoreThreshold:
    """The score threshold to use: ``explicit`` (--score-thr) wins, then the checkpoint's meta (``meta``
    when the caller has read the checkpoint already), then a calibration.json (``calibration_file``, or
    the one beside the checkpoint when it names that checkpoint), then the uncalibrated default 0.5."""
    if explicit is not None:
        return ScoreThreshold(float(explicit), "--score-thr")
    if checkpoint is not None:
        if meta is not None:
            calib = meta.get(META_KEY) if isinstance(meta.get(META_KEY), dict) else None
        else:
            calib = read_meta_calibration(checkpoint)
        if calib is not None:
            return ScoreThreshold(float(calib["score_thr"]),
                                  _describe_calibration(calib, f"from the meta of {checkpoint}"), calib)
    side_files = [calibration_file] if calibration_file else []
    if checkpoint is not None:
        side_files.append(calibration_file_for(checkpoint))
    for path in side_files:
        if path and osp.isfile(path):
            calib = load_json(path)
            if "score_thr" not in calib:
                raise InputError(path, "not a calibration file (no score_thr)")
            if checkpoint is not None and calib.get("checkpoint") not in (None, osp.basename(str(checkpoint))):
                continue  # made for another checkpoint of the same work dir
            return ScoreThreshold(float(calib["score_thr"]), _describe_calibration(calib, f"from {path}"), calib)
    return ScoreThreshold(DEFAULT_SCORE_THR, "default: not calibrated; run tools/test.py CONFIG CKPT --calibrate")


def threshold_for_results(explicit: Optional[float], calibration=None, results_path=None) -> ScoreThreshold:
    """The threshold for a results file (tools without a model): ``explicit``, else ``calibration`` (a
    calibration.json or a checkpoint), else the calibration.json beside ``results_path``, else 0.5."""
    if explicit is None and calibration is not None:
        if not osp.isfile(str(calibration)):
            raise InputError(calibration, "calibration file not found")
        if str(calibration).endswith(".json"):
            return score_threshold_for(None, None, calibration)
        return score_threshold_for(None, calibration)
    beside = osp.join(osp.dirname(osp.abspath(str(results_path))), CALIBRATION_FILE) if results_path else None
    return score_threshold_for(explicit, None, beside)


__all__ = ["DEFAULT_SCORE_THR", "OUTPUT_MIN_KEPT_FRACTION", "OUTPUT_MAX_MASK_IOU", "DEFAULT_CANDIDATES",
           "CALIBRATION_FILE", "META_KEY", "CleanUp", "clean_instances", "clean_results",
           "calibrate_score_threshold", "format_calibration_table", "calibration_file_for",
           "read_meta_calibration", "check_calibration_writable", "write_calibration", "ScoreThreshold", "score_threshold_for",
           "threshold_for_results"]
