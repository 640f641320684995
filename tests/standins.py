"""Stand-in predictors for tests and benchmarks (no model): they return Instances like a real one.

``LabelImagePredictor``: given the tile window it was called on, it returns every label of a known
label image visible in that window, clipped at the tile border, as a real model would see it; scores
are fixed per label so that results are deterministic. ``DarkBlobPredictor``: thresholded connected
components. Benchmarks import this module with the repository root on ``sys.path``.
"""
from __future__ import annotations

import numpy as np

from nucleus_seg.geometry import MaskCrop
from nucleus_seg.inference.instances import Instances


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


class DarkBlobPredictor:
    """Classic-CV stand-in: connected components of dark pixels (H&E nuclei are dark) in each tile.

    Needs no model, works on any image, costs about what a light model's post-processing does; used
    for CLI tests and the memory benchmark. ``min_area`` drops specks."""

    def __init__(self, threshold: int = 100, min_area: int = 20):
        self.threshold = threshold
        self.min_area = min_area

    def __call__(self, tile_rgb: np.ndarray) -> Instances:
        import cv2

        h, w = tile_rgb.shape[:2]
        gray = cv2.cvtColor(np.ascontiguousarray(tile_rgb), cv2.COLOR_RGB2GRAY)
        n, comp, stats, _ = cv2.connectedComponentsWithStats((gray < self.threshold).astype(np.uint8),
                                                             connectivity=8)
        crops, scores = [], []
        for i in range(1, n):
            x, y, bw, bh, area = stats[i]
            if area < self.min_area:
                continue
            crops.append(MaskCrop(int(x), int(y), comp[y:y + bh, x:x + bw] == i))
            scores.append(min(1.0, 0.5 + area / 2000.0))
        return Instances(np.array(scores), np.zeros(len(crops)), crops, None, h, w)
