"""Per-image instance metrics for nuclei: PQ (DQ x SQ), F1/precision/recall, AJI, AJI+, pixel Dice.

Everything is computed from run-length encoded masks (pycocotools RLE), so instances may overlap and no
full-image mask is ever built per pair: ``pycocotools.mask.iou`` skips pairs whose boxes do not touch and
compares run lengths for the rest; the intersection area is recovered exactly from IoU and the two areas.
Definitions and references are in docs/metrics.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_utils

# Predictions are compared against all GT in chunks of this many, which bounds the dense IoU block
# pycocotools returns (chunk x n_gt doubles) for images with many thousands of instances.
_IOU_CHUNK = 1024


@dataclass(frozen=True)
class Overlaps:
    """Sparse pairwise overlap of GT and predicted instances: only pairs with a non-empty intersection."""

    gt_area: np.ndarray    # (n_gt,) int64 pixel counts
    pred_area: np.ndarray  # (n_pred,) int64
    gt_idx: np.ndarray     # (k,) index into GT for each overlapping pair
    pred_idx: np.ndarray   # (k,) index into predictions
    inter: np.ndarray      # (k,) int64 intersection area of the pair

    @property
    def n_gt(self) -> int:
        return len(self.gt_area)

    @property
    def n_pred(self) -> int:
        return len(self.pred_area)

    @property
    def union(self) -> np.ndarray:
        return self.gt_area[self.gt_idx] + self.pred_area[self.pred_idx] - self.inter

    @property
    def iou(self) -> np.ndarray:
        return self.inter / self.union

    def subset(self, gt_keep: np.ndarray, pred_keep: np.ndarray) -> "Overlaps":
        """Overlaps restricted to the GT / predictions selected by two boolean masks (re-indexed)."""
        gt_new = np.cumsum(gt_keep) - 1
        pred_new = np.cumsum(pred_keep) - 1
        pair_keep = gt_keep[self.gt_idx] & pred_keep[self.pred_idx]
        return Overlaps(self.gt_area[gt_keep], self.pred_area[pred_keep],
                        gt_new[self.gt_idx[pair_keep]], pred_new[self.pred_idx[pair_keep]],
                        self.inter[pair_keep])


# pycocotools 2.0.11 + numpy 2: mask.area() of a list of more than 255 RLEs raises OverflowError
# ("out of bounds for uint8"), so areas are taken in chunks of 255.
_AREA_CHUNK = 255


def _areas(rles: Sequence[dict]) -> np.ndarray:
    rles = list(rles)
    parts = [np.asarray(mask_utils.area(rles[i:i + _AREA_CHUNK]), dtype=np.int64).reshape(-1)
             for i in range(0, len(rles), _AREA_CHUNK)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def pairwise_overlaps(gt_rles: Sequence[dict], pred_rles: Sequence[dict]) -> Overlaps:
    """Intersections of every GT/prediction pair that overlaps, from compressed RLEs of one image."""
    gt_area, pred_area = _areas(gt_rles), _areas(pred_rles)
    empty = np.zeros(0, dtype=np.int64)
    # Empty masks overlap nothing; leaving them out also avoids 0/0 inside pycocotools.
    gt_nz = np.flatnonzero(gt_area > 0)
    pred_nz = np.flatnonzero(pred_area > 0)
    if len(gt_nz) == 0 or len(pred_nz) == 0:
        return Overlaps(gt_area, pred_area, empty, empty, empty)
    gts = [gt_rles[i] for i in gt_nz]
    crowd = [0] * len(gts)
    g_parts, p_parts, i_parts = [], [], []
    for start in range(0, len(pred_nz), _IOU_CHUNK):
        chunk = pred_nz[start:start + _IOU_CHUNK]
        iou = np.asarray(mask_utils.iou([pred_rles[i] for i in chunk], gts, crowd)).reshape(len(chunk), len(gts))
        p_loc, g_loc = np.nonzero(iou > 0)
        if len(p_loc) == 0:
            continue
        v = iou[p_loc, g_loc]
        p, g = chunk[p_loc], gt_nz[g_loc]
        # iou = I / (a + b - I)  =>  I = iou * (a + b) / (1 + iou); exact after rounding for any image size
        # a double can index (relative error ~1e-16 on areas << 2**52).
        inter = np.rint(v * (gt_area[g] + pred_area[p]) / (1.0 + v)).astype(np.int64)
        g_parts.append(g)
        p_parts.append(p)
        i_parts.append(inter)
    if not g_parts:
        return Overlaps(gt_area, pred_area, empty, empty, empty)
    return Overlaps(gt_area, pred_area, np.concatenate(g_parts), np.concatenate(p_parts),
                    np.concatenate(i_parts))


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else math.nan


def match_pq(ov: Overlaps, iou_thr: float = 0.5):
    """One-to-one matches with IoU > ``iou_thr`` as (gt_idx, pred_idx, iou) arrays.

    For non-overlapping instances IoU > 0.5 makes matches unique (Kirillov et al. 2019). COCO results may
    overlap (duplicates), so if a GT or a prediction still has several candidates, the highest-IoU pairs
    are kept greedily and the rest count as unmatched.
    """
    iou = ov.iou
    cand = np.flatnonzero(iou > iou_thr)
    g, p, v = ov.gt_idx[cand], ov.pred_idx[cand], iou[cand]
    if len(np.unique(g)) == len(g) and len(np.unique(p)) == len(p):
        return g, p, v
    order = np.lexsort((p, g, -v))  # highest IoU first; ties broken by index for determinism
    used_g, used_p, keep = set(), set(), []
    for k in order:
        if g[k] in used_g or p[k] in used_p:
            continue
        used_g.add(g[k])
        used_p.add(p[k])
        keep.append(k)
    keep = np.asarray(keep, dtype=np.int64)
    return g[keep], p[keep], v[keep]


def panoptic_quality(ov: Overlaps, iou_thr: float = 0.5) -> Dict[str, float]:
    """PQ = DQ x SQ with TP/FP/FN counts, plus object-level F1, precision and recall.

    NaN where undefined: PQ/DQ/SQ/F1 when the image has neither GT nor predictions; precision without
    predictions; recall without GT. SQ is 0 when there are instances but no match (as HoVer-Net), so that
    PQ = DQ x SQ holds for every image.
    """
    _, _, match_iou = match_pq(ov, iou_thr)
    tp = len(match_iou)
    fp = ov.n_pred - tp
    fn = ov.n_gt - tp
    iou_sum = float(match_iou.sum())
    if ov.n_gt + ov.n_pred == 0:
        dq = sq = math.nan
    else:
        dq = tp / (tp + 0.5 * fp + 0.5 * fn)
        sq = iou_sum / tp if tp else 0.0
    return {
        "PQ": dq * sq, "DQ": dq, "SQ": sq, "F1": dq,  # detection F1 at IoU > 0.5 is DQ by definition
        "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
        "TP": tp, "FP": fp, "FN": fn, "iou_sum": iou_sum,
    }


def aggregated_jaccard(ov: Overlaps) -> float:
    """AJI (Kumar et al. 2017): each GT is paired with its highest-IoU prediction (a prediction may serve
    several GT); C = sum |G n S*|, U = sum |G u S*| + area of GT with no overlapping prediction + area of
    predictions never chosen. Ties go to the lower prediction index. NaN when the image is empty."""
    k = len(ov.inter)
    if k:
        iou = ov.iou
        order = np.lexsort((ov.pred_idx, -iou, ov.gt_idx))
        g_sorted = ov.gt_idx[order]
        first = order[np.r_[True, g_sorted[1:] != g_sorted[:-1]]]
        inter = int(ov.inter[first].sum())
        union = int(ov.union[first].sum())
        gt_paired = np.zeros(ov.n_gt, bool)
        gt_paired[ov.gt_idx[first]] = True
        pred_used = np.zeros(ov.n_pred, bool)
        pred_used[ov.pred_idx[first]] = True
    else:
        inter = union = 0
        gt_paired = np.zeros(ov.n_gt, bool)
        pred_used = np.zeros(ov.n_pred, bool)
    union += int(ov.gt_area[~gt_paired].sum()) + int(ov.pred_area[~pred_used].sum())
    return _ratio(inter, union)


def _max_iou_assignment(ov: Overlaps):
    """Unique GT/prediction pairs maximising the total IoU, among pairs that overlap.

    Solved per connected component of the overlap graph (almost all components are a single pair), so
    the Hungarian step only ever sees a few instances at a time.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    k = len(ov.inter)
    if k == 0:
        return np.zeros(0, np.int64)
    n_gt, n_pred = ov.n_gt, ov.n_pred
    graph = coo_matrix((np.ones(k), (ov.gt_idx, n_gt + ov.pred_idx)), shape=(n_gt + n_pred,) * 2)
    _, comp = connected_components(graph, directed=False)
    pair_comp = comp[ov.gt_idx]
    pairs_per_comp = np.bincount(pair_comp)
    single = pairs_per_comp[pair_comp] == 1
    chosen = [np.flatnonzero(single)]
    multi = np.flatnonzero(~single)
    if len(multi):
        iou = ov.iou
        multi = multi[np.argsort(pair_comp[multi], kind="stable")]
        bounds = np.flatnonzero(np.diff(pair_comp[multi])) + 1
        for block in np.split(multi, bounds):
            g_ids, g_loc = np.unique(ov.gt_idx[block], return_inverse=True)
            p_ids, p_loc = np.unique(ov.pred_idx[block], return_inverse=True)
            cost = np.zeros((len(g_ids), len(p_ids)))
            cost[g_loc, p_loc] = -iou[block]
            rows, cols = linear_sum_assignment(cost)
            lookup = {(r, c): b for r, c, b in zip(g_loc, p_loc, block)}
            chosen.append(np.asarray([lookup[rc] for rc in zip(rows, cols) if rc in lookup], np.int64))
    return np.concatenate(chosen)


def aggregated_jaccard_plus(ov: Overlaps) -> float:
    """AJI+ (Graham et al. 2019): as AJI but with a one-to-one pairing maximising total IoU, so a
    prediction is never counted in two unions (AJI's over-penalisation of merged nuclei)."""
    chosen = _max_iou_assignment(ov)
    inter = int(ov.inter[chosen].sum())
    union = int(ov.union[chosen].sum())
    gt_paired = np.zeros(ov.n_gt, bool)
    gt_paired[ov.gt_idx[chosen]] = True
    pred_paired = np.zeros(ov.n_pred, bool)
    pred_paired[ov.pred_idx[chosen]] = True
    union += int(ov.gt_area[~gt_paired].sum()) + int(ov.pred_area[~pred_paired].sum())
    return _ratio(inter, union)


def union_rle(rles: Sequence[dict]) -> dict:
    """Union of many RLEs by pairwise (tree) merging: pycocotools merges a list left to right, which is
    quadratic in the number of masks as the running union grows; the tree keeps it n log n."""
    level = list(rles)
    while len(level) > 1:
        level = [mask_utils.merge(level[i:i + 2], intersect=False) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]


def foreground_dice(gt_rles: Sequence[dict], pred_rles: Sequence[dict]) -> float:
    """Pixel Dice 2|A n B| / (|A| + |B|) of the union of all GT vs all predicted masks; NaN if both empty."""
    if len(gt_rles) == 0 and len(pred_rles) == 0:
        return math.nan
    if len(gt_rles) == 0 or len(pred_rles) == 0:
        return 0.0 if (_areas(gt_rles).sum() + _areas(pred_rles).sum()) > 0 else math.nan
    gt_fg, pred_fg = union_rle(gt_rles), union_rle(pred_rles)
    both = mask_utils.merge([gt_fg, pred_fg], intersect=True)
    a, b, i = (int(mask_utils.area(r)) for r in (gt_fg, pred_fg, both))
    return _ratio(2 * i, a + b)


def score_image(gt_rles: Sequence[dict], pred_rles: Sequence[dict],
                gt_labels: Optional[Sequence[int]] = None, pred_labels: Optional[Sequence[int]] = None,
                class_ids: Optional[Sequence[int]] = None, iou_thr: float = 0.5) -> Dict[str, object]:
    """All instance metrics of one image (class-agnostic), plus per-class PQ when ``class_ids`` is given.

    ``class_pq`` maps each class id to that class's PQ, leaving out classes absent from both GT and
    prediction (PanNuke convention: they are skipped, not scored 0 or 1); ``mPQ`` is their mean.
    """
    ov = pairwise_overlaps(gt_rles, pred_rles)
    out: Dict[str, object] = {"n_gt": ov.n_gt, "n_pred": ov.n_pred}
    out.update(panoptic_quality(ov, iou_thr))
    out["AJI"] = aggregated_jaccard(ov)
    out["AJI_plus"] = aggregated_jaccard_plus(ov)
    out["Dice"] = foreground_dice(gt_rles, pred_rles)
    if class_ids is not None:
        gl = np.asarray(gt_labels if gt_labels is not None else [], dtype=np.int64).reshape(-1)
        pl = np.asarray(pred_labels if pred_labels is not None else [], dtype=np.int64).reshape(-1)
        class_pq: Dict[int, float] = {}
        for c in class_ids:
            g_keep, p_keep = gl == c, pl == c
            if not g_keep.any() and not p_keep.any():
                continue
            class_pq[int(c)] = panoptic_quality(ov.subset(g_keep, p_keep), iou_thr)["PQ"]
        out["class_pq"] = class_pq
        out["mPQ"] = float(np.mean(list(class_pq.values()))) if class_pq else math.nan
    return out


__all__: List[str] = [
    "Overlaps", "pairwise_overlaps", "match_pq", "panoptic_quality", "aggregated_jaccard",
    "aggregated_jaccard_plus", "foreground_dice", "score_image",
]
