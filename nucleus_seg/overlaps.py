"""Resolve overlapping instances by score: each pixel belongs to the highest-scoring instance covering it.

Mask R-CNN predictions overlap; label maps (HoVer-Net, CellViT, the MoNuSeg / CoNSeP / PanNuke scorers)
do not. Resolving by score turns one into the other: an instance keeps the pixels of its own mask that
no higher-scoring instance covers. Equal scores go to the instance listed first.

Two inputs, neither with a full-size array per instance:

- mask crops (:class:`MaskCrop`, what the predictor and the tiler produce): :func:`resolve_overlaps`
  returns the kept instances with their resolved crops, and can also drop an instance left with less
  than ``min_kept_fraction`` of its own mask and suppress one whose mask IoU with a kept,
  higher-scoring instance exceeds ``max_mask_iou`` (output clean-up);
- COCO RLEs (the metrics' input): :func:`label_map_from_rles` returns one int32 H x W label map per
  image, with the same options.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .geometry import MaskCrop, crop_from_segmentation, crop_iou, paste_crop, rle_run_lengths_batch
from .inference.instances import Instances

# Side of the square cells of the spatial index that finds instances whose boxes may touch; nuclei
# are 10-40 px, so an instance falls in one to four cells.
_CELL = 64


def score_order(scores: Optional[Sequence[float]], n: int) -> np.ndarray:
    """Indices from the highest score to the lowest; ties (and ``scores=None``) keep list order."""
    if scores is None:
        return np.arange(n)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != n:
        raise ValueError(f"{len(scores)} scores for {n} instances")
    return np.argsort(-scores, kind="stable")


# ------------------------------------------------------------------------------------------ crops

@dataclass
class Resolved:
    """Instances left after resolving overlaps: ``keep`` indexes the input (ascending), ``masks[k]``
    is the resolved mask of instance ``keep[k]`` (tight crop, never empty)."""

    keep: np.ndarray
    masks: List[MaskCrop]


def _cells(crop: MaskCrop):
    for cy in range(crop.y0 // _CELL, (crop.y1 - 1) // _CELL + 1):
        for cx in range(crop.x0 // _CELL, (crop.x1 - 1) // _CELL + 1):
            yield cy, cx


def resolve_overlaps(masks: Sequence[MaskCrop], scores: Optional[Sequence[float]] = None,
                     min_kept_fraction: float = 0.0, max_mask_iou: Optional[float] = None) -> Resolved:
    """Give each pixel to the highest-scoring instance covering it.

    Instances are visited from the highest score down. One is dropped (and claims no pixel) when its
    mask IoU with a kept, higher-scoring instance is above ``max_mask_iou`` (a near-duplicate), or
    when the pixels left to it are fewer than ``min_kept_fraction`` of its own mask, or none. A kept
    instance loses exactly the pixels of kept higher-scoring instances; dropped ones take nothing.
    """
    order = score_order(scores, len(masks))
    areas = [m.area for m in masks]
    grid = defaultdict(list)  # cell -> kept instances whose box reaches into it
    kept: List[int] = []
    resolved = {}
    for i in order:
        crop = masks[i]
        if areas[i] == 0:
            continue
        near = {j for cell in _cells(crop) for j in grid.get(cell, ())}
        near = sorted(j for j in near if crop.x0 < masks[j].x1 and masks[j].x0 < crop.x1
                      and crop.y0 < masks[j].y1 and masks[j].y0 < crop.y1)
        if max_mask_iou is not None and any(crop_iou(crop, masks[j]) > max_mask_iou for j in near):
            continue
        own = crop.mask.copy()
        for j in near:  # clear the pixels of kept, higher-scoring instances
            other = masks[j]
            x0, y0 = max(crop.x0, other.x0), max(crop.y0, other.y0)
            x1, y1 = min(crop.x1, other.x1), min(crop.y1, other.y1)
            own[y0 - crop.y0:y1 - crop.y0, x0 - crop.x0:x1 - crop.x0] &= \
                ~other.mask[y0 - other.y0:y1 - other.y0, x0 - other.x0:x1 - other.x0]
        left = int(np.count_nonzero(own))
        if left == 0 or left < min_kept_fraction * areas[i]:
            continue
        resolved[i] = MaskCrop.from_mask(own, crop.x0, crop.y0)
        kept.append(i)
        for cell in _cells(crop):
            grid[cell].append(i)
    keep = np.array(sorted(kept), dtype=np.int64)
    return Resolved(keep, [resolved[i] for i in keep])


def resolve_instances(instances: Instances, min_kept_fraction: float = 0.0,
                      max_mask_iou: Optional[float] = None) -> Instances:
    """:func:`resolve_overlaps` on :class:`Instances`: the kept ones, with resolved masks and their
    boxes (the masks' new extents), in the input order."""
    res = resolve_overlaps(instances.masks, instances.scores, min_kept_fraction, max_mask_iou)
    return Instances(instances.scores[res.keep], instances.labels[res.keep], res.masks, None,
                     instances.height, instances.width)


# -------------------------------------------------------------------------------------------- RLE

def _segmented_cumsum(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum restarting at each segment (``segment`` sorted)."""
    total = np.cumsum(values)
    starts = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]]) if len(segment) else segment
    return total - np.repeat((total - values)[starts], np.diff(np.r_[starts, len(values)]))


def rle_runs(rles: Sequence[dict]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Foreground runs of compressed COCO RLEs as (owner, start, length) arrays.

    ``owner`` is the index of the RLE, ``start`` a column-major pixel index (x * height + y), as COCO
    RLE counts run; the counts of all RLEs are decoded together (:func:`rle_run_lengths_batch`).
    """
    runs, owner = rle_run_lengths_batch([r["counts"] for r in rles])
    start = _segmented_cumsum(runs, owner) - runs
    first = np.searchsorted(owner, owner)
    fg = ((np.arange(len(runs)) - first) % 2 == 1) & (runs > 0)  # runs alternate 0s, 1s, 0s, ...
    return owner[fg], start[fg], runs[fg]


def _rle_shape(rles: Sequence[dict], height: Optional[int], width: Optional[int]) -> Tuple[int, int]:
    if height is None or width is None:
        if not rles:
            raise ValueError("height and width are needed for an empty list")
        height, width = (int(v) for v in rles[0]["size"])
    for r in rles:
        if tuple(int(v) for v in r["size"]) != (height, width):
            raise ValueError(f"RLE of size {list(r['size'])} in a {height} x {width} image")
    return height, width


def _expand_runs(owner, start, length):
    """Pixel indices of every run (grouped by owner, as the runs are) and the owner of each pixel."""
    total = int(length.sum())
    offsets = np.cumsum(length) - length
    pixel = np.repeat(start - offsets, length) + np.arange(total, dtype=np.int64)
    return pixel, np.repeat(owner, length)


def label_map_from_rles(rles: Sequence[dict], height: Optional[int] = None, width: Optional[int] = None,
                        scores: Optional[Sequence[float]] = None, min_kept_fraction: float = 0.0,
                        max_mask_iou: Optional[float] = None) -> np.ndarray:
    """int32 H x W label map (Fortran order) of COCO RLEs: pixel value k + 1 for ``rles[k]``, 0 for background.

    A pixel covered by several instances goes to the highest score (``scores=None``: the first listed).
    ``min_kept_fraction`` and ``max_mask_iou`` drop instances as :func:`resolve_overlaps` does; an
    instance left with no pixel is absent from the map.
    """
    height, width = _rle_shape(rles, height, width)
    n = len(rles)
    if min_kept_fraction > 0 or max_mask_iou is not None:
        crops = [crop_from_segmentation(r, height, width) for r in rles]
        present = [i for i, c in enumerate(crops) if c is not None]
        res = resolve_overlaps([crops[i] for i in present],
                               None if scores is None else np.asarray(scores)[present],
                               min_kept_fraction, max_mask_iou)
        labels = np.zeros((height, width), dtype=np.int32, order="F")  # the same layout as below
        for k, crop in zip(res.keep, res.masks):
            paste_crop(labels, crop, present[k] + 1)
        return labels
    order = score_order(scores, n)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    owner, start, length = rle_runs(rles)
    pixel, pixel_owner = _expand_runs(owner, start, length)
    best = np.full(height * width, n, dtype=np.int64)  # rank of the winning instance, n = none
    np.minimum.at(best, pixel, rank[pixel_owner])
    label_of_rank = np.r_[order + 1, 0].astype(np.int32)
    # Column-major pixel order, as COCO RLE runs: (W, H) transposed is an (H, W) Fortran-ordered array
    # (copy it with np.ascontiguousarray where C order matters; a transposing copy costs more than the rest).
    return label_of_rank[best].reshape(width, height).T


__all__ = ["Resolved", "resolve_overlaps", "resolve_instances", "rle_runs", "label_map_from_rles",
           "score_order"]
