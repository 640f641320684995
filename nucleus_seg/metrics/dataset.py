"""Dataset-level scoring of COCO instance results: nucleus metrics averaged over images (and PanNuke
tissues), and COCO AP read at the largest ``maxDets`` from the accumulated precision array.

Inputs are plain COCO dicts/lists (a GT JSON and a results list), so a ``*.segm.json`` already on disk
can be scored without MMDetection. numpy/pycocotools (+ scipy for AJI+) only.
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..geometry import to_rle
from .instance import score_image

DEFAULT_SCORE_THR = 0.5
DEFAULT_MAX_DETS = (100, 300, 1000)
UNKNOWN_TISSUE = "unknown"

# Keys averaged over images for the summary; NaN per-image values (undefined) are skipped.
IMAGE_MEAN_KEYS = ("AJI", "AJI_plus", "PQ", "DQ", "SQ", "F1", "precision", "recall", "Dice")


def _nanmean(values) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


@dataclass
class NucleusEvaluation:
    per_image: List[dict]
    summary: Dict[str, float]
    per_tissue: Dict[str, Dict[str, float]] = field(default_factory=dict)


def evaluate_instances(gt: dict, results: Sequence[dict], score_thr: float = DEFAULT_SCORE_THR,
                       iou_thr: float = 0.5, image_ids: Optional[Sequence] = None) -> NucleusEvaluation:
    """Nucleus instance metrics of ``results`` (COCO segm results) against a COCO instance GT dict.

    Predictions with ``score < score_thr`` are dropped first. Every GT image (or each of ``image_ids``)
    is scored, including those without predictions; crowd GT (``iscrowd=1``) is left out. With more than
    one category the PanNuke scores are added: per-class PQ, mPQ and bPQ, each averaged over the images
    of a tissue (``images[].tissue``; 'unknown' if absent) and then over tissues.
    """
    images = {im["id"]: im for im in gt["images"]}
    if image_ids is None:
        image_ids = list(images)
    unknown = [i for i in image_ids if i not in images]
    if unknown:
        raise ValueError(f"image ids not in the GT: {unknown[:5]}")
    cats = sorted(gt.get("categories", []), key=lambda c: c["id"])
    cat_ids = [c["id"] for c in cats]
    cat_names = {c["id"]: str(c.get("name", c["id"])) for c in cats}
    multi_class = len(cat_ids) > 1

    gt_by_image = defaultdict(list)
    for ann in gt["annotations"]:
        if not ann.get("iscrowd", 0):
            gt_by_image[ann["image_id"]].append(ann)
    pred_by_image = defaultdict(list)
    for res in results:
        if res["image_id"] not in images:
            raise ValueError(f"result for unknown image_id {res['image_id']!r}")
        if res["score"] >= score_thr:
            pred_by_image[res["image_id"]].append(res)

    per_image = []
    for img_id in image_ids:
        im = images[img_id]
        h, w = im["height"], im["width"]
        gts, preds = gt_by_image.get(img_id, []), pred_by_image.get(img_id, [])
        scores = score_image(
            [to_rle(a["segmentation"], h, w) for a in gts], [to_rle(r["segmentation"], h, w) for r in preds],
            gt_labels=[a["category_id"] for a in gts], pred_labels=[r["category_id"] for r in preds],
            class_ids=cat_ids if multi_class else None, iou_thr=iou_thr)
        row = {"image_id": img_id, "file_name": im.get("file_name", ""),
               "tissue": str(im.get("tissue", UNKNOWN_TISSUE))}
        row.update(scores)
        if multi_class:
            row["bPQ"] = row["PQ"]  # binary PQ is the class-agnostic PQ of the image
            row["class_pq"] = {cat_names[c]: v for c, v in row["class_pq"].items()}
        per_image.append(row)

    summary: Dict[str, float] = {k: _nanmean(r[k] for r in per_image) for k in IMAGE_MEAN_KEYS}
    for k in ("TP", "FP", "FN", "n_gt", "n_pred"):
        summary[k] = int(sum(r[k] for r in per_image))
    summary["n_images"] = len(per_image)
    per_tissue: Dict[str, Dict[str, float]] = {}
    if multi_class:
        tissues = sorted({r["tissue"] for r in per_image})
        for t in tissues:
            rows = [r for r in per_image if r["tissue"] == t]
            per_tissue[t] = {"mPQ": _nanmean(r["mPQ"] for r in rows), "bPQ": _nanmean(r["bPQ"] for r in rows),
                             "n_images": len(rows)}
            for c in cat_ids:
                name = cat_names[c]
                per_tissue[t][f"PQ_{name}"] = _nanmean(r["class_pq"].get(name, math.nan) for r in rows)
        # PanNuke: average over the images of each tissue, then over tissues
        summary["mPQ"] = _nanmean(v["mPQ"] for v in per_tissue.values())
        summary["bPQ"] = _nanmean(v["bPQ"] for v in per_tissue.values())
        for c in cat_ids:
            key = f"PQ_{cat_names[c]}"
            summary[key] = _nanmean(v[key] for v in per_tissue.values())
    return NucleusEvaluation(per_image, summary, per_tissue)


# ------------------------------------------------------------------------------------------- COCO AP

def dense_coco_stats(coco_eval: COCOeval) -> Dict[str, float]:
    """mAP, mAP_50, mAP_75, mAP_s/m/l at the largest ``params.maxDets`` and AR@k for every k.

    Read directly from ``coco_eval.eval['precision']`` (T x R x K x A x M) and ``['recall']``: pycocotools'
    ``summarize()`` computes its first AP at maxDets=100 whatever ``params.maxDets`` is, which caps a
    perfect result on an image with more than 100 nuclei below 1. -1 where undefined, as pycocotools.
    """
    p = coco_eval.params
    precision, recall = coco_eval.eval["precision"], coco_eval.eval["recall"]
    m_last = int(np.argmax(p.maxDets))
    area = {lbl: i for i, lbl in enumerate(p.areaRngLbl)}

    def mean_valid(s) -> float:
        s = s[s > -1]
        return float(np.mean(s)) if s.size else -1.0

    def at_iou(thr):
        t = np.flatnonzero(np.isclose(p.iouThrs, thr))
        return t if len(t) else None

    stats = {"mAP": mean_valid(precision[:, :, :, area["all"], m_last])}
    for thr, key in ((0.5, "mAP_50"), (0.75, "mAP_75")):
        t = at_iou(thr)
        stats[key] = mean_valid(precision[t][:, :, :, area["all"], m_last]) if t is not None else -1.0
    for lbl, key in (("small", "mAP_s"), ("medium", "mAP_m"), ("large", "mAP_l")):
        stats[key] = mean_valid(precision[:, :, :, area[lbl], m_last])
    for m, k in enumerate(p.maxDets):
        stats[f"AR@{k}"] = mean_valid(recall[:, :, area["all"], m])
    for lbl, key in (("small", "AR_s"), ("medium", "AR_m"), ("large", "AR_l")):
        stats[f"{key}@{p.maxDets[m_last]}"] = mean_valid(recall[:, :, area[lbl], m_last])
    return stats


def _quiet_coco(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_ap(gt: dict, results: Sequence[dict], iou_type: str = "segm",
            max_dets: Sequence[int] = DEFAULT_MAX_DETS, image_ids: Optional[Sequence] = None) -> Dict[str, float]:
    """COCO AP/AR of ``results`` (all scores) at the largest of ``max_dets``; see :func:`dense_coco_stats`."""
    if iou_type not in ("segm", "bbox"):
        raise ValueError(f"iou_type must be 'segm' or 'bbox', got {iou_type!r}")
    gt = dict(gt)
    # pycocotools wants RLE in segm results; area/iscrowd must exist on GT annotations.
    gt["annotations"] = [dict(a, area=a.get("area", 0), iscrowd=a.get("iscrowd", 0), id=a.get("id", i + 1))
                         for i, a in enumerate(gt["annotations"])]
    if iou_type == "segm" or any("bbox" not in a for a in gt["annotations"]):
        sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
        for a in gt["annotations"]:
            rle = to_rle(a["segmentation"], *sizes[a["image_id"]])
            if not a["area"]:
                a["area"] = float(mask_utils.area(rle))
            if "bbox" not in a:
                a["bbox"] = mask_utils.toBbox(rle).tolist()
    coco_gt = _quiet_coco(gt)
    dets = copy.deepcopy(list(results))
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    for d in dets:
        if iou_type == "segm":
            # as mmdet's CocoMetric: without the box, the instance area used for s/m/l is the mask's
            d.pop("bbox", None)
            d["segmentation"] = to_rle(d["segmentation"], *sizes[d["image_id"]])
    if dets:
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(dets)
    else:  # loadRes cannot take an empty list; no detections scores 0 wherever there is GT
        coco_dt = _quiet_coco({"images": gt["images"], "categories": gt["categories"], "annotations": []})
    coco_eval = COCOeval(coco_gt, coco_dt, iou_type)
    coco_eval.params.maxDets = sorted(int(k) for k in max_dets)
    if image_ids is not None:
        coco_eval.params.imgIds = list(image_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval.evaluate()
        coco_eval.accumulate()
    return dense_coco_stats(coco_eval)


__all__ = ["DEFAULT_SCORE_THR", "DEFAULT_MAX_DETS", "NucleusEvaluation", "evaluate_instances",
           "dense_coco_stats", "coco_ap"]
