"""Image loading and histology augmentations registered into mmdet's TRANSFORMS.

``LoadNucleusImage`` replaces mmcv's ``LoadImageFromFile`` in every nucleus config, so training,
``tools/test.py`` and ``tools/infer.py`` convert a file to the same pixels (one reader,
:func:`nucleus_seg.image_io.read_image`). Tissue has no canonical orientation: with horizontal and
vertical flips (mmdet's ``RandomFlip``), one 90-degree rotation applied with probability 0.5
completes the 8-element dihedral group.
"""
from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import Resize
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks, PolygonMasks

from .image_io import read_image


@TRANSFORMS.register_module()
class LoadNucleusImage(BaseTransform):
    """Read ``results['img_path']`` with the package's one image reader, as BGR uint8.

    A drop-in for ``LoadImageFromFile`` (same keys: ``img``, ``img_shape``, ``ori_shape``; BGR, as
    mmdet pipelines and data preprocessors with ``bgr_to_rgb=True`` expect). mmcv's loader turns
    16-bit images into 8-bit by ``v >> 8`` while inference used to stretch them: this one applies
    :func:`nucleus_seg.image_io.to_rgb8`'s per-dtype rule everywhere."""

    def __init__(self, to_float32: bool = False):
        self.to_float32 = to_float32

    def transform(self, results: dict) -> dict:
        img = np.ascontiguousarray(read_image(results["img_path"])[:, :, ::-1])
        if self.to_float32:
            img = img.astype(np.float32)
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        results["ori_shape"] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(to_float32={self.to_float32})"


def _rot90_points(xy: np.ndarray, width: int) -> np.ndarray:
    """Continuous (x, y) -> coordinates after ``np.rot90`` (90 deg counter-clockwise)."""
    out = np.empty_like(xy)
    out[..., 0] = xy[..., 1]
    out[..., 1] = width - xy[..., 0]
    return out


@TRANSFORMS.register_module()
class RandomRot90(BaseTransform):
    """Rotate image, boxes, masks and segmentation map by 90 degrees counter-clockwise.

    Exact (no interpolation): the image and bitmap masks are ``np.rot90``-ed, boxes and polygons are
    mapped with ``(x, y) -> (y, W - x)`` in COCO continuous pixel coordinates.
    """

    def __init__(self, prob: float = 0.5):
        assert 0.0 <= prob <= 1.0
        self.prob = prob

    def transform(self, results: dict) -> dict:
        rotate = np.random.rand() < self.prob
        results["rot90"] = bool(rotate)
        if not rotate:
            return results
        img = results["img"]
        height, width = img.shape[:2]
        results["img"] = np.ascontiguousarray(np.rot90(img))
        results["img_shape"] = results["img"].shape[:2]

        boxes = results.get("gt_bboxes")
        if boxes is not None and len(boxes) > 0:
            t = boxes.tensor.clone()
            x1, y1, x2, y2 = t[:, 0].clone(), t[:, 1].clone(), t[:, 2].clone(), t[:, 3].clone()
            t[:, 0], t[:, 1], t[:, 2], t[:, 3] = y1, width - x2, y2, width - x1
            results["gt_bboxes"] = type(boxes)(t)

        masks = results.get("gt_masks")
        if isinstance(masks, BitmapMasks):
            results["gt_masks"] = BitmapMasks(
                np.ascontiguousarray(np.rot90(masks.masks, axes=(1, 2))), width, height)
        elif isinstance(masks, PolygonMasks):
            rotated = [[_rot90_points(p.reshape(-1, 2), width).reshape(-1) for p in polys]
                       for polys in masks.masks]
            results["gt_masks"] = PolygonMasks(rotated, width, height)

        if results.get("gt_seg_map") is not None:
            results["gt_seg_map"] = np.ascontiguousarray(np.rot90(results["gt_seg_map"]))
        return results

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(prob={self.prob})"


@TRANSFORMS.register_module()
class RandomRescale(Resize):
    """Resize by a *factor* (``scale_factor`` x a ratio drawn from ``ratio_range``), keeping the ratio.

    Nucleus size in pixels is set by the scanner's magnification, not by the tile size, so the
    configs rescale by a fixed factor instead of to a fixed size (upstream's ``Resize(scale=(1333,
    800))`` would zoom a 256 px patch 3x and a 1000 px tile 0.8x). Inference on tiles of any size
    then sees nuclei at the size the model was trained on.
    """

    def __init__(self, scale_factor: float = 2.0, ratio_range=(0.8, 1.25), **kwargs):
        super().__init__(scale_factor=scale_factor, keep_ratio=True, **kwargs)
        assert ratio_range[0] <= ratio_range[1]
        self.base_factor = float(scale_factor)
        self.ratio_range = tuple(ratio_range)

    def transform(self, results: dict) -> dict:
        factor = self.base_factor * np.random.uniform(*self.ratio_range)
        self.scale_factor = (factor, factor)
        return super().transform(results)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(scale_factor={self.base_factor}, "
                f"ratio_range={self.ratio_range})")
