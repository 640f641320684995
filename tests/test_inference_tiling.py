"""Seam handling of tiled inference, proven with stand-in predictors whose output is known exactly."""
from __future__ import annotations

import numpy as np
import pytest

from nucleus_seg.geometry import MaskCrop
from nucleus_seg.inference import Instances, run_tiled, tile_grid
from tests.standins import LabelImagePredictor, disc_label_image


@pytest.mark.parametrize("height,width,tile,overlap", [
    (500, 600, 256, 64), (256, 256, 256, 64), (100, 700, 256, 96), (1030, 777, 300, 80),
])
def test_tile_cores_partition_the_image_and_tiles_overlap_enough(height, width, tile, overlap):
    tiles = tile_grid(height, width, tile, overlap)
    owners = np.zeros((height, width), dtype=np.int32)
    covered = np.zeros((height, width), dtype=bool)
    yy, xx = np.mgrid[0:height, 0:width] + 0.5  # pixel centres
    for t in tiles:
        assert t.x1 - t.x0 == min(tile, width) and t.y1 - t.y0 == min(tile, height)
        covered[t.y0:t.y1, t.x0:t.x1] = True
        cx0, cy0, cx1, cy1 = t.core
        owners += (xx >= cx0) & (xx < cx1) & (yy >= cy0) & (yy < cy1)
    assert covered.all()
    assert (owners == 1).all()
    xs = sorted({t.x0 for t in tiles})
    for a, b in zip(xs, xs[1:]):
        assert a + min(tile, width) - b >= overlap


def test_tile_grid_rejects_overlap_not_smaller_than_tile():
    with pytest.raises(ValueError):
        tile_grid(100, 100, 64, 64)


def _seam_discs(height, width, tiles, rng, max_radius):
    """Discs centred on every core boundary and tile edge (seams and 4-tile corners), plus random ones."""
    xs = sorted({c for t in tiles for c in (t.core[0], t.x0, t.x1)} - {0})
    ys = sorted({c for t in tiles for c in (t.core[1], t.y0, t.y1)} - {0})
    discs = []
    for y in ys + [height / 3]:
        for x in xs + [width / 2]:
            discs.append((y + rng.uniform(-2, 2), x + rng.uniform(-2, 2), rng.uniform(4, max_radius)))
    for _ in range(40):
        discs.append((rng.uniform(0, height), rng.uniform(0, width), rng.uniform(4, max_radius)))
    return discs


def _assert_each_label_once_and_whole(result: Instances, labels: np.ndarray):
    expected = set(np.unique(labels).tolist()) - {0}
    seen = []
    for crop in result.masks:
        ids = np.unique(labels[crop.y0:crop.y1, crop.x0:crop.x1][crop.mask])
        assert len(ids) == 1 and ids[0] != 0, "an output mask mixes nuclei or covers background"
        gt = labels == ids[0]
        assert np.array_equal(crop.to_full(*labels.shape), gt), f"nucleus {ids[0]} not whole/exact"
        seen.append(int(ids[0]))
    assert len(seen) == len(set(seen)), "a nucleus appears more than once"
    assert set(seen) == expected, f"missing nuclei: {sorted(expected - set(seen))}"


@pytest.mark.parametrize("height,width,tile,overlap", [(500, 600, 256, 64), (700, 530, 200, 48)])
def test_seam_nuclei_appear_once_and_whole(height, width, tile, overlap):
    rng = np.random.default_rng(height)
    tiles = tile_grid(height, width, tile, overlap)
    # diameters below the overlap: the guarantee of the method
    labels = disc_label_image(height, width, _seam_discs(height, width, tiles, rng, overlap / 2 - 1))
    predictor = LabelImagePredictor(labels)
    result = run_tiled(predictor.image, predictor, tile, overlap)
    assert predictor.calls == len(tiles) > 1
    _assert_each_label_once_and_whole(result, labels)
    # crops, never full-size masks: memory follows the nuclei, not the image
    assert all(c.mask.shape[0] <= overlap and c.mask.shape[1] <= overlap for c in result.masks)


def test_nuclei_larger_than_the_overlap_are_stitched_from_fragments():
    height, width, tile, overlap = 300, 300, 160, 20
    # tiles start at 0 and 140; these discs are wider than the 20 px shared strip
    discs = [(80, 150, 40), (150, 150, 30), (230, 230, 45), (250, 60, 8)]
    labels = disc_label_image(height, width, discs)
    predictor = LabelImagePredictor(labels)
    _assert_each_label_once_and_whole(run_tiled(predictor.image, predictor, tile, overlap), labels)


class _JitteryPredictor(LabelImagePredictor):
    """Like a real model, tiles disagree slightly: odd tiles see every nucleus 1 px to the right."""

    def __call__(self, tile):
        inst = super().__call__(tile)
        if self.calls % 2 == 0:
            inst = Instances(inst.scores - 0.01, inst.labels,
                             [MaskCrop(c.x0 + 1, c.y0, c.mask) for c in inst.masks], None,
                             inst.height, inst.width)
        return inst


def test_slightly_different_predictions_from_two_tiles_are_deduplicated():
    height, width, tile, overlap = 256, 448, 256, 64
    tiles = tile_grid(height, width, tile, overlap)
    boundary = tiles[0].core[2]  # core boundary between the two tiles
    # centres half a pixel either side of the boundary: with the jitter both tiles claim them
    discs = [(60, boundary - 0.5, 10), (140, boundary - 1, 12), (200, boundary + 0.5, 9)]
    labels = disc_label_image(height, width, discs)
    predictor = _JitteryPredictor(labels)
    result = run_tiled(predictor.image, predictor, tile, overlap)
    assert len(result) == len(discs)
    for crop in result.masks:
        ids = np.unique(labels[crop.y0:crop.y1, crop.x0:crop.x1][crop.mask])
        gt = labels == ids[ids > 0][0]
        iou = (crop.to_full(height, width) & gt).sum() / (crop.to_full(height, width) | gt).sum()
        assert iou > 0.85


def test_instances_outside_every_core_are_dropped_and_empty_tiles_give_empty_result():
    labels = np.zeros((300, 300), dtype=np.uint32)
    predictor = LabelImagePredictor(labels)
    result = run_tiled(predictor.image, predictor, 128, 32)
    assert len(result) == 0 and (result.height, result.width) == (300, 300)


def test_run_tiled_rejects_non_rgb_uint8():
    with pytest.raises(ValueError):
        run_tiled(np.zeros((10, 10), np.uint8), lambda t: Instances.empty())
