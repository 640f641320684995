"""Seam matching: every nucleus on a tile seam comes out exactly once, even when tiles disagree.

Tiles arrive in row-major order (:class:`~nucleus_seg.inference.tiling.TileGrid`). A new tile's
predictions are matched with those of the earlier tiles that overlap it, one neighbour at a time,
inside the window the two tiles share (where both see the same pixels):

1. *Match*: one-to-one, greedily by IoU of the two masks restricted to the shared window
   (``match_iou``). A nucleus cut by one tile's border and whole in the other agrees there, as do
   two fragments of a nucleus wider than the overlap.
2. *Within tolerance*: real tiles draw one nucleus a pixel or two apart, which leaves small nuclei
   below the IoU threshold. Among the predictions left, two that both tiles see whole match if
   their IoU reaches ``match_iou`` when one is moved by up to ``tolerance`` px; a prediction cut
   by the border facing the other tile matches the other tile's prediction that lies within
   ``tolerance`` px of most of its pixels (a 2-pixel sliver of a nucleus the neighbour sees whole,
   moved by a pixel, shares no pixels with it).
3. Matches join predictions into *clusters* (one nucleus each, at most one prediction per tile;
   matches through two neighbours - four-tile corners - merge clusters).

A cluster is decided once no later tile can overlap it (checked after each tile for the clusters
around it, :meth:`SeamMerger.release_after`, and for all at the end of a tile row): the
prediction farthest from its tile's interior borders (``margin``; a tile that sees the nucleus whole
beats one that cuts it) is kept; if every tile cut it (a nucleus wider than the overlap, or one the
tile seeing it whole missed), the union of the pieces is kept. So a nucleus is never kept by two
tiles, never dropped by both, and one that the tile seeing it whole missed is kept from the other.
With ``score_thr``, tiles report candidates scoring below it too, and a decided nucleus is kept only
if its kept prediction reaches it: the tile with the most context decides whether it is a nucleus
(a tile that cuts it would otherwise keep a fragment its neighbour scored below the threshold).

Memory: only clusters some later tile can still reach are pending - those in the overlap strip
along the bottom of the current tile row and beside the newest tile (mask crops, never image-sized
arrays), about ``(overlap + nucleus size) / tile`` of a row's nuclei, not whole rows; :meth:`SeamMerger.state` / :meth:`SeamMerger.from_state` save and restore them
for resuming a slide.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..geometry import MaskCrop, intersection_area, union_crops
from .instances import Instances
from .tiling import Tile, TileGrid

DEFAULT_MATCH_IOU = 0.5
DEFAULT_TOLERANCE = 3  # px at the model's resolution: how far two tiles' outlines of one nucleus may differ
SLIVER_COVER = 0.5     # share of a cut prediction's pixels that must lie within tolerance of its partner
_FAR = 1 << 30         # margin towards a border that is the image edge


@dataclass
class Nucleus:
    """A finalised nucleus: mask crop in image (model-pixel) coordinates, score, 0-based class and
    the tile whose prediction was kept (for a union of pieces: the highest-scoring piece's tile)."""

    crop: MaskCrop
    score: float
    label: int
    tile: int
    seen_by: int  # how many tiles predicted it


class _Member:
    """One tile's prediction, in image coordinates."""

    __slots__ = ("crop", "score", "label", "tile", "k", "margin", "cut", "cluster")

    def __init__(self, crop: MaskCrop, score: float, label: int, tile: Tile, k: int):
        self.crop, self.score, self.label, self.tile, self.k = crop, score, label, tile, k
        left, top, right, bottom = tile.interior
        gaps = (crop.x0 - tile.x0 if left else _FAR, crop.y0 - tile.y0 if top else _FAR,
                tile.x1 - crop.x1 if right else _FAR, tile.y1 - crop.y1 if bottom else _FAR)
        self.margin = min(gaps)
        self.cut = tuple(g <= 0 for g in gaps)  # touches that interior border
        self.cluster: Optional[_Cluster] = None

    def cut_towards(self, other: Tile) -> bool:
        """Cut by a border of its tile beyond which ``other`` sees more of the image."""
        t = self.tile
        return ((self.cut[0] and other.x0 < t.x0) or (self.cut[1] and other.y0 < t.y0)
                or (self.cut[2] and other.x1 > t.x1) or (self.cut[3] and other.y1 > t.y1))


class _Cluster:
    __slots__ = ("members", "box")

    def __init__(self, member: _Member):
        self.members: List[_Member] = []
        self.box = member.crop.box
        self.add(member)

    def add(self, member: _Member) -> None:
        self.members.append(member)
        member.cluster = self
        b, c = self.box, member.crop
        self.box = (min(b[0], c.x0), min(b[1], c.y0), max(b[2], c.x1), max(b[3], c.y1))

    @property
    def tiles(self) -> set:
        return {m.tile.index for m in self.members}

    @property
    def key(self) -> Tuple[int, int]:
        """Output order: the first prediction of the cluster in tile order."""
        return min((m.tile.index, m.k) for m in self.members)

    def resolve(self) -> Nucleus:
        best = max(self.members, key=lambda m: (m.margin, m.score, -m.tile.index, -m.k))
        if best.margin > 0 or len(self.members) == 1:
            return Nucleus(best.crop, best.score, best.label, best.tile.index, len(self.members))
        top = max(self.members, key=lambda m: (m.score, -m.tile.index, -m.k))
        return Nucleus(union_crops([m.crop for m in self.members]), top.score, top.label,
                       top.tile.index, len(self.members))


def _clip(crop: MaskCrop, window) -> Optional[MaskCrop]:
    x0, y0 = max(crop.x0, window[0]), max(crop.y0, window[1])
    x1, y1 = min(crop.x1, window[2]), min(crop.y1, window[3])
    if x0 >= x1 or y0 >= y1:
        return None
    return MaskCrop(x0, y0, crop.mask[y0 - crop.y0:y1 - crop.y0, x0 - crop.x0:x1 - crop.x0])


def _iou_in_window(a: MaskCrop, b: MaskCrop, window) -> float:
    a, b = _clip(a, window), _clip(b, window)
    if a is None or b is None:
        return 0.0
    x0, y0, x1, y1 = max(a.x0, b.x0), max(a.y0, b.y0), min(a.x1, b.x1), min(a.y1, b.y1)
    if x0 >= x1 or y0 >= y1:
        return 0.0
    inter = np.count_nonzero(a.mask[y0 - a.y0:y1 - a.y0, x0 - a.x0:x1 - a.x0]
                             & b.mask[y0 - b.y0:y1 - b.y0, x0 - b.x0:x1 - b.x0])
    union = np.count_nonzero(a.mask) + np.count_nonzero(b.mask) - inter
    return inter / union if union else 0.0


def _near_share(a: MaskCrop, b: MaskCrop, tolerance: int) -> float:
    """Share of ``a``'s pixels within ``tolerance`` px (chessboard distance) of a pixel of ``b``."""
    t = tolerance
    x0, y0 = a.x0 - t, a.y0 - t
    canvas = np.zeros((a.mask.shape[0] + 2 * t, a.mask.shape[1] + 2 * t), np.uint8)
    bx0, by0 = max(b.x0, x0), max(b.y0, y0)
    bx1, by1 = min(b.x1, x0 + canvas.shape[1]), min(b.y1, y0 + canvas.shape[0])
    if bx0 >= bx1 or by0 >= by1:
        return 0.0
    canvas[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0] = \
        b.mask[by0 - b.y0:by1 - b.y0, bx0 - b.x0:bx1 - b.x0]
    if t > 0:
        canvas = cv2.dilate(canvas, np.ones((2 * t + 1, 2 * t + 1), np.uint8))
    near = canvas[t:t + a.mask.shape[0], t:t + a.mask.shape[1]].astype(bool)
    area = np.count_nonzero(a.mask)
    return np.count_nonzero(near & a.mask) / area if area else 0.0


def _shifted_iou(a: MaskCrop, b: MaskCrop, tolerance: int) -> float:
    """Best IoU of ``a`` moved by up to ``tolerance`` px in x and y against ``b``."""
    area_a, area_b = np.count_nonzero(a.mask), np.count_nonzero(b.mask)
    best = 0
    for dy in range(-tolerance, tolerance + 1):
        for dx in range(-tolerance, tolerance + 1):
            best = max(best, intersection_area(MaskCrop(a.x0 + dx, a.y0 + dy, a.mask), b))
    union = area_a + area_b - best
    return best / union if union else 0.0


def _boxes(members: Sequence[_Member]) -> np.ndarray:
    return np.array([m.crop.box for m in members], dtype=np.int64).reshape(-1, 4)


def _close_pairs(new: Sequence[_Member], old: Sequence[_Member], pad: int) -> np.ndarray:
    """(i, j) index pairs whose boxes, grown by ``pad``, intersect (vectorised prefilter)."""
    if not new or not old:
        return np.zeros((0, 2), dtype=np.int64)
    a, b = _boxes(new), _boxes(old)
    hit = ((a[:, None, 0] < b[None, :, 2] + pad) & (b[None, :, 0] < a[:, None, 2] + pad)
           & (a[:, None, 1] < b[None, :, 3] + pad) & (b[None, :, 1] < a[:, None, 3] + pad))
    return np.argwhere(hit)


def _greedy(pairs: List[Tuple[float, int, int]]) -> List[Tuple[float, int, int]]:
    """One-to-one: best score first; ties broken by index so the result never depends on timing."""
    used_i, used_j, out = set(), set(), []
    for score, i, j in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            out.append((score, i, j))
    return out


class SeamMerger:
    """Merge per-tile predictions into nuclei, tile by tile, releasing each nucleus as soon as no
    later tile can overlap it. See the module docstring for the method."""

    def __init__(self, grid: TileGrid, match_iou: float = DEFAULT_MATCH_IOU,
                 tolerance: int = DEFAULT_TOLERANCE, score_thr: float = 0.0):
        if not 0 < match_iou <= 1:
            raise ValueError(f"match_iou must be in (0, 1], got {match_iou}")
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance}")
        self.grid = grid
        self.match_iou = float(match_iou)
        self.tolerance = int(tolerance)
        # applied to each decided nucleus (its kept prediction's score): tiles may report
        # lower-scored candidates, so a neighbour's low score for a nucleus it sees whole counts
        self.score_thr = float(score_thr)
        self._by_tile: Dict[int, List[_Member]] = {}  # members of pending clusters, per tile

    # ------------------------------------------------------------------ adding a tile
    def add(self, tile: Tile, instances: Instances) -> None:
        """Predictions of ``tile`` (tile coordinates). Tiles must come in row-major order."""
        new = [_Member(crop.shifted(tile.x0, tile.y0), float(instances.scores[k]),
                       int(instances.labels[k]), tile, k)
               for k, crop in enumerate(instances.masks)]
        links: Dict[int, List[Tuple[float, _Member]]] = {}  # new member k -> [(score, old member)]
        for other in self.grid.earlier_neighbours(tile):
            old = self._by_tile.get(other.index)
            if old:
                for score, i, j in self._match(new, old, tile, other):
                    links.setdefault(i, []).append((score, old[j]))

        # strongest links first, so a weaker one cannot take a cluster a stronger one wants
        order = sorted(range(len(new)), key=lambda i: (-max((s for s, _ in links.get(i, ())),
                                                               default=0.0), i))
        for i in order:
            member, target = new[i], None
            for _, old_member in sorted(links.get(i, ()), key=lambda sm: -sm[0]):
                cluster = old_member.cluster
                if cluster is target:
                    continue
                if target is None:
                    if tile.index not in cluster.tiles:
                        target = cluster
                elif tile.index not in cluster.tiles and not (cluster.tiles & target.tiles):
                    # one nucleus reached through two neighbours (a four-tile corner)
                    for m in cluster.members:
                        target.add(m)
            if target is None:
                target = _Cluster(member)
            else:
                target.add(member)
        if new:
            self._by_tile[tile.index] = new

    def _match(self, new: List[_Member], old: List[_Member], tile: Tile, other: Tile):
        window = (max(tile.x0, other.x0), max(tile.y0, other.y0),
                  min(tile.x1, other.x1), min(tile.y1, other.y1))
        pairs = _close_pairs(new, old, self.tolerance + 1)
        strong = []
        for i, j in pairs:
            iou = _iou_in_window(new[i].crop, old[j].crop, window)
            if iou >= self.match_iou:
                strong.append((iou, int(i), int(j)))
        matched = _greedy(strong)
        used_i = {i for _, i, _ in matched}
        used_j = {j for _, _, j in matched}
        loose = []
        for i, j in pairs:
            i, j = int(i), int(j)
            if i in used_i or j in used_j:
                continue
            a, b = new[i], old[j]
            if a.cut_towards(other):
                score = _near_share(a.crop, b.crop, self.tolerance) >= SLIVER_COVER
            elif b.cut_towards(tile):
                score = _near_share(b.crop, a.crop, self.tolerance) >= SLIVER_COVER
            else:  # both whole: the same nucleus drawn a few pixels apart by the two tiles
                score = _shifted_iou(a.crop, b.crop, self.tolerance)
                score = score if score >= self.match_iou else 0.0
            if score:
                loose.append((float(score), i, j))
        return matched + _greedy(loose)

    # ------------------------------------------------------------------ releasing nuclei
    def _pending(self) -> List[_Cluster]:
        seen, out = set(), []
        for members in self._by_tile.values():
            for m in members:
                if id(m.cluster) not in seen:
                    seen.add(id(m.cluster))
                    out.append(m.cluster)
        return out

    def release_after(self, tile: Tile) -> List[Nucleus]:
        """``tile`` has just been added: release the nuclei near it that no later tile can reach
        (clear of the next tile of its row and of the rows below), so pending nuclei are the
        overlap strips a later tile will see, not whole tile rows. Only clusters with a member in
        ``tile`` or its earlier neighbours are examined; any other cluster waits for
        :meth:`close_rows`, which is always safe. Depends only on the tiles added so far, so the
        output does not depend on batching or timing."""
        grid, t = self.grid, self.tolerance
        x_limit = grid.xs[tile.col + 1] if tile.col + 1 < grid.cols else _FAR
        y_limit = grid.row_top(tile.row + 1) if tile.row + 1 < grid.rows else _FAR
        seen, done = set(), []
        for index in [tile.index] + [n.index for n in grid.earlier_neighbours(tile)]:
            for m in self._by_tile.get(index, ()):
                c = m.cluster
                if id(c) in seen:
                    continue
                seen.add(id(c))
                if c.box[2] + t <= x_limit and c.box[3] + t <= y_limit:
                    done.append(c)
        return self._release(done)

    def _release(self, done: List[_Cluster]) -> List[Nucleus]:
        if not done:
            return []
        for c in done:
            for m in c.members:
                members = self._by_tile[m.tile.index]
                members.remove(m)
                if not members:
                    del self._by_tile[m.tile.index]
        decided = (c.resolve() for c in sorted(done, key=lambda c: c.key))
        return [n for n in decided if n.score >= self.score_thr]

    def close_rows(self, last_row: int) -> List[Nucleus]:
        """All tiles of rows <= ``last_row`` have been added (skipped tiles included): release the
        nuclei no later tile can overlap, in a fixed order (first prediction's tile, then index)."""
        limit = self.grid.row_top(last_row + 1)
        if last_row + 1 >= self.grid.rows:
            limit = 1 << 62
        return self._release([c for c in self._pending() if c.box[3] + self.tolerance <= limit])

    def finish(self) -> List[Nucleus]:
        """Release everything still pending (after the last tile)."""
        return self.close_rows(self.grid.rows - 1)

    def pending_count(self) -> int:
        return sum(len(v) for v in self._by_tile.values())

    # ------------------------------------------------------------------ resume
    def state(self) -> Dict[str, np.ndarray]:
        """Pending predictions as plain arrays (np.savez without pickle) for resuming a slide."""
        members = [m for v in self._by_tile.values() for m in v]
        clusters = {id(c): n for n, c in enumerate(self._pending())}
        masks = [m.crop.mask.reshape(-1) for m in members]
        return {
            "tile": np.array([m.tile.index for m in members], np.int64),
            "k": np.array([m.k for m in members], np.int64),
            "score": np.array([m.score for m in members], np.float64),
            "label": np.array([m.label for m in members], np.int64),
            "box": np.array([(m.crop.x0, m.crop.y0, *m.crop.mask.shape) for m in members],
                            np.int64).reshape(-1, 4),
            "cluster": np.array([clusters[id(m.cluster)] for m in members], np.int64),
            "bits": np.packbits(np.concatenate(masks)) if masks else np.zeros(0, np.uint8),
        }

    @classmethod
    def from_state(cls, grid: TileGrid, state, **options) -> "SeamMerger":
        merger = cls(grid, **options)
        offset, bits = 0, np.unpackbits(np.asarray(state["bits"], np.uint8))
        clusters: Dict[int, _Cluster] = {}
        for n in range(len(state["tile"])):
            x0, y0, h, w = (int(v) for v in state["box"][n])
            mask = bits[offset:offset + h * w].reshape(h, w).astype(bool)
            offset += h * w
            tile = grid.by_index(int(state["tile"][n]))
            member = _Member(MaskCrop(x0, y0, mask), float(state["score"][n]),
                             int(state["label"][n]), tile, int(state["k"][n]))
            cid = int(state["cluster"][n])
            if cid in clusters:
                clusters[cid].add(member)
            else:
                clusters[cid] = _Cluster(member)
            merger._by_tile.setdefault(tile.index, []).append(member)
        return merger
