"""PointRend point head whose training targets come from per-RoI crops of the ground-truth masks.

mmdet's ``MaskPointHead._get_targets_single`` calls ``gt_instances.masks.to_tensor(...)``: every
ground-truth polygon of the image is rasterised to a full-image float tensor, and then one such
tensor is index-selected per positive RoI, only to read ``num_points`` values from each. For a
1000 px tile rescaled x2 (2000 x 2000) with 1,000 nuclei and 1,024 positive RoIs that is
1,000 x 16 MB + 1,024 x 16 MB = 32 GB. The polygon design of the dataset is undone there.

:class:`CropMaskPointHead` computes the same targets (bilinear samples of the rasterised mask,
zero outside the image, exactly what ``point_sample`` with ``align_corners=False`` reads) from a
small array per ground-truth instance: a polygon's own pixels (its tight crop), or the window of a
bitmap that its RoIs' points can reach. Memory grows with the nucleus and RoI sizes, not with the
image area times the nucleus count.
"""
from __future__ import annotations

import numpy as np
import torch
from mmcv.ops.point_sample import rel_roi_point_to_abs_img_point
from mmdet.models.roi_heads.mask_heads import MaskPointHead
from mmdet.registry import MODELS
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from torch import Tensor

from ..geometry import crop_from_segmentation


def _instance_window(masks, gt_index: int, x0: int, y0: int, x1: int, y1: int) -> tuple:
    """Pixels of instance ``gt_index`` covering ``[x0, x1) x [y0, y1)``: (uint8 array, ox, oy).

    Everything outside the returned array is background (a polygon's tight crop), or out of reach
    of the samples (a bitmap's window).
    """
    if isinstance(masks, PolygonMasks):
        # pycocotools' raster of the polygons, built from its runs (cost follows the outline; in image
        # coordinates, so the pixels are the ones a full-image raster has): its tight crop.
        polygons = [np.asarray(p, np.float64) for p in masks.masks[gt_index]]
        crop = crop_from_segmentation(polygons, masks.height, masks.width) if polygons else None
        if crop is None:
            return np.zeros((0, 0), np.uint8), 0, 0
        return crop.mask.astype(np.uint8), crop.x0, crop.y0
    x0, y0 = max(x0, 0), max(y0, 0)
    window = masks.masks[gt_index, y0:max(y1, y0), x0:max(x1, x0)]
    return np.ascontiguousarray(window, dtype=np.uint8), x0, y0


def sample_instance_points(masks, gt_inds: Tensor, points: Tensor) -> Tensor:
    """Bilinear samples of instance masks at image points, read from windows of each instance.

    Args:
        masks: ``PolygonMasks`` or ``BitmapMasks`` of one image.
        gt_inds: (N,) index into ``masks`` for each row of ``points``.
        points: (N, P, 2) absolute image coordinates (x, y) in pixels, pixel ``(i, j)`` covering
            ``[j, j + 1) x [i, i + 1)``.

    Returns:
        (N, P) float tensor on ``points.device``: what ``point_sample(full_masks[gt_inds], points /
        (W, H), align_corners=False)`` returns, i.e. zero-padded bilinear interpolation between
        pixel centres.
    """
    num, num_points = points.shape[:2]
    if num == 0:
        return points.new_zeros((0, num_points))
    # Pixel-index coordinates of the samples (pixel centres at integers), as grid_sample uses.
    px = points[..., 0] - 0.5
    py = points[..., 1] - 0.5
    # Per instance (RoIs share instances): its pixels, reaching every column/row a tap can touch.
    unique, inverse = torch.unique(gt_inds.cpu(), return_inverse=True)
    bounds = torch.stack([px.min(dim=1).values, py.min(dim=1).values,
                          px.max(dim=1).values, py.max(dim=1).values], 1).floor().long().cpu()
    lo = torch.full((len(unique), 2), 2 ** 62, dtype=torch.long).scatter_reduce(
        0, inverse[:, None].expand(-1, 2), bounds[:, :2], "amin")
    hi = torch.full((len(unique), 2), -2 ** 62, dtype=torch.long).scatter_reduce(
        0, inverse[:, None].expand(-1, 2), bounds[:, 2:] + 2, "amax")
    windows = [_instance_window(masks, g, *lo[k].tolist(), *hi[k].tolist())
               for k, g in enumerate(unique.tolist())]
    # A trailing 0 gives taps outside every window a valid index (their weight is masked anyway).
    flat = np.concatenate([w[0].ravel() for w in windows] + [np.zeros(1, np.uint8)])
    starts = np.cumsum([0] + [w[0].size for w in windows])[:-1]
    table = torch.tensor([(s, ox, oy, a.shape[1], a.shape[0])
                          for s, (a, ox, oy) in zip(starts.tolist(), windows)], dtype=torch.long)
    per_roi = table[inverse].to(points.device)
    start, ox, oy, w, h = (per_roi[:, k:k + 1] for k in range(5))
    flat = torch.from_numpy(flat).to(device=points.device, dtype=points.dtype)

    x = px - ox
    y = py - oy
    fx, fy = x.floor(), y.floor()
    ax, ay = x - fx, y - fy  # weights of the right / lower taps
    fx, fy = fx.long(), fy.long()
    out = points.new_zeros((num, num_points))
    for dx, wx in ((0, 1 - ax), (1, ax)):
        for dy, wy in ((0, 1 - ay), (1, ay)):
            cx, cy = fx + dx, fy + dy
            inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
            index = torch.where(inside, start + cy * w + cx, torch.zeros_like(cx))
            out += flat[index] * inside * (wx * wy)
    return out


@MODELS.register_module()
class CropMaskPointHead(MaskPointHead):
    """``MaskPointHead`` with point targets read from per-instance windows (see module doc).

    Same network, loss and inference as upstream; only ``_get_targets_single`` differs, and it
    returns upstream's targets (tested against it with ``PolygonMasks`` and ``BitmapMasks``).
    """

    def _get_targets_single(self, rois: Tensor, rel_roi_points: Tensor,
                            pos_assigned_gt_inds: Tensor, gt_instances, cfg) -> Tensor:
        masks = gt_instances.masks
        if not isinstance(masks, (PolygonMasks, BitmapMasks)):
            return super()._get_targets_single(rois, rel_roi_points, pos_assigned_gt_inds,
                                               gt_instances, cfg)
        if rois.size(0) == 0:
            return rois.new_zeros((0, cfg.num_points))
        points = rel_roi_point_to_abs_img_point(rois, rel_roi_points)
        return sample_instance_points(masks, pos_assigned_gt_inds, points)
