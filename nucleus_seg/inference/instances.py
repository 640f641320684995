"""Instance sets whose masks are stored as crops (:class:`nucleus_seg.geometry.MaskCrop`), so memory
follows the nuclei, not the image size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import numpy as np

from ..geometry import MaskCrop, paste_crop


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
