"""The COCO annotation of one instance, as every converter writes it.

All per-mask work after decoding happens on the mask's bounding box (:class:`MaskCrop`): full-image
operations per mask (``np.nonzero``, ``pycocotools.mask.encode`` of the whole image) dominate
conversion time on megapixel tiles with hundreds of nuclei.
"""
from __future__ import annotations

from ..geometry import MaskCrop, coco_polygons, crop_to_rle


def instance_annotation(crop: MaskCrop, height: int, width: int, segmentation: str = "rle") -> dict:
    """COCO annotation fields (no ids) for one instance in a ``height`` x ``width`` image.

    ``bbox`` and ``area`` always describe the exact pixels, whichever segmentation is stored.
    """
    if segmentation == "rle":
        seg = crop_to_rle(crop, height, width)
    elif segmentation == "polygon":
        seg = coco_polygons(crop)
    else:
        raise ValueError(f"segmentation must be 'rle' or 'polygon', not {segmentation!r}")
    return {"segmentation": seg, "bbox": list(crop.xywh), "area": crop.area, "iscrowd": 0}
