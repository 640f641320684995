"""The one tiling engine: plan tiles, read them (in DataLoader worker processes for slides), predict
them in batches and merge them with the seam matcher, releasing nuclei row by row.

Tiles are predicted and merged in row-major order whatever the number of reader processes and their
timing (the DataLoader returns batches in sampler order), so results do not depend on ``workers``.
After each tile the merger releases the nuclei around it that no later tile can reach
(:class:`Released`), so they are written out while the row goes on and only overlap strips stay in
memory. A row of tiles is closed when the first tile of a later row arrives (or at the end): the
merger releases the rest it can and :func:`stream_tiles` yields a :class:`RowDone` before touching
the next row - the point where a caller can commit its work.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, List, Optional, Sequence

import numpy as np

from ..child_processes import DieWithParent
from ..errors import InputError
from .instances import Instances
from .seams import Nucleus, SeamMerger
from .tiling import Predictor, Tile, TileGrid


class ArrayView:
    """An RGB uint8 array in memory, read like a slide view (model pixels)."""

    def __init__(self, image: np.ndarray, path: str = "<array>"):
        self.image = image
        self.height, self.width = image.shape[:2]
        self.path = path

    def read(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        return self.image[y:y + height, x:x + width]  # a view: predictors must not keep it


@dataclass
class Released:
    """Nuclei of tile row ``row`` that no later tile can change (in output order), released as
    soon as the tile that last could reach them was merged."""

    row: int
    nuclei: List[Nucleus]


@dataclass
class RowDone(Released):
    """Tile row ``row`` is merged: its last ``nuclei`` are released and nothing of it is pending
    but the overlap strip the next row will see - the point where a caller can commit its work."""

    tiles: int = 0  # tiles of this row that were predicted (background tiles are skipped)
    instances: int = 0  # predictions made on those tiles, before merging


def planned_tiles(grid: TileGrid, keep: Optional[Callable[[Tile], bool]] = None,
                  first_row: int = 0) -> Iterator[Tile]:
    """Tiles of rows ``first_row``.. that pass ``keep`` (e.g. enough tissue), generated lazily."""
    for row in range(first_row, grid.rows):
        for tile in grid.row_tiles(row):
            if keep is None or keep(tile):
                yield tile


def _batches(tiles: Iterable[Tile], size: int) -> Iterator[List[Tile]]:
    it = iter(tiles)
    while True:
        batch = list(itertools.islice(it, size))
        if not batch:
            return
        yield batch


class _TileReads:
    """Map-style dataset keyed by Tile: each reader process opens its own view on first use
    (slide handles are not shared across processes). Read failures come back as values, because
    the DataLoader cannot re-raise an InputError across processes."""

    def __init__(self, open_view: Callable[[], object], path: str):
        self.open_view = open_view
        self.path = path
        self._view = None

    def __getitem__(self, tile: Tile):
        try:
            if self._view is None:
                self._view = self.open_view()
            return tile, self._view.read(tile.x0, tile.y0, tile.x1 - tile.x0, tile.y1 - tile.y0)
        except InputError as exc:
            return tile, (exc.path or self.path, exc.problem)
        except Exception as exc:  # a truncated or corrupt slide fails here, mid-way
            return tile, (self.path, f"cannot read the region at x={tile.x0}, y={tile.y0} "
                                     f"(model pixels): {type(exc).__name__}: {exc}")


def _as_list(batch):
    return batch


def read_tile_batch(open_view: Callable[[], object], tiles: Sequence[Tile], path: str) -> list:
    """[(tile, pixels or (path, problem))] for ``tiles``, read through a view ``open_view`` opens:
    one batch read anywhere (a Ray task reads batches this way for the cohort runner)."""
    reads = _TileReads(open_view, path)
    return [reads[t] for t in tiles]


def _read_batches(view, batches: Iterable[List[Tile]], workers: int,
                  open_view: Optional[Callable[[], object]]) -> Iterator[list]:
    path = str(getattr(view, "path", "<image>"))
    if workers <= 0:
        for batch in batches:
            yield read_tile_batch(lambda: view, batch, path)
        return
    if open_view is None:
        raise ValueError("reader processes need open_view, a picklable callable that opens the view")
    from torch.utils.data import DataLoader

    # DieWithParent: readers of a run killed with SIGKILL would otherwise wait forever on their pipe
    loader = DataLoader(_TileReads(open_view, path), batch_sampler=batches, num_workers=workers,
                        collate_fn=_as_list, prefetch_factor=2, worker_init_fn=DieWithParent())
    yield from loader


def merge_score_thr(predictor: Predictor) -> float:
    """The score threshold the seam merger applies to merged nuclei: the predictor's own when it
    reports lower-scored candidates for matching (``predict_candidates``), else none (0)."""
    if getattr(predictor, "predict_candidates", None) is None:
        return 0.0
    return float(getattr(predictor, "score_thr", 0.0))


def predict_tiles(predictor: Predictor, images: Sequence[np.ndarray]) -> List[Instances]:
    """Several tiles per call where the predictor supports it (``predict_candidates`` for seam
    matching, else ``predict_batch``)."""
    batch_fn = (getattr(predictor, "predict_candidates", None)
                or getattr(predictor, "predict_batch", None))
    if batch_fn is not None:
        out = list(batch_fn(list(images)))
        if len(out) != len(images):
            raise ValueError(f"predict_batch returned {len(out)} results for {len(images)} tiles")
        return out
    return [predictor(image) for image in images]


def stream_tiles(view, grid: TileGrid, predictor: Predictor, merger: SeamMerger, *,
                 keep: Optional[Callable[[Tile], bool]] = None, batch_size: int = 1,
                 workers: int = 0, open_view: Optional[Callable[[], object]] = None,
                 first_row: int = 0,
                 progress: Optional[Callable[[int, int], None]] = None,
                 read_batches: Optional[Callable[..., Iterator[list]]] = None) -> Iterator[Released]:
    """Predict and merge the planned tiles of ``grid`` over ``view``; yield nuclei as they are
    released (:class:`Released`, after the tile that last could reach them) and each closed row
    (:class:`RowDone`, with the rest of the row's nuclei), all in a fixed order.

    ``first_row`` resumes a run whose earlier rows were merged already (``merger`` restored from
    their state). ``progress(tiles_done_in_batch, instances)`` is called after each batch.
    ``read_batches(view, batches, workers, open_view)`` replaces the DataLoader readers (the
    cohort runner reads in Ray tasks); it must yield each batch's reads in the order given."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batches = _batches(planned_tiles(grid, keep, first_row), batch_size)
    row, row_tiles, row_instances = first_row, 0, 0
    for batch in (read_batches or _read_batches)(view, batches, workers, open_view):
        for tile, pixels in batch:
            if isinstance(pixels, tuple):
                raise InputError(*pixels)
        predictions = predict_tiles(predictor, [pixels for _, pixels in batch])
        count = 0
        for (tile, _), instances in zip(batch, predictions):
            while row < tile.row:
                yield RowDone(row, merger.close_rows(row), row_tiles, row_instances)
                row, row_tiles, row_instances = row + 1, 0, 0
            merger.add(tile, instances)
            released = merger.release_after(tile)
            if released:
                yield Released(row, released)
            row_tiles += 1
            row_instances += len(instances)
            count += len(instances)
        if progress is not None:
            progress(len(batch), count)
    while row < grid.rows:
        yield RowDone(row, merger.close_rows(row), row_tiles, row_instances)
        row, row_tiles, row_instances = row + 1, 0, 0


__all__ = ["ArrayView", "Released", "RowDone", "merge_score_thr", "planned_tiles", "predict_tiles",
           "read_tile_batch",
           "stream_tiles"]
