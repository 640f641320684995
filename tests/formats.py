"""Fixtures in other datasets' formats, built from DSB-layout tiles (bundled sample or shared data):
each tile's per-nucleus masks as crops, and the label map / GeoJSON / binary mask made from them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from nucleus_seg.geometry import MaskCrop, crop_from_segmentation, paste_crop
from nucleus_seg.image_io import read_mask_crop


@dataclass
class Tile:
    name: str
    image_path: Path
    height: int
    width: int
    crops: List[MaskCrop]   # one per mask file, sorted by mask file name


def dsb_tiles(train_dir, limit: Optional[int] = None) -> List[Tile]:
    tiles = []
    for folder in sorted(Path(train_dir).iterdir())[:limit]:
        crops, height, width = [], 0, 0
        for mask in sorted((folder / "masks").glob("*.png")):
            height, width, crop = read_mask_crop(mask)
            crops.append(crop)
        tiles.append(Tile(folder.name, folder / "images" / f"{folder.name}.png", height, width, crops))
    return tiles


def label_map(tile: Tile, ids: Sequence[int], dtype=np.int32) -> np.ndarray:
    """The tile's nuclei painted with ``ids`` (the DSB masks do not overlap)."""
    labels = np.zeros((tile.height, tile.width), dtype)
    for crop, value in zip(tile.crops, ids):
        paste_crop(labels, crop, value)
    return labels


def decoded(coco: dict, image_id: int) -> List[MaskCrop]:
    """The crops of one image's annotations, in annotation order."""
    image = next(im for im in coco["images"] if im["id"] == image_id)
    return [crop_from_segmentation(a["segmentation"], image["height"], image["width"])
            for a in coco["annotations"] if a["image_id"] == image_id]


def crop_key(crop: MaskCrop):
    return crop.x0, crop.y0, crop.mask.shape, np.packbits(crop.mask).tobytes()


def same_pixels(a: MaskCrop, b: MaskCrop) -> bool:
    return crop_key(a) == crop_key(b)
