"""Dataset-level scoring of COCO instance results: nucleus metrics averaged over images, the PanNuke
mPQ / bPQ (per tissue, then over tissues, as the PanNuke reference evaluation), and COCO AP read from the
accumulated precision array at the largest ``maxDets`` (dense tissue) and at 100 (stock pycocotools).

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
from .instance import LABEL_MAP, score_image

DEFAULT_SCORE_THR = 0.5
DEFAULT_MAX_DETS = (100, 300, 1000)
# What pycocotools' summarize() and a stock CodaLab scorer report: AP at 100 detections per image.
STOCK_MAX_DETS = 100
UNKNOWN_TISSUE = "unknown"
# Dataset summary keys of the PanNuke scores averaged per tissue, then over tissues.
TISSUE_MEAN_KEYS = ("mPQ", "bPQ", "mPQ_strict", "bPQ_strict")

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
    settings: Dict[str, object] = field(default_factory=dict)


def is_pannuke_shaped(gt: dict) -> bool:
    """More than one category and a ``tissue`` on every image, as the PanNuke converter writes."""
    return len(gt.get("categories", [])) > 1 and bool(gt["images"]) and all("tissue" in im for im in gt["images"])


def describe_settings(settings: Dict[str, object]) -> str:
    """One line for the head of a printed table: scoring mode, score threshold, PanNuke protocol."""
    scoring = ("label maps (a pixel claimed by several predictions goes to the highest score)"
               if settings.get("scoring") == LABEL_MAP else "overlap-aware (instances scored as given)")
    text = f"instance metrics: {scoring}, score >= {settings.get('score_thr')}"
    if settings.get("multi_class"):
        averaging = "mean per tissue, then over tissues" if settings.get("pannuke") else \
            "no tissue in the GT: mean over images"
        text += (f"; mPQ/bPQ: PanNuke reference protocol (a class / image without GT is skipped, {averaging}); "
                 "*_strict: every false positive counted")
    return text


def describe_ap(max_dets: Sequence[int]) -> str:
    """The AP line of a printed table: which maxDets each AP column is read at."""
    return (f"COCO AP: all predictions ranked by score; mAP* at maxDets {max(with_stock_max_dets(max_dets))}, "
            f"mAP*@{STOCK_MAX_DETS} at maxDets {STOCK_MAX_DETS} (stock pycocotools / CodaLab)")


def evaluate_instances(gt: dict, results: Sequence[dict], score_thr: float = DEFAULT_SCORE_THR,
                       iou_thr: float = 0.5, image_ids: Optional[Sequence] = None,
                       scoring: str = LABEL_MAP) -> NucleusEvaluation:
    """Nucleus instance metrics of ``results`` (COCO segm results) against a COCO instance GT dict.

    Predictions with ``score < score_thr`` are dropped first; with ``scoring="label_map"`` (default) the
    rest are rasterised into one label map per image, the higher score winning each pixel
    (:func:`~nucleus_seg.metrics.instance.score_image`). Every GT image (or each of ``image_ids``) is
    scored, including those without predictions; crowd GT (``iscrowd=1``) is left out.

    With more than one category the PanNuke scores are added, following the PanNuke reference
    evaluation (Gamper et al. 2020): per image, a class without GT is skipped and mPQ is the mean over
    the other classes; bPQ skips an image without GT; mPQ and bPQ are averaged over the images of each
    tissue (``images[].tissue``; 'unknown' if absent), then over tissues; ``PQ_<class>`` is the mean
    over all images. ``mPQ_strict`` / ``bPQ_strict`` count every false positive instead.
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
    settings = {"scoring": scoring, "score_thr": score_thr, "iou_thr": iou_thr, "multi_class": multi_class,
                "pannuke": is_pannuke_shaped(gt)}

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
            class_ids=cat_ids if multi_class else None, iou_thr=iou_thr,
            pred_scores=[r["score"] for r in preds], scoring=scoring)
        row = {"image_id": img_id, "file_name": im.get("file_name", ""),
               "tissue": str(im.get("tissue", UNKNOWN_TISSUE))}
        row.update(scores)
        if multi_class:
            for key in ("class_pq", "class_pq_strict"):
                row[key] = {cat_names[c]: v for c, v in row[key].items()}
        per_image.append(row)

    summary: Dict[str, float] = {k: _nanmean(r[k] for r in per_image) for k in IMAGE_MEAN_KEYS}
    for k in ("TP", "FP", "FN", "n_gt", "n_pred"):
        summary[k] = int(sum(r[k] for r in per_image))
    summary["n_images"] = len(per_image)
    per_tissue: Dict[str, Dict[str, float]] = {}
    if multi_class:
        for t in sorted({r["tissue"] for r in per_image}):
            rows = [r for r in per_image if r["tissue"] == t]
            per_tissue[t] = {k: _nanmean(r[k] for r in rows) for k in TISSUE_MEAN_KEYS}
            per_tissue[t]["n_images"] = len(rows)
            for c in cat_ids:
                name = cat_names[c]
                per_tissue[t][f"PQ_{name}"] = _nanmean(r["class_pq"].get(name, math.nan) for r in rows)
        for k in TISSUE_MEAN_KEYS:  # PanNuke: the mean over the images of each tissue, then over tissues
            summary[k] = _nanmean(v[k] for v in per_tissue.values())
        for c in cat_ids:  # PanNuke: per-class PQ is the mean over all images, not per tissue
            name = cat_names[c]
            summary[f"PQ_{name}"] = _nanmean(r["class_pq"].get(name, math.nan) for r in per_image)
    return NucleusEvaluation(per_image, summary, per_tissue, settings)


# ------------------------------------------------------------------------------------------- COCO AP

def dense_coco_stats(coco_eval: COCOeval) -> Dict[str, float]:
    """mAP, mAP_50, mAP_75, mAP_s/m/l at the largest ``params.maxDets``, the same first three at 100
    detections (``mAP@100``, ``mAP_50@100``, ``mAP_75@100``) when 100 is one of the maxDets, and AR@k for
    every k.

    Read directly from ``coco_eval.eval['precision']`` (T x R x K x A x M) and ``['recall']``: pycocotools'
    ``summarize()`` computes its first AP at maxDets=100 whatever ``params.maxDets`` is, which caps a
    perfect result on an image with more than 100 nuclei below 1; ``mAP@100`` is that stock figure
    (``stats[0]``), reported next to the dense one. -1 where undefined, as pycocotools.
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
    if STOCK_MAX_DETS in p.maxDets:
        m_stock = list(p.maxDets).index(STOCK_MAX_DETS)
        stats[f"mAP@{STOCK_MAX_DETS}"] = mean_valid(precision[:, :, :, area["all"], m_stock])
        for thr, key in ((0.5, "mAP_50"), (0.75, "mAP_75")):
            t = at_iou(thr)
            stats[f"{key}@{STOCK_MAX_DETS}"] = (mean_valid(precision[t][:, :, :, area["all"], m_stock])
                                                if t is not None else -1.0)
    for m, k in enumerate(p.maxDets):
        stats[f"AR@{k}"] = mean_valid(recall[:, :, area["all"], m])
    for lbl, key in (("small", "AR_s"), ("medium", "AR_m"), ("large", "AR_l")):
        stats[f"{key}@{p.maxDets[m_last]}"] = mean_valid(recall[:, :, area[lbl], m_last])
    return stats


def with_stock_max_dets(max_dets: Sequence[int]) -> List[int]:
    """Sorted maxDets including 100, so the stock figure is always there to print beside the dense one."""
    return sorted({int(k) for k in max_dets} | {STOCK_MAX_DETS})


def _quiet_coco(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_ap(gt: dict, results: Sequence[dict], iou_type: str = "segm",
            max_dets: Sequence[int] = DEFAULT_MAX_DETS, image_ids: Optional[Sequence] = None) -> Dict[str, float]:
    """COCO AP/AR of ``results`` (all predictions, ranked by score, overlaps and all) at the largest of
    ``max_dets`` and at 100 (always evaluated too); see :func:`dense_coco_stats`."""
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
    coco_eval.params.maxDets = with_stock_max_dets(max_dets)
    if image_ids is not None:
        coco_eval.params.imgIds = list(image_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval.evaluate()
        coco_eval.accumulate()
    return dense_coco_stats(coco_eval)


__all__ = ["DEFAULT_SCORE_THR", "DEFAULT_MAX_DETS", "STOCK_MAX_DETS", "NucleusEvaluation",
           "is_pannuke_shaped", "describe_settings", "describe_ap", "evaluate_instances", "dense_coco_stats",
           "with_stock_max_dets", "coco_ap"]
