"""Per-image instance metrics for nuclei: PQ (DQ x SQ), F1/precision/recall, AJI, AJI+, pixel Dice, and
the PanNuke per-class PQ (mPQ) and binary PQ (bPQ).

Two ways to score, on the same RLE input:

- ``scoring="label_map"`` (default, as HoVer-Net, CellViT and the PanNuke / MoNuSeg / CoNSeP scorers):
  the predictions are rasterised into one label map per image, the higher score winning a pixel claimed
  by several (:mod:`nucleus_seg.overlaps`), and the GT likewise (a later annotation wins a pixel that
  several GT annotations claim, which is the PanNuke reference's rule for its channels). Overlaps are
  counted from the two int32 label maps.
- ``scoring="overlap_aware"``: instances are scored as given, overlaps and all; pairwise intersections
  come from ``pycocotools.mask.iou`` on the RLEs (no full-image mask per pair) and are recovered
  exactly from IoU and the two areas.

Definitions, the references each figure reproduces and their quirks are in docs/metrics.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_utils

from ..overlaps import label_map_from_rles

LABEL_MAP = "label_map"
OVERLAP_AWARE = "overlap_aware"
SCORING_MODES = (LABEL_MAP, OVERLAP_AWARE)

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

    @classmethod
    def from_label_maps(cls, gt_map: np.ndarray, pred_map: np.ndarray, n_gt: int, n_pred: int) -> "Overlaps":
        """Overlaps of two label maps (value k + 1 = instance k, 0 = background) by counting label pairs
        over the pixels where both are set; instances absent from a map have area 0."""
        order = "F" if gt_map.flags.f_contiguous and pred_map.flags.f_contiguous else "C"
        g, p = gt_map.ravel(order=order), pred_map.ravel(order=order)
        gt_area = np.bincount(g, minlength=n_gt + 1)[1:].astype(np.int64)
        pred_area = np.bincount(p, minlength=n_pred + 1)[1:].astype(np.int64)
        both = (g > 0) & (p > 0)
        key = g[both].astype(np.int64) * (n_pred + 1) + p[both]
        # Neighbouring pixels mostly share a pair: count runs of equal keys first, so the sort in
        # np.unique sees a few entries per column of each nucleus instead of every pixel.
        start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.zeros(0, np.int64)
        pair, run_pair = np.unique(key[start], return_inverse=True)
        inter = np.bincount(run_pair, weights=np.diff(np.r_[start, key.size]), minlength=len(pair))
        gt_idx, pred_idx = np.divmod(pair, n_pred + 1)
        return cls(gt_area, pred_area, gt_idx - 1, pred_idx - 1, np.rint(inter).astype(np.int64))

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
    """One-to-one matches with IoU > ``iou_thr`` as (gt_idx, pred_idx, iou) arrays, as HoVer-Net's and the
    PanNuke reference's ``get_fast_pq``:

    - ``iou_thr >= 0.5``: every pair with IoU > ``iou_thr``; for instances that do not overlap each
      other (label maps) such pairs are unique (Kirillov et al. 2019). Overlapping instances
      (``overlap_aware`` scoring) can give a GT or a prediction several such pairs; then the pairs kept
      are the one-to-one assignment among them with the largest total IoU.
    - ``iou_thr < 0.5``: the one-to-one assignment with the largest total IoU over all overlapping pairs
      (HoVer-Net's ``linear_sum_assignment``), of which the pairs with IoU > ``iou_thr`` are matches.
    """
    iou = ov.iou
    if iou_thr < 0.5:
        chosen = _max_iou_assignment(ov)
        chosen = chosen[iou[chosen] > iou_thr]
        return ov.gt_idx[chosen], ov.pred_idx[chosen], iou[chosen]
    cand = np.flatnonzero(iou > iou_thr)
    g, p = ov.gt_idx[cand], ov.pred_idx[cand]
    if len(np.unique(g)) != len(g) or len(np.unique(p)) != len(p):
        cand = _max_iou_assignment(ov, cand)
    return ov.gt_idx[cand], ov.pred_idx[cand], iou[cand]


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
    predictions never chosen. NaN when the image is empty.

    Equal IoUs go to the larger intersection, then to the lower prediction index: HoVer-Net's
    ``get_fast_aji`` takes the argmax of I / (U + 1e-6), which prefers the larger union among equal IoUs.
    """
    first = np.zeros(0, np.intp)
    if len(ov.inter):
        order = np.lexsort((ov.pred_idx, -ov.inter, -ov.iou, ov.gt_idx))
        g_sorted = ov.gt_idx[order]
        first = order[np.r_[True, g_sorted[1:] != g_sorted[:-1]]]
    return _aggregated_jaccard_of_pairs(ov, first)


def _aggregated_jaccard_of_pairs(ov: Overlaps, chosen: np.ndarray) -> float:
    """AJI and AJI+ once their pairs (indices into ``ov``) are chosen: sum |G n S| / (sum |G u S| +
    area of the GT in no pair + area of the predictions in no pair)."""
    gt_paired = np.zeros(ov.n_gt, bool)
    gt_paired[ov.gt_idx[chosen]] = True
    pred_paired = np.zeros(ov.n_pred, bool)
    pred_paired[ov.pred_idx[chosen]] = True
    inter = int(ov.inter[chosen].sum())
    union = int(ov.union[chosen].sum()) + int(ov.gt_area[~gt_paired].sum()) + int(ov.pred_area[~pred_paired].sum())
    return _ratio(inter, union)


def _max_iou_assignment(ov: Overlaps, pairs: Optional[np.ndarray] = None) -> np.ndarray:
    """Indices of unique GT/prediction pairs maximising the total IoU, among the overlapping pairs (or
    among ``pairs``, indices into them).

    Solved per connected component of the overlap graph (almost all components are a single pair), so
    the Hungarian step only ever sees a few instances at a time.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = np.arange(len(ov.inter)) if pairs is None else np.asarray(pairs, dtype=np.int64)
    k = len(pairs)
    if k == 0:
        return np.zeros(0, np.int64)
    n_gt, n_pred = ov.n_gt, ov.n_pred
    gt_idx, pred_idx = ov.gt_idx[pairs], ov.pred_idx[pairs]
    graph = coo_matrix((np.ones(k), (gt_idx, n_gt + pred_idx)), shape=(n_gt + n_pred,) * 2)
    _, comp = connected_components(graph, directed=False)
    pair_comp = comp[gt_idx]
    pairs_per_comp = np.bincount(pair_comp)
    single = pairs_per_comp[pair_comp] == 1
    chosen = [np.flatnonzero(single)]
    multi = np.flatnonzero(~single)
    if len(multi):
        iou = ov.iou[pairs]
        multi = multi[np.argsort(pair_comp[multi], kind="stable")]
        bounds = np.flatnonzero(np.diff(pair_comp[multi])) + 1
        for block in np.split(multi, bounds):
            g_ids, g_loc = np.unique(gt_idx[block], return_inverse=True)
            p_ids, p_loc = np.unique(pred_idx[block], return_inverse=True)
            cost = np.zeros((len(g_ids), len(p_ids)))
            cost[g_loc, p_loc] = -iou[block]
            rows, cols = linear_sum_assignment(cost)
            lookup = {(r, c): b for r, c, b in zip(g_loc, p_loc, block)}
            chosen.append(np.asarray([lookup[rc] for rc in zip(rows, cols) if rc in lookup], np.int64))
    return np.sort(pairs[np.concatenate(chosen)])


def aggregated_jaccard_plus(ov: Overlaps) -> float:
    """AJI+ (Graham et al. 2019): as AJI but with a one-to-one pairing maximising total IoU, so a
    prediction is never counted in two unions (AJI's over-penalisation of merged nuclei)."""
    return _aggregated_jaccard_of_pairs(ov, _max_iou_assignment(ov))


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
    return _dice(*(int(mask_utils.area(r)) for r in (gt_fg, pred_fg, both)))


def _dice(gt_pixels: int, pred_pixels: int, both: int) -> float:
    return _ratio(2 * both, gt_pixels + pred_pixels)


def _class_pq(ov: Overlaps, iou_thr: float) -> Tuple[float, float]:
    """(reference, strict) PQ of one class in one image.

    Reference (PanNuke's run.py): NaN -- skipped -- whenever the class has no GT in the image, so its
    false positives there are not counted. Strict: NaN only when the class has neither GT nor
    predictions; false positives on an image without GT of the class score 0.
    """
    if ov.n_gt + ov.n_pred == 0:
        return math.nan, math.nan
    pq = panoptic_quality(ov, iou_thr)["PQ"]
    return (pq if ov.n_gt else math.nan), pq


def _present(ov: Overlaps) -> Overlaps:
    """Overlaps of the instances that have pixels (in a label map, the others were covered completely)."""
    return ov.subset(ov.gt_area > 0, ov.pred_area > 0)


def score_image(gt_rles: Sequence[dict], pred_rles: Sequence[dict],
                gt_labels: Optional[Sequence[int]] = None, pred_labels: Optional[Sequence[int]] = None,
                class_ids: Optional[Sequence[int]] = None, iou_thr: float = 0.5,
                pred_scores: Optional[Sequence[float]] = None, scoring: str = LABEL_MAP) -> Dict[str, object]:
    """All instance metrics of one image (class-agnostic), plus the PanNuke scores when ``class_ids`` is given.

    ``scoring="label_map"`` rasterises the predictions by ``pred_scores`` (higher wins a pixel; without
    scores the earlier listed wins) and the GT by annotation order (later wins) before scoring;
    instances left without a pixel are gone. ``"overlap_aware"`` scores the instances as given.

    With ``class_ids``: ``class_pq`` maps each class id to its PQ under the PanNuke reference rule (left
    out when the image has no GT of the class), ``mPQ`` is their mean, ``bPQ`` the class-agnostic PQ
    (NaN when the image has no GT); ``class_pq_strict`` / ``mPQ_strict`` / ``bPQ_strict`` count every
    false positive (a class or image is left out only when it has neither GT nor predictions).
    """
    if scoring not in SCORING_MODES:
        raise ValueError(f"scoring must be one of {SCORING_MODES}, got {scoring!r}")
    gl = np.asarray(gt_labels if gt_labels is not None else [], dtype=np.int64).reshape(-1)
    pl = np.asarray(pred_labels if pred_labels is not None else [], dtype=np.int64).reshape(-1)
    if scoring == LABEL_MAP:
        size = next((r["size"] for r in list(gt_rles) + list(pred_rles)), None)
        height, width = (int(v) for v in size) if size is not None else (0, 0)
        gt_map = label_map_from_rles(gt_rles, height, width, np.arange(len(gt_rles)))
        pred_map = label_map_from_rles(pred_rles, height, width, pred_scores)
        ov = _present(Overlaps.from_label_maps(gt_map, pred_map, len(gt_rles), len(pred_rles)))
    else:
        ov = pairwise_overlaps(gt_rles, pred_rles)
    out: Dict[str, object] = {"n_gt": ov.n_gt, "n_pred": ov.n_pred}
    out.update(panoptic_quality(ov, iou_thr))
    out["AJI"] = aggregated_jaccard(ov)
    out["AJI_plus"] = aggregated_jaccard_plus(ov)
    if scoring == LABEL_MAP:
        out["Dice"] = _dice(np.count_nonzero(gt_map), np.count_nonzero(pred_map),
                            np.count_nonzero((gt_map > 0) & (pred_map > 0)))
    else:
        out["Dice"] = foreground_dice(gt_rles, pred_rles)
    if class_ids is None:
        return out

    class_pq: Dict[int, float] = {}
    class_pq_strict: Dict[int, float] = {}
    for c in class_ids:
        g_keep, p_keep = gl == c, pl == c
        if scoring == LABEL_MAP:
            # GT of the class rasterised on its own (the reference reads one channel per class); the
            # predictions of the class are their pixels in the image's single label map.
            gt_idx = np.flatnonzero(g_keep)
            gt_c = label_map_from_rles([gt_rles[i] for i in gt_idx], height, width, np.arange(len(gt_idx)))
            pred_c = np.where(np.r_[False, p_keep][pred_map], pred_map, 0)
            ov_c = _present(Overlaps.from_label_maps(gt_c, pred_c, len(gt_idx), len(pred_rles)))
        else:
            ov_c = ov.subset(g_keep, p_keep)
        ref, strict = _class_pq(ov_c, iou_thr)
        if not math.isnan(ref):
            class_pq[int(c)] = ref
        if not math.isnan(strict):
            class_pq_strict[int(c)] = strict
    out["class_pq"] = class_pq
    out["mPQ"] = float(np.mean(list(class_pq.values()))) if class_pq else math.nan
    out["class_pq_strict"] = class_pq_strict
    out["mPQ_strict"] = float(np.mean(list(class_pq_strict.values()))) if class_pq_strict else math.nan
    out["bPQ"] = out["PQ"] if ov.n_gt else math.nan
    out["bPQ_strict"] = out["PQ"]
    return out


__all__: List[str] = [
    "LABEL_MAP", "OVERLAP_AWARE", "SCORING_MODES", "Overlaps", "pairwise_overlaps", "match_pq",
    "panoptic_quality", "aggregated_jaccard", "aggregated_jaccard_plus", "foreground_dice", "score_image",
]
