"""Everything the configs need, registered into mmdet's registries in one import.

Configs pull it in with ``custom_imports = dict(imports=['nucleus_seg.register'])``; the tools import it
too. Importing also applies the compatibility fixes (:mod:`nucleus_seg.compat`).
"""
from . import compat  # noqa: F401  (fixes first: later imports may load checkpoints)
from . import datasets  # noqa: F401  NucleusCocoDataset
from . import time_budget  # noqa: F401  TrainTimeBudgetHook, InterruptibleEpochBasedTrainLoop, TimeBudgetCosineLR
from .metrics import mmdet_metrics  # noqa: F401  DenseCocoMetric, NucleusMetric
from .models import bbox_overlaps, point_head  # noqa: F401  ChunkedBboxOverlaps2D, CropMaskPointHead
from . import transforms  # noqa: F401  RandomRot90
