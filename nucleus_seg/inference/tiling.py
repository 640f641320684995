"""The tile grid of tiled inference, and the in-memory entry point :func:`run_tiled`.

Tiles of ``tile`` x ``tile`` pixels step by ``tile - overlap``; the last tile of a row/column is
flush with the image edge, so every tile has the full size (unless the image is smaller) and
neighbours overlap by at least ``overlap``. The grid is arithmetic (:class:`TileGrid`): a tile is
computed from its row and column, so no list of a slide's tiles is ever built.

Predictions of neighbouring tiles are matched and merged by :mod:`nucleus_seg.inference.seams`;
tiles are read, batched and predicted by :mod:`nucleus_seg.inference.engine`. ``run_tiled`` runs
that one engine on an array already in memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np

from .instances import Instances

# A predictor takes an RGB uint8 (h, w, 3) tile and returns Instances in tile coordinates; it may
# also have ``predict_batch(tiles) -> list of Instances`` to predict several tiles per forward.
Predictor = Callable[[np.ndarray], Instances]

# Nuclei at the models' resolution (0.25-0.5 um/px) are 10-40 px across; the overlap must exceed the
# largest diameter for every nucleus to be seen whole by some tile (see docs/inference.md).
DEFAULT_TILE = 512
DEFAULT_OVERLAP = 96


@dataclass(frozen=True)
class Tile:
    """A tile's pixel window [x0, x1) x [y0, y1), its place in the grid, and which of its borders
    (left, top, right, bottom) lie inside the image (a nucleus touching one was cut by the tile)."""

    index: int  # row-major position in the full grid (skipped tiles keep their numbers)
    row: int
    col: int
    x0: int
    y0: int
    x1: int
    y1: int
    interior: Tuple[bool, bool, bool, bool]

    @property
    def shape(self) -> Tuple[int, int]:
        return (self.y1 - self.y0, self.x1 - self.x0)

    @property
    def window(self) -> Tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)


def _starts(length: int, tile: int, step: int) -> List[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    if starts[-1] != length - tile:
        starts.append(length - tile)  # last tile flush with the edge
    return starts


class TileGrid:
    """Row-major tiles covering a ``height`` x ``width`` image (model pixels)."""

    def __init__(self, height: int, width: int, tile: int = DEFAULT_TILE,
                 overlap: int = DEFAULT_OVERLAP):
        if height <= 0 or width <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if tile <= 0:
            raise ValueError(f"tile must be positive, got {tile}")
        if not 0 <= overlap < tile:
            raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
        self.height, self.width, self.tile_size, self.overlap = height, width, tile, overlap
        step = tile - overlap
        # one entry per row / column: O(sqrt(area)), never one per tile
        self.ys = _starts(height, tile, step)
        self.xs = _starts(width, tile, step)
        self.rows, self.cols = len(self.ys), len(self.xs)

    def __len__(self) -> int:
        return self.rows * self.cols

    def tile(self, row: int, col: int) -> Tile:
        x0, y0 = self.xs[col], self.ys[row]
        x1, y1 = min(x0 + self.tile_size, self.width), min(y0 + self.tile_size, self.height)
        return Tile(row * self.cols + col, row, col, x0, y0, x1, y1,
                    (x0 > 0, y0 > 0, x1 < self.width, y1 < self.height))

    def by_index(self, index: int) -> Tile:
        return self.tile(*divmod(index, self.cols))

    def row_tiles(self, row: int) -> Iterator[Tile]:
        for col in range(self.cols):
            yield self.tile(row, col)

    def __iter__(self) -> Iterator[Tile]:
        for row in range(self.rows):
            yield from self.row_tiles(row)

    def row_top(self, row: int) -> int:
        """y0 of tile row ``row``; the image height past the last row."""
        return self.ys[row] if row < self.rows else self.height

    def earlier_neighbours(self, t: Tile) -> List[Tile]:
        """Tiles before ``t`` in row-major order whose windows overlap it (those it is matched with).

        Usually the left, upper-left, upper and upper-right tiles; more where the flush last
        row/column overlaps a tile two steps back."""
        out = []
        r = t.row
        while r >= 0 and (r == t.row or self.ys[r] + self.tile_size > t.y0):
            for c in range(self.cols):
                x0 = self.xs[c]
                if x0 >= t.x1 or x0 + self.tile_size <= t.x0:
                    continue
                if r == t.row and c >= t.col:
                    continue
                out.append(self.tile(r, c))
            r -= 1
        return out


def tile_grid(height: int, width: int, tile: int = DEFAULT_TILE,
              overlap: int = DEFAULT_OVERLAP) -> List[Tile]:
    """All tiles of an image as a list (for small images and tests; slides iterate a TileGrid)."""
    return list(TileGrid(height, width, tile, overlap))


def run_tiled(image: np.ndarray, predictor: Predictor, tile: int = DEFAULT_TILE,
              overlap: int = DEFAULT_OVERLAP, batch_size: int = 1,
              progress: Optional[Callable[[int, int], None]] = None, **merge_options) -> Instances:
    """Run ``predictor`` on overlapping tiles of an RGB uint8 ``image`` held in memory and merge
    the results with the seam matcher; the same engine as slides, without reader processes.

    ``progress(tiles, predictions)`` is called after each batch with its counts. ``merge_options`` go to
    :class:`~nucleus_seg.inference.seams.SeamMerger` (``match_iou``, ``tolerance``). Returns
    instances in image coordinates, sorted by descending score."""
    from .engine import ArrayView, merge_score_thr, stream_tiles
    from .seams import SeamMerger

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    grid = TileGrid(height, width, tile, overlap)
    merger = SeamMerger(grid, **{"score_thr": merge_score_thr(predictor), **merge_options})
    nuclei = []
    for event in stream_tiles(ArrayView(image), grid, predictor, merger, batch_size=batch_size,
                              progress=progress):
        nuclei.extend(event.nuclei)
    if not nuclei:
        return Instances.empty(height, width)
    return Instances(np.array([n.score for n in nuclei]), np.array([n.label for n in nuclei]),
                     [n.crop for n in nuclei], None, height, width).sorted_by_score()


__all__ = ["Tile", "TileGrid", "tile_grid", "run_tiled", "Predictor", "DEFAULT_TILE",
           "DEFAULT_OVERLAP"]
