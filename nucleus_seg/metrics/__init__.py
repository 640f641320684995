"""Nucleus instance-segmentation metrics.

numpy/pycocotools core (usable without MMDetection):
    :mod:`nucleus_seg.metrics.instance` per-image PQ/DQ/SQ/F1, AJI, AJI+, Dice from RLEs;
    :mod:`nucleus_seg.metrics.dataset` dataset scoring of COCO results (mPQ/bPQ per tissue) and dense COCO AP.

mmengine metrics in :mod:`nucleus_seg.metrics.mmdet_metrics`, registered in mmdet's METRICS registry when that
module is imported (configs do it through ``custom_imports=dict(imports=['nucleus_seg.register'])``; it is kept
out of this package's import so that scoring a results file does not pay for importing MMDetection):
    ``NucleusMetric``   -> ``nucleus/AJI``, ``nucleus/PQ``, ... (``save_best='nucleus/PQ', rule='greater'``)
    ``DenseCocoMetric`` -> ``coco/segm_mAP`` etc. at the largest ``proposal_nums`` (1000 by default).
See docs/metrics.md.
"""
from .dataset import (DEFAULT_MAX_DETS, DEFAULT_SCORE_THR, NucleusEvaluation, coco_ap, dense_coco_stats,
                      evaluate_instances)
from .instance import (Overlaps, aggregated_jaccard, aggregated_jaccard_plus, foreground_dice, match_pq,
                       pairwise_overlaps, panoptic_quality, score_image)

__all__ = [
    "DEFAULT_MAX_DETS", "DEFAULT_SCORE_THR", "NucleusEvaluation", "coco_ap", "dense_coco_stats",
    "evaluate_instances", "Overlaps", "aggregated_jaccard", "aggregated_jaccard_plus",
    "foreground_dice", "match_pq", "pairwise_overlaps", "panoptic_quality", "score_image",
]
