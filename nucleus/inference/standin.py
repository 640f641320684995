"""A stand-in predictor that "detects" the objects of a known label image.

For tests and benchmarks: given the tile window it was called on, it returns every label visible in
that window, clipped at the tile border, as a real model would see it. Scores are fixed per label
so that results are deterministic.
"""
from __future__ import annotations

import numpy as np

from .instances import Instances, MaskCrop


class LabelImagePredictor:
    """Predict the instances of ``labels`` (H, W int, 0 = background) inside each tile.

    The tiler passes only pixels, so the predictor locates the tile by identity: call it with views
    of the image it was given (``run_tiled(image, pred)`` with ``image`` = ``pred.image``)."""

    def __init__(self, labels: np.ndarray, image: np.ndarray = None):
        self.labels = labels
        self.image = image if image is not None else np.zeros(labels.shape + (3,), np.uint8)
        self.calls = 0

    def _origin(self, tile: np.ndarray):
        # byte offset of the view into the parent image -> (row, col) of its top-left pixel
        base = self.image.__array_interface__["data"][0]
        offset = tile.__array_interface__["data"][0] - base
        row, rem = divmod(offset, self.image.strides[0])
        return int(row), int(rem // self.image.strides[1])

    def __call__(self, tile: np.ndarray) -> Instances:
        self.calls += 1
        y0, x0 = self._origin(tile)
        h, w = tile.shape[:2]
        window = self.labels[y0:y0 + h, x0:x0 + w]
        ids = np.unique(window)
        ids = ids[ids > 0]
        crops, scores = [], []
        for i in ids:
            crop = MaskCrop.from_mask(window == i)
            crops.append(crop)
            scores.append(0.5 + 0.5 * ((int(i) * 7919) % 1000) / 1000.0)
        return Instances(np.array(scores), np.zeros(len(crops)), crops, None, h, w)


def disc_label_image(height: int, width: int, centres_radii) -> np.ndarray:
    """uint32 label image of discs (id k+1 for the k-th (cy, cx, r)); later discs overwrite earlier."""
    labels = np.zeros((height, width), dtype=np.uint32)
    for k, (cy, cx, r) in enumerate(centres_radii):
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, height)
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, width)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        labels[y0:y1, x0:x1][inside] = k + 1
    return labels
