"""Nucleus instance-segmentation metrics.

numpy/pycocotools core (usable without MMDetection):
    :mod:`nucleus_seg.metrics.instance` per-image PQ/DQ/SQ/F1, AJI, AJI+, Dice from RLEs, on label maps
        (default: predictions rasterised by score) or overlap-aware;
    :mod:`nucleus_seg.metrics.dataset` dataset scoring of COCO results (PanNuke mPQ/bPQ as the reference
        evaluation) and COCO AP at 1,000 and at 100 detections.

mmengine metrics in :mod:`nucleus_seg.metrics.mmdet_metrics`, registered in mmdet's METRICS registry when that
module is imported (configs do it through ``custom_imports=dict(imports=['nucleus_seg.register'])``; it is kept
out of this package's import so that scoring a results file does not pay for importing MMDetection):
    ``NucleusMetric``   -> ``nucleus/AJI``, ``nucleus/PQ``, ... (``save_best='nucleus/PQ', rule='greater'``)
    ``DenseCocoMetric`` -> ``coco/segm_mAP`` etc. at the largest ``proposal_nums`` (1000 by default),
                           ``coco/segm_mAP@100`` etc. at 100 (stock pycocotools).
See docs/metrics.md.
"""
from .dataset import (DEFAULT_MAX_DETS, DEFAULT_SCORE_THR, STOCK_MAX_DETS, NucleusEvaluation, coco_ap,
                      dense_coco_stats, describe_ap, describe_settings, evaluate_instances, is_pannuke_shaped)
from .instance import (LABEL_MAP, OVERLAP_AWARE, SCORING_MODES, Overlaps, aggregated_jaccard,
                       aggregated_jaccard_plus, foreground_dice, match_pq, pairwise_overlaps, panoptic_quality,
                       score_image)

__all__ = [
    "DEFAULT_MAX_DETS", "DEFAULT_SCORE_THR", "STOCK_MAX_DETS", "NucleusEvaluation", "coco_ap",
    "dense_coco_stats", "describe_ap", "describe_settings", "evaluate_instances", "is_pannuke_shaped",
    "LABEL_MAP", "OVERLAP_AWARE", "SCORING_MODES", "Overlaps", "aggregated_jaccard", "aggregated_jaccard_plus",
    "foreground_dice", "match_pq", "pairwise_overlaps", "panoptic_quality", "score_image",
]
