"""PointRend point targets from per-instance crops equal mmdet's full-image targets, without them."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import nucleus_seg.register  # noqa: F401
from mmdet.models.roi_heads.mask_heads import MaskPointHead
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmdet.structures.mask.structures import polygon_to_bitmap
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from nucleus_seg.models.point_head import CropMaskPointHead, _instance_window

POINTREND = "configs/nucleus/point-rend_r50-caffe_fpn_ms-3x_nucleus.py"


def _random_polygon(rng, height, width):
    """A star-shaped ring anywhere around the image, sometimes on quarter-pixel coordinates
    rescaled by a non-integer factor (what the dataset's polygons become after RandomRescale)."""
    n = int(rng.integers(3, 12))
    cx, cy = rng.uniform(-10, width + 10), rng.uniform(-10, height + 10)
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(1, 25) * rng.uniform(0.5, 1.0, n)
    ring = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
    if rng.random() < 0.4:
        ring = np.round(ring * 4) / 4 * rng.choice([1.0, 1.7, 2.0, 2.3])
    return ring.ravel()


def test_polygon_crop_is_the_full_raster_of_pycocotools():
    rng = np.random.default_rng(0)
    height, width = 60, 80
    for _ in range(400):
        polygons = [_random_polygon(rng, height, width) for _ in range(int(rng.integers(1, 3)))]
        full = polygon_to_bitmap(polygons, height, width)
        crop, x0, y0 = _instance_window(PolygonMasks([polygons], height, width), 0, 0, 0, 0, 0)
        pasted = np.zeros_like(full)
        pasted[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
        assert np.array_equal(pasted, full)


def _scene(seed, height=70, width=90, n_gt=14, n_pos=120):
    """Polygons (some crossing the image border, some in two parts), positive RoIs jittered around
    their instances (some reaching outside the image) and random points in them."""
    rng = np.random.default_rng(seed)
    polygons = [[_random_polygon(rng, height, width) for _ in range(1 + (k % 4 == 0))]
                for k in range(n_gt)]
    gt_inds = rng.integers(0, n_gt, n_pos)
    boxes = []
    for g in gt_inds:
        xy = np.concatenate(polygons[g]).reshape(-1, 2)
        boxes.append(np.r_[xy.min(0), xy.max(0)] + rng.normal(0, 2, 4))
    boxes = torch.tensor(np.array(boxes), dtype=torch.float32)
    points = torch.rand(n_pos, 49, 2)
    return PolygonMasks(polygons, height, width), torch.from_numpy(gt_inds), boxes, points


@pytest.mark.parametrize("mask_type", ["polygon", "bitmap"])
def test_point_targets_and_loss_equal_upstream_for_a_batch(mask_type):
    torch.manual_seed(0)
    upstream, ours = MaskPointHead(num_classes=2), CropMaskPointHead(num_classes=2)
    ours.load_state_dict(upstream.state_dict())
    cfg = ConfigDict(num_points=49)
    gts, results, points = [], [], []
    for seed in (1, 2):
        masks, gt_inds, boxes, pts = _scene(seed)
        if mask_type == "bitmap":
            masks = BitmapMasks(masks.to_ndarray().astype(np.uint8), masks.height, masks.width)
        gts.append(InstanceData(masks=masks))
        results.append(SimpleNamespace(pos_bboxes=boxes, pos_assigned_gt_inds=gt_inds,
                                       pos_gt_labels=gt_inds % 2))
        points.append(pts)
    points = torch.cat(points)
    pred = torch.randn(len(points), 2, points.shape[1])
    expected = upstream.loss_and_target(pred, points, results, gts, cfg)
    got = ours.loss_and_target(pred, points, results, gts, cfg)
    assert 0.2 < float(expected["point_target"].mean()) < 0.8  # both inside and outside nuclei
    torch.testing.assert_close(got["point_target"], expected["point_target"], atol=1e-5, rtol=0)
    torch.testing.assert_close(got["loss_point"], expected["loss_point"], atol=1e-6, rtol=1e-5)


def test_no_full_image_mask_is_built(monkeypatch):
    masks, gt_inds, boxes, points = _scene(3)

    def refuse(*args, **kwargs):
        raise AssertionError("a full-image mask array was built")

    expected = MaskPointHead(num_classes=1)._get_targets_single(
        torch.cat([torch.zeros(len(boxes), 1), boxes], 1), points, gt_inds,
        InstanceData(masks=masks), ConfigDict(num_points=49))
    for name in ("to_ndarray", "to_tensor"):
        monkeypatch.setattr(PolygonMasks, name, refuse)
    got = CropMaskPointHead(num_classes=1)._get_targets_single(
        torch.cat([torch.zeros(len(boxes), 1), boxes], 1), points, gt_inds,
        InstanceData(masks=masks), ConfigDict(num_points=49))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_no_positives_give_an_empty_target():
    masks, _, _, _ = _scene(4)
    out = CropMaskPointHead(num_classes=1)._get_targets_single(
        torch.zeros((0, 5)), torch.zeros((0, 49, 2)), torch.zeros(0, dtype=torch.long),
        InstanceData(masks=masks), ConfigDict(num_points=49))
    assert out.shape == (0, 49)


def test_nucleus_pointrend_config_uses_the_crop_point_head():
    from nucleus_seg.config_utils import load_config
    assert load_config(POINTREND).model.roi_head.point_head.type == "CropMaskPointHead"
