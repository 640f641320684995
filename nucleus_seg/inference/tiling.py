"""Tiled inference on images of any size, with seam-aware merging.

Tiles of ``tile`` x ``tile`` pixels step by ``tile - overlap``; the last tile of a row/column is
aligned to the image edge, so every tile has the full size (unless the image is smaller) and the
overlap between neighbours is at least ``overlap``.

Each tile has a *core*: the cores partition the image, with the boundary between two neighbours in
the middle of their shared strip. Merging (see :func:`merge_tile_instances`):

1. An instance from a tile is *clipped* if its mask touches an interior tile border (a border that
   is not the image border): the tile saw only part of it.
2. A tile *owns* an unclipped instance whose bounding-box centre lies in the tile's core. Any nucleus
   of diameter < overlap lies wholly inside the tile owning its centre, so it is kept exactly once
   and whole. Instances a tile does not own are dropped (their owner keeps them).
3. Real models disagree slightly between tiles, so two owned predictions of one nucleus can both
   survive near a core boundary: owned instances from different tiles that overlap (intersection
   over the smaller area >= ``dedup_thr``) keep only the higher-scoring one.
4. Clipped fragments are nuclei bigger than the overlap (or seen by no owner whole). Fragments from
   different tiles that agree where both tiles see pixels (IoU inside the tiles' shared window
   >= ``dedup_thr``) are unioned into one instance; the union is kept if its centre lies
   in the core of a tile that contributed and it does not overlap an instance kept in 2-3.

Only tile-sized arrays and per-nucleus crops are allocated; never a full-size array per nucleus.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..geometry import MaskCrop, intersection_area, union_crops
from .instances import Instances

# A predictor takes an RGB uint8 (h, w, 3) tile and returns Instances in tile coordinates.
Predictor = Callable[[np.ndarray], Instances]

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 96
DEFAULT_DEDUP_THR = 0.5


@dataclass(frozen=True)
class Tile:
    """A tile's pixel window [x0, x1) x [y0, y1) and its core window (all ints except the core)."""

    x0: int
    y0: int
    x1: int
    y1: int
    core: Tuple[float, float, float, float]  # cx0, cy0, cx1, cy1: half-open, may be fractional
    interior: Tuple[bool, bool, bool, bool]  # left, top, right, bottom border lies inside the image

    @property
    def shape(self) -> Tuple[int, int]:
        return (self.y1 - self.y0, self.x1 - self.x0)

    def in_core(self, x: float, y: float) -> bool:
        cx0, cy0, cx1, cy1 = self.core
        return cx0 <= x < cx1 and cy0 <= y < cy1


def _starts(length: int, tile: int, step: int) -> List[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)  # last tile flush with the edge
    return sorted(set(starts))


def tile_grid(height: int, width: int, tile: int = DEFAULT_TILE,
              overlap: int = DEFAULT_OVERLAP) -> List[Tile]:
    """Row-major tiles covering a ``height`` x ``width`` image; cores partition the image."""
    if tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
    step = tile - overlap

    def axis(length):
        s = _starts(length, tile, step)
        e = [min(a + tile, length) for a in s]
        # boundary between consecutive tiles: middle of the strip they share
        cuts = [0.0] + [(s[i + 1] + e[i]) / 2 for i in range(len(s) - 1)] + [float(length)]
        return s, e, cuts

    ys, ye, ycut = axis(height)
    xs, xe, xcut = axis(width)
    tiles = []
    for j in range(len(ys)):
        for i in range(len(xs)):
            tiles.append(Tile(xs[i], ys[j], xe[i], ye[j],
                              (xcut[i], ycut[j], xcut[i + 1], ycut[j + 1]),
                              (xs[i] > 0, ys[j] > 0, xe[i] < width, ye[j] < height)))
    return tiles


def _touches_interior_border(crop: MaskCrop, tile: Tile) -> bool:
    """``crop`` in image coordinates touches a border of ``tile`` that lies inside the image."""
    left, top, right, bottom = tile.interior
    return ((left and crop.x0 <= tile.x0) or (top and crop.y0 <= tile.y0)
            or (right and crop.x1 >= tile.x1) or (bottom and crop.y1 >= tile.y1))


def _centre(crop: MaskCrop) -> Tuple[float, float]:
    return ((crop.x0 + crop.x1) / 2, (crop.y0 + crop.y1) / 2)


class _BoxIndex:
    """Bucket grid over integer boxes: which stored boxes may intersect a query box."""

    def __init__(self, cell: int = 64):
        self.cell = cell
        self.buckets: Dict[Tuple[int, int], List[int]] = defaultdict(list)

    def _cells(self, box):
        x0, y0, x1, y1 = box
        c = self.cell
        for gy in range(y0 // c, (y1 - 1) // c + 1):
            for gx in range(x0 // c, (x1 - 1) // c + 1):
                yield gx, gy

    def add(self, key: int, box) -> None:
        for cell in self._cells(box):
            self.buckets[cell].append(key)

    def query(self, box) -> set:
        found = set()
        for cell in self._cells(box):
            found.update(self.buckets.get(cell, ()))
        return found


def _overlap_fraction(a: MaskCrop, b: MaskCrop) -> float:
    """Intersection over the smaller mask's area (1.0 if one contains the other)."""
    inter = intersection_area(a, b)
    if inter == 0:
        return 0.0
    return inter / min(a.area, b.area)


def _agreement_in_window(a: MaskCrop, b: MaskCrop, window) -> float:
    """IoU of two masks restricted to ``window`` (x0, y0, x1, y1): where two tiles both see pixels,
    fragments of one nucleus coincide, while their whole areas may differ a lot."""
    x0, y0 = max(a.x0, b.x0, window[0]), max(a.y0, b.y0, window[1])
    x1, y1 = min(a.x1, b.x1, window[2]), min(a.y1, b.y1, window[3])
    if x0 >= x1 or y0 >= y1:
        return 0.0
    wx0, wy0 = max(min(a.x0, b.x0), window[0]), max(min(a.y0, b.y0), window[1])
    wx1, wy1 = min(max(a.x1, b.x1), window[2]), min(max(a.y1, b.y1), window[3])
    ma = np.zeros((wy1 - wy0, wx1 - wx0), dtype=bool)
    mb = np.zeros_like(ma)
    for crop, m in ((a, ma), (b, mb)):
        cx0, cy0 = max(crop.x0, wx0), max(crop.y0, wy0)
        cx1, cy1 = min(crop.x1, wx1), min(crop.y1, wy1)
        if cx0 < cx1 and cy0 < cy1:
            m[cy0 - wy0:cy1 - wy0, cx0 - wx0:cx1 - wx0] = \
                crop.mask[cy0 - crop.y0:cy1 - crop.y0, cx0 - crop.x0:cx1 - crop.x0]
    inter = np.count_nonzero(ma & mb)
    union = np.count_nonzero(ma | mb)
    return inter / union if union else 0.0


@dataclass
class _Candidate:
    crop: MaskCrop
    score: float
    label: int
    tile_index: int


def merge_tile_instances(tiles: Sequence[Tile], per_tile: Iterable[Tuple[int, Instances]],
                         height: int, width: int,
                         dedup_thr: float = DEFAULT_DEDUP_THR) -> Instances:
    """Merge per-tile predictions (tile coordinates) into one image's instances; see module doc."""
    owned: List[_Candidate] = []
    fragments: List[_Candidate] = []
    for t_idx, inst in per_tile:
        tile = tiles[t_idx]
        for k, crop in enumerate(inst.masks):
            crop = crop.shifted(tile.x0, tile.y0)
            cand = _Candidate(crop, float(inst.scores[k]), int(inst.labels[k]), t_idx)
            if _touches_interior_border(crop, tile):
                fragments.append(cand)
            elif tile.in_core(*_centre(crop)):
                owned.append(cand)
            # else: an unclipped instance outside the core belongs to a neighbour, which sees it whole

    # (3) duplicates of one nucleus owned by two tiles: higher score wins
    kept: List[_Candidate] = []
    index = _BoxIndex()
    for cand in sorted(owned, key=lambda c: -c.score):
        duplicate = any(kept[j].tile_index != cand.tile_index
                        and _overlap_fraction(kept[j].crop, cand.crop) >= dedup_thr
                        for j in index.query(cand.crop.box))
        if not duplicate:
            index.add(len(kept), cand.crop.box)
            kept.append(cand)

    # (4) fragments: union overlapping pieces from different tiles, keep owned unions not seen whole
    parent = list(range(len(fragments)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    frag_index = _BoxIndex()
    for i, frag in enumerate(fragments):
        t_i = tiles[frag.tile_index]
        for j in frag_index.query(frag.crop.box):
            if fragments[j].tile_index == frag.tile_index:
                continue
            t_j = tiles[fragments[j].tile_index]
            shared = (max(t_i.x0, t_j.x0), max(t_i.y0, t_j.y0),
                      min(t_i.x1, t_j.x1), min(t_i.y1, t_j.y1))
            if _agreement_in_window(fragments[j].crop, frag.crop, shared) >= dedup_thr:
                parent[find(i)] = find(j)
        frag_index.add(i, frag.crop.box)
    groups: Dict[int, List[_Candidate]] = defaultdict(list)
    for i, frag in enumerate(fragments):
        groups[find(i)].append(frag)
    n_whole = len(kept)
    for members in groups.values():
        crop = union_crops([m.crop for m in members]) if len(members) > 1 else members[0].crop
        cx, cy = _centre(crop)
        if not any(tiles[m.tile_index].in_core(cx, cy) for m in members):
            continue
        if any(_overlap_fraction(kept[j].crop, crop) >= dedup_thr
               for j in index.query(crop.box) if j < n_whole):
            continue
        best = max(members, key=lambda m: m.score)
        index.add(len(kept), crop.box)
        kept.append(_Candidate(crop, best.score, best.label, best.tile_index))

    if not kept:
        return Instances.empty(height, width)
    merged = Instances(np.array([c.score for c in kept]), np.array([c.label for c in kept]),
                       [c.crop for c in kept], None, height, width)
    return merged.sorted_by_score()


def run_tiled(image: np.ndarray, predictor: Predictor, tile: int = DEFAULT_TILE,
              overlap: int = DEFAULT_OVERLAP, dedup_thr: float = DEFAULT_DEDUP_THR,
              progress: Optional[Callable[[int, int], None]] = None) -> Instances:
    """Run ``predictor`` on overlapping tiles of an RGB uint8 ``image`` and merge the results.

    ``progress(done, total)`` is called after each tile (e.g. to advance a tqdm bar).
    Returns instances in image coordinates, sorted by descending score.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    tiles = tile_grid(height, width, tile, overlap)

    def predictions():
        for t_idx, t in enumerate(tiles):
            # a view, not a copy; predictors must not keep it
            inst = predictor(image[t.y0:t.y1, t.x0:t.x1])
            if progress is not None:
                progress(t_idx + 1, len(tiles))
            yield t_idx, inst

    return merge_tile_instances(tiles, predictions(), height, width, dedup_thr)
