"""Nucleus instance-segmentation metrics.

numpy/pycocotools core (usable without MMDetection):
    :mod:`nucleus.metrics.instance` per-image PQ/DQ/SQ/F1, AJI, AJI+, Dice from RLEs;
    :mod:`nucleus.metrics.dataset` dataset scoring of COCO results (mPQ/bPQ per tissue) and dense COCO AP.

mmengine metrics, registered in mmdet's METRICS registry when MMDetection is installed, so that a config
can use them with ``custom_imports=dict(imports=['nucleus.metrics'])``:
    ``NucleusMetric``   -> ``nucleus/AJI``, ``nucleus/PQ``, ... (``save_best='nucleus/PQ', rule='greater'``)
    ``DenseCocoMetric`` -> ``coco/segm_mAP`` etc. at the largest ``proposal_nums`` (1000 by default).
See docs/metrics.md.
"""
from importlib.util import find_spec

from .dataset import (DEFAULT_MAX_DETS, DEFAULT_SCORE_THR, NucleusEvaluation, coco_ap, dense_coco_stats,
                      evaluate_instances, to_rle)
from .instance import (Overlaps, aggregated_jaccard, aggregated_jaccard_plus, foreground_dice, match_pq,
                       pairwise_overlaps, panoptic_quality, score_image)

__all__ = [
    "DEFAULT_MAX_DETS", "DEFAULT_SCORE_THR", "NucleusEvaluation", "coco_ap", "dense_coco_stats",
    "evaluate_instances", "to_rle", "Overlaps", "aggregated_jaccard", "aggregated_jaccard_plus",
    "foreground_dice", "match_pq", "pairwise_overlaps", "panoptic_quality", "score_image",
]

# Registration must happen on import (that is what custom_imports does). Where MMDetection is not
# installed the numpy core still works; where it is installed but broken, the import error surfaces.
if find_spec("mmdet") is not None and find_spec("mmcv") is not None:
    from .mmdet_metrics import DenseCocoMetric, NucleusMetric  # noqa: F401  (registers both)

    __all__ += ["NucleusMetric", "DenseCocoMetric"]
