"""Instance sets whose masks are stored as crops, so memory follows the nuclei, not the image size.

A mask is a :class:`MaskCrop`: the integer origin ``(x0, y0)`` of its tight bounding box in the
image plus a boolean array of that box's size. A 30 px nucleus costs ~1 kB whatever the image size;
a full-size boolean mask per nucleus on an 8k x 8k image would cost 64 MB each.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np


@dataclass
class MaskCrop:
    """A binary mask stored as its tight bounding box: ``mask`` covers rows y0.. and columns x0.."""

    x0: int
    y0: int
    mask: np.ndarray  # bool, shape (h, w)

    @property
    def x1(self) -> int:
        return self.x0 + self.mask.shape[1]

    @property
    def y1(self) -> int:
        return self.y0 + self.mask.shape[0]

    @property
    def box(self) -> tuple:
        """Pixel extent as (x0, y0, x1, y1), exclusive end."""
        return (self.x0, self.y0, self.x1, self.y1)

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    def shifted(self, dx: int, dy: int) -> "MaskCrop":
        return MaskCrop(self.x0 + dx, self.y0 + dy, self.mask)

    @classmethod
    def from_mask(cls, mask: np.ndarray, x0: int = 0, y0: int = 0) -> Optional["MaskCrop"]:
        """Tight crop of a boolean mask whose top-left pixel is at (x0, y0); None if it is empty."""
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(mask.any(axis=0))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        # copy: the crop must not keep the (tile- or image-sized) source array alive
        return cls(int(x0 + c0), int(y0 + r0), np.ascontiguousarray(mask[r0:r1, c0:c1], dtype=bool))

    def to_full(self, height: int, width: int) -> np.ndarray:
        """Full-size boolean mask (for tests and small images only)."""
        full = np.zeros((height, width), dtype=bool)
        paste_crop(full, self, True)
        return full


def paste_crop(canvas: np.ndarray, crop: MaskCrop, value, only_empty: bool = False) -> None:
    """Write ``value`` into ``canvas`` where ``crop`` is set (clipped to the canvas).

    With ``only_empty`` pixels already non-zero are left alone (first writer wins)."""
    h, w = canvas.shape[:2]
    x0, y0, x1, y1 = max(crop.x0, 0), max(crop.y0, 0), min(crop.x1, w), min(crop.y1, h)
    if x0 >= x1 or y0 >= y1:
        return
    m = crop.mask[y0 - crop.y0:y1 - crop.y0, x0 - crop.x0:x1 - crop.x0]
    region = canvas[y0:y1, x0:x1]
    if only_empty:
        m = m & (region == 0) if region.ndim == 2 else m & ~region.any(axis=-1)
    region[m] = value


def intersection_area(a: MaskCrop, b: MaskCrop) -> int:
    x0, y0 = max(a.x0, b.x0), max(a.y0, b.y0)
    x1, y1 = min(a.x1, b.x1), min(a.y1, b.y1)
    if x0 >= x1 or y0 >= y1:
        return 0
    ma = a.mask[y0 - a.y0:y1 - a.y0, x0 - a.x0:x1 - a.x0]
    mb = b.mask[y0 - b.y0:y1 - b.y0, x0 - b.x0:x1 - b.x0]
    return int(np.count_nonzero(ma & mb))


def union_crops(crops: Sequence[MaskCrop]) -> MaskCrop:
    x0 = min(c.x0 for c in crops)
    y0 = min(c.y0 for c in crops)
    x1 = max(c.x1 for c in crops)
    y1 = max(c.y1 for c in crops)
    out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for c in crops:
        out[c.y0 - y0:c.y1 - y0, c.x0 - x0:c.x1 - x0] |= c.mask
    return MaskCrop(x0, y0, out)


@dataclass
class Instances:
    """Detections of one image (or tile): scores, 0-based class labels and mask crops.

    ``bboxes`` (N, 4) float xyxy are the boxes the exports report; they equal the masks' pixel
    extents (``from_crops`` default) unless a predictor supplies its own.
    """

    scores: np.ndarray
    labels: np.ndarray
    masks: List[MaskCrop]
    bboxes: np.ndarray = field(default=None)
    height: int = 0
    width: int = 0

    def __post_init__(self):
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if self.bboxes is None:
            self.bboxes = np.array([m.box for m in self.masks], dtype=np.float32).reshape(-1, 4)
        self.bboxes = np.asarray(self.bboxes, dtype=np.float32).reshape(-1, 4)
        n = len(self.masks)
        if not (len(self.scores) == len(self.labels) == len(self.bboxes) == n):
            raise ValueError(f"inconsistent instance counts: {len(self.scores)} scores, "
                             f"{len(self.labels)} labels, {len(self.bboxes)} boxes, {n} masks")

    def __len__(self) -> int:
        return len(self.masks)

    @classmethod
    def empty(cls, height: int = 0, width: int = 0) -> "Instances":
        return cls(np.zeros(0), np.zeros(0), [], np.zeros((0, 4)), height, width)

    @classmethod
    def from_full_masks(cls, masks: np.ndarray, scores, labels, height: int = 0,
                        width: int = 0) -> "Instances":
        """From an (N, H, W) boolean stack (a model's output on one tile); empty masks are dropped."""
        crops, keep = [], []
        for i in range(len(masks)):
            crop = MaskCrop.from_mask(masks[i])
            if crop is not None:
                crops.append(crop)
                keep.append(i)
        keep = np.asarray(keep, dtype=np.int64)
        return cls(np.asarray(scores)[keep], np.asarray(labels)[keep], crops, None,
                   height or masks.shape[1], width or masks.shape[2])

    def select(self, index) -> "Instances":
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        return Instances(self.scores[index], self.labels[index], [self.masks[i] for i in index],
                         self.bboxes[index], self.height, self.width)

    def sorted_by_score(self) -> "Instances":
        return self.select(np.argsort(-self.scores, kind="stable"))

    def crop_bytes(self) -> int:
        """Memory held by the mask crops (for the memory benchmark)."""
        return int(sum(m.mask.nbytes for m in self.masks))

    def to_label_image(self, dtype=None) -> np.ndarray:
        """(H, W) instance ids 1..N in the current order; 0 is background.

        Where masks overlap, the earlier instance keeps the pixel (sort by score first to let the
        more confident one win)."""
        if dtype is None:
            dtype = np.uint16 if len(self) < 65536 else np.uint32
        labels = np.zeros((self.height, self.width), dtype=dtype)
        for i, crop in enumerate(self.masks):
            paste_crop(labels, crop, i + 1, only_empty=True)
        return labels
