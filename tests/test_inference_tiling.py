"""The tile grid and seam matching, proven with stand-in predictors whose output is known exactly:
nuclei on every seam and four-tile corner, predictions jittered in both directions between tiles,
a nucleus missed by the tile that sees it whole, nuclei wider than the overlap."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from nucleus_seg.geometry import MaskCrop, paste_crop
from nucleus_seg.inference import Instances, SeamMerger, TileGrid, run_tiled, tile_grid
from nucleus_seg.inference.engine import ArrayView, RowDone, stream_tiles
from tests.standins import LabelImagePredictor, disc_label_image


@pytest.mark.parametrize("height,width,tile,overlap", [
    (500, 600, 256, 64), (256, 256, 256, 64), (100, 700, 256, 96), (1030, 777, 300, 80),
])
def test_tiles_cover_the_image_full_size_and_overlap_enough(height, width, tile, overlap):
    grid = TileGrid(height, width, tile, overlap)
    tiles = tile_grid(height, width, tile, overlap)
    assert len(tiles) == len(grid) == grid.rows * grid.cols
    covered = np.zeros((height, width), dtype=bool)
    for i, t in enumerate(tiles):
        assert t.index == i and grid.by_index(i) == t
        assert t.x1 - t.x0 == min(tile, width) and t.y1 - t.y0 == min(tile, height)
        assert t.interior == (t.x0 > 0, t.y0 > 0, t.x1 < width, t.y1 < height)
        covered[t.y0:t.y1, t.x0:t.x1] = True
        # earlier neighbours = exactly the earlier tiles whose windows overlap this one
        expected = [u.index for u in tiles[:i]
                    if u.x0 < t.x1 and t.x0 < u.x1 and u.y0 < t.y1 and t.y0 < u.y1]
        assert sorted(u.index for u in grid.earlier_neighbours(t)) == expected
    assert covered.all()
    for starts in (grid.xs, grid.ys):
        for a, b in zip(starts, starts[1:]):
            assert a + tile - b >= overlap


def test_tile_grid_rejects_overlap_not_smaller_than_tile():
    with pytest.raises(ValueError):
        tile_grid(100, 100, 64, 64)


class SeamStandIn(LabelImagePredictor):
    """Per tile, the nuclei of a label image as a model would see them, with controlled faults:

    ``jitter``: each tile moves each nucleus by up to ``jitter`` px in x and y (both directions),
    differently in every tile, before clipping it at the tile border;
    ``missed``: nucleus ids that the first tile seeing them whole does not predict at all."""

    def __init__(self, labels, jitter=0, missed=(), tile=None, overlap=None):
        super().__init__(labels)
        self.jitter = jitter
        self.missed = set(missed)
        self.objects = {i + 1: s for i, s in enumerate(ndimage.find_objects(labels)) if s}
        self.grid = TileGrid(*labels.shape, tile, overlap) if tile else None

    def owner(self, nucleus_id):
        """First tile (row-major) that sees the nucleus whole."""
        ys, xs = self.objects[nucleus_id]
        for t in self.grid:
            if t.x0 <= xs.start and xs.stop <= t.x1 and t.y0 <= ys.start and ys.stop <= t.y1:
                return t.index

    def __call__(self, tile):
        self.calls += 1
        y0, x0 = self._origin(tile)
        h, w = tile.shape[:2]
        j = self.jitter
        window = self.labels[max(y0 - j, 0):y0 + h + j, max(x0 - j, 0):x0 + w + j]
        crops, scores = [], []
        for i in np.unique(window[window > 0]):
            i = int(i)
            ys, xs = self.objects[i]
            if self.grid is not None and i in self.missed:
                t = self.grid.by_index(self.owner(i))
                if (t.x0, t.y0) == (x0, y0):
                    continue
            rng = np.random.default_rng([i, x0, y0])
            dx, dy = rng.integers(-j, j + 1, size=2) if j else (0, 0)
            crop = MaskCrop(xs.start + int(dx) - x0, ys.start + int(dy) - y0,
                            self.labels[ys, xs] == i)
            full = np.zeros((h, w), bool)
            paste_crop(full, crop, True)
            clipped = MaskCrop.from_mask(full)
            if clipped is not None:
                crops.append(clipped)
                scores.append(0.5 + 0.5 * ((i * 7919) % 1000) / 1000.0)
        return Instances(np.array(scores), np.zeros(len(crops)), crops, None, h, w)


def _seam_discs(grid, rng, max_radius, extra=40, min_radius=4):
    """Discs centred on every tile edge (seams) and their crossings (four-tile corners), plus
    random ones; centres moved by up to 2 px. Like nuclei, discs may touch but do not overlap."""
    xs = sorted({c for x in grid.xs for c in (x, x + grid.tile_size)} - {0, grid.width})
    ys = sorted({c for y in grid.ys for c in (y, y + grid.tile_size)} - {0, grid.height})
    candidates = [(y + rng.uniform(-2, 2), x + rng.uniform(-2, 2),
                   rng.uniform(min_radius, max_radius))
                  for y in ys + [grid.height / 3] for x in xs + [grid.width / 2]]
    candidates += [(rng.uniform(0, grid.height), rng.uniform(0, grid.width),
                    rng.uniform(min_radius, max_radius)) for _ in range(extra)]
    discs = []
    for cy, cx, r in candidates:
        if all(np.hypot(cy - y, cx - x) >= r + s + 1 for y, x, s in discs):
            discs.append((cy, cx, r))
    return discs


def _ids_of(result, labels):
    """The label id each output mask covers (asserting it covers one nucleus and no background)."""
    ids = []
    for crop in result.masks:
        covered = np.unique(labels[crop.y0:crop.y1, crop.x0:crop.x1][crop.mask])
        assert len(covered) == 1 and covered[0] != 0, "an output mask mixes nuclei or background"
        ids.append(int(covered[0]))
    return ids


def _assert_each_label_once_and_whole(result: Instances, labels: np.ndarray):
    expected = set(np.unique(labels).tolist()) - {0}
    ids = _ids_of(result, labels)
    for crop, i in zip(result.masks, ids):
        assert np.array_equal(crop.to_full(*labels.shape), labels == i), f"nucleus {i} not whole"
    assert len(ids) == len(set(ids)), "a nucleus appears more than once"
    assert set(ids) == expected, f"missing nuclei: {sorted(expected - set(ids))}"


@pytest.mark.parametrize("height,width,tile,overlap", [(500, 600, 256, 64), (700, 530, 200, 48)])
def test_seam_and_corner_nuclei_appear_once_and_whole(height, width, tile, overlap):
    grid = TileGrid(height, width, tile, overlap)
    rng = np.random.default_rng(height)
    # diameters below the overlap: every nucleus is seen whole by some tile
    labels = disc_label_image(height, width, _seam_discs(grid, rng, overlap / 2 - 1))
    predictor = LabelImagePredictor(labels)
    result = run_tiled(predictor.image, predictor, tile, overlap)
    assert predictor.calls == len(grid) > 1
    _assert_each_label_once_and_whole(result, labels)


def test_nuclei_larger_than_the_overlap_are_stitched_from_their_pieces():
    height, width, tile, overlap = 300, 300, 160, 20
    # tiles start at 0 and 140; these discs are wider than the 20 px shared strip, one spans a corner
    discs = [(80, 150, 40), (150, 150, 30), (230, 230, 45), (250, 60, 8)]
    labels = disc_label_image(height, width, discs)
    predictor = LabelImagePredictor(labels)
    _assert_each_label_once_and_whole(run_tiled(predictor.image, predictor, tile, overlap), labels)


@pytest.mark.parametrize("jitter", [1, 2])
def test_jittered_predictions_on_seams_and_corners_are_kept_exactly_once(jitter):
    height, width, tile, overlap = 600, 700, 224, 64
    grid = TileGrid(height, width, tile, overlap)
    # dense: up to 400 discs, touching but not overlapping; radius >= 6 keeps a disc moved by
    # (2, 2) px above IoU 0.5 with itself, so the check below measures the merger, not the jitter
    discs = _seam_discs(grid, np.random.default_rng(jitter), 16, 400, min_radius=6)
    labels = disc_label_image(height, width, discs)
    predictor = SeamStandIn(labels, jitter=jitter)
    result = run_tiled(predictor.image, predictor, tile, overlap)
    expected = set(np.unique(labels).tolist()) - {0}
    assert len(expected) > 150
    # each output is one nucleus (IoU > 0.5 with it) ...
    matched = []
    for crop in result.masks:
        ids, counts = np.unique(labels[crop.y0:crop.y1, crop.x0:crop.x1][crop.mask],
                                return_counts=True)
        best = int(ids[np.argmax(np.where(ids > 0, counts, -1))])
        gt = labels == best
        full = crop.to_full(height, width)
        assert (full & gt).sum() / (full | gt).sum() > 0.5
        matched.append(best)
    # ... and each nucleus comes out exactly once
    assert len(matched) == len(set(matched)), "a nucleus appears twice"
    assert set(matched) == expected, f"missing: {sorted(expected - set(matched))}"


def test_a_nucleus_missed_by_the_tile_seeing_it_whole_is_kept_from_its_neighbour():
    height, width, tile, overlap = 256, 448, 256, 64
    grid = TileGrid(height, width, tile, overlap)
    seam_left, seam_right = grid.xs[1], grid.xs[0] + tile  # the shared strip is [192, 256)
    discs = [(60, (seam_left + seam_right) / 2, 10),  # both tiles see it whole
             (140, seam_left + 3, 9),                   # left sees it whole, right cuts it
             (210, seam_right - 3, 9),                  # right sees it whole, left cuts it
             (40, 60, 8)]                               # only the left tile sees it
    labels = disc_label_image(height, width, discs)
    predictor = SeamStandIn(labels, missed={1, 2, 3, 4}, tile=tile, overlap=overlap)
    result = run_tiled(predictor.image, predictor, tile, overlap)
    ids = _ids_of(result, labels)
    assert sorted(ids) == [1, 2, 3]  # 4 was seen by nobody else: lost, as it must be
    by_id = dict(zip(ids, result.masks))
    assert np.array_equal(by_id[1].to_full(height, width), labels == 1)  # the other tile's whole view
    # the neighbour saw only part of 2 and 3 (cut by its border): that part is kept
    assert np.array_equal(by_id[2].to_full(height, width), (labels == 2) & (np.arange(width) >= seam_left))
    assert np.array_equal(by_id[3].to_full(height, width), (labels == 3) & (np.arange(width) < seam_right))


def test_nuclei_are_released_as_tiles_finish_them_and_the_merger_resumes_from_its_state():
    height, width, tile, overlap = 700, 530, 200, 48
    grid = TileGrid(height, width, tile, overlap)
    labels = disc_label_image(height, width,
                              _seam_discs(grid, np.random.default_rng(5), overlap / 2 - 4, 60))
    predictor = SeamStandIn(labels, jitter=2)
    view = ArrayView(predictor.image)
    tol = merger_tolerance = SeamMerger(grid).tolerance

    def run(first_row=0, merger=None, stop_after=None):
        merger = merger or SeamMerger(grid)
        events = []
        for done in stream_tiles(view, grid, predictor, merger, batch_size=3, first_row=first_row):
            events.append(done)
            if isinstance(done, RowDone):
                # after a row closes only its bottom overlap strip waits for the next row
                top = grid.row_top(done.row + 1)
                assert all(m.crop.y1 + tol > top for ms in merger._by_tile.values() for m in ms)
                if stop_after is not None and done.row == stop_after:
                    return events, merger.state()
        return events, None

    full, _ = run()
    assert [d.row for d in full if isinstance(d, RowDone)] == list(range(grid.rows))
    released = [n for d in full for n in d.nuclei]
    # nuclei come out inside each row, as the tiles that last could reach them finish
    inside = {d.row for d in full if not isinstance(d, RowDone) and d.nuclei}
    assert inside == set(range(grid.rows))
    # the same nuclei as releasing everything at the end
    merger = SeamMerger(grid)
    for t in grid:
        merger.add(t, predictor(predictor.image[t.y0:t.y1, t.x0:t.x1]))
    at_end = merger.finish()
    assert sorted((n.crop.box, n.crop.mask.tobytes(), n.score) for n in released) == \
        sorted((n.crop.box, n.crop.mask.tobytes(), n.score) for n in at_end)
    head, state = run(stop_after=1)
    restored = SeamMerger.from_state(grid, {k: v.copy() for k, v in state.items()},
                                     tolerance=merger_tolerance)
    tail, _ = run(first_row=2, merger=restored)
    resumed = [n for d in head + tail for n in d.nuclei]
    assert len(resumed) == len(released)
    for a, b in zip(released, resumed):
        assert a.crop.box == b.crop.box and np.array_equal(a.crop.mask, b.crop.mask)
        assert (a.score, a.label, a.tile) == (b.score, b.label, b.tile)


@pytest.mark.parametrize("height,width,tile,overlap,jitter,missed", [
    (700, 530, 200, 48, 2, False), (1030, 777, 300, 80, 3, True), (420, 1300, 160, 40, 1, True),
])
def test_releasing_after_each_tile_keeps_exactly_what_releasing_at_the_end_keeps(
        height, width, tile, overlap, jitter, missed):
    """Early release never takes a nucleus a later tile could still join: the nuclei (which
    prediction is kept, unions included) equal those of one merge released at the very end, on
    grids with flush last rows/columns, jittered predictions and nuclei missed by their owner."""
    grid = TileGrid(height, width, tile, overlap)
    rng = np.random.default_rng(height)
    labels = disc_label_image(height, width, _seam_discs(grid, rng, overlap / 2 - 4, 80))
    ids = np.unique(labels)[1:]
    predictor = SeamStandIn(labels, jitter=jitter, tile=tile, overlap=overlap,
                            missed=ids[::7] if missed else ())
    early, late = SeamMerger(grid), SeamMerger(grid)
    released = []
    for t in grid:
        instances = predictor(predictor.image[t.y0:t.y1, t.x0:t.x1])
        early.add(t, instances)
        late.add(t, instances)
        released += early.release_after(t)
        if t.col == grid.cols - 1:
            released += early.close_rows(t.row)
    assert early.pending_count() == 0
    key = lambda n: (n.crop.box, n.crop.mask.tobytes(), n.score, n.tile, n.seen_by)  # noqa: E731
    assert sorted(map(key, released)) == sorted(map(key, late.finish()))


def test_results_do_not_depend_on_the_batch_size():
    height, width, tile, overlap = 500, 600, 256, 64
    grid = TileGrid(height, width, tile, overlap)
    labels = disc_label_image(height, width, _seam_discs(grid, np.random.default_rng(3), 20))
    outputs = []
    for batch_size in (1, 4):
        predictor = SeamStandIn(labels, jitter=2)
        result = run_tiled(predictor.image, predictor, tile, overlap, batch_size=batch_size)
        outputs.append([(c.box, c.mask.tobytes()) for c in result.masks])
    assert outputs[0] == outputs[1]


def test_empty_tiles_give_an_empty_result_of_the_image_size():
    labels = np.zeros((300, 300), dtype=np.uint32)
    predictor = LabelImagePredictor(labels)
    result = run_tiled(predictor.image, predictor, 128, 32)
    assert len(result) == 0 and (result.height, result.width) == (300, 300)


def test_run_tiled_rejects_non_rgb_uint8():
    with pytest.raises(ValueError):
        run_tiled(np.zeros((10, 10), np.uint8), lambda t: Instances.empty())


class ContextScoredStandIn(LabelImagePredictor):
    """Candidates like a real model near tile borders: a nucleus the tile cuts scores ``cut_score``,
    one it sees whole ``whole_score``; ``silent`` ids are not predicted at all by a tile that sees
    them whole (a miss, not a low score). Reports candidates down to 0.1, thresholds at 0.5."""

    score_thr, candidate_thr = 0.5, 0.1

    def __init__(self, labels, cut_score, whole_score, silent=()):
        super().__init__(labels)
        self.cut_score, self.whole_score, self.silent = cut_score, whole_score, set(silent)

    def predict_candidates(self, tiles):
        out = []
        for tile in tiles:
            y0, x0 = self._origin(tile)
            h, w = tile.shape[:2]
            window = self.labels[y0:y0 + h, x0:x0 + w]
            crops, scores = [], []
            for i in np.unique(window[window > 0]):
                whole = np.count_nonzero(window == i) == np.count_nonzero(self.labels == i)
                if whole and int(i) in self.silent:
                    continue
                crops.append(MaskCrop.from_mask(window == i))
                scores.append(self.whole_score if whole else self.cut_score)
            out.append(Instances(np.array(scores), np.zeros(len(crops)), crops, None, h, w))
        return out


def test_the_tile_seeing_a_nucleus_whole_decides_it_with_its_own_score():
    """Two tiles (x 0-200 and 152-352) and one nucleus cut by the left tile's border at x = 200,
    whole in the right tile. A cut view scored 0.9 does not outvote the whole view's 0.3 (below the
    0.5 threshold): nothing is kept, as a whole-image run would keep nothing. A whole view scored
    0.9 is kept once, whole. If the tile seeing it whole predicts nothing at all (a miss), the cut
    view is kept, as before."""
    labels = disc_label_image(120, 352, [(60, 196, 14)])
    whole = labels == 1
    cases = [(0.9, 0.3, (), 0), (0.3, 0.9, (), 1), (0.9, 0.9, (1,), 1)]
    for cut_score, whole_score, silent, expected in cases:
        predictor = ContextScoredStandIn(labels, cut_score, whole_score, silent)
        result = run_tiled(predictor.image, predictor, tile=200, overlap=48)
        assert len(result) == expected, (cut_score, whole_score, silent)
        if expected and not silent:
            assert np.array_equal(result.masks[0].to_full(120, 352), whole)
            assert result.scores[0] == whole_score
        if silent:  # the neighbour's part (x < 200) is what exists of the missed nucleus
            assert np.array_equal(result.masks[0].to_full(120, 352),
                                  whole & (np.arange(352) < 200))
