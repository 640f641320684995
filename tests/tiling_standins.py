"""A stand-in for tiling tests and benchmarks built from a real model's output.

``ClippedPredictions(image, whole)`` answers each tile with the predictions ``whole`` made on the
whole ``image``, cut to the tile: a model without context effects. Tiling it and merging must give
``whole`` back exactly, however messy the predictions (overlapping duplicates, box-shaped masks,
nuclei wider than the overlap), so it isolates the seam matcher on real model output. The tile is
located by its memory address in ``image`` (call it with views of ``image``, as ``run_tiled`` does).
"""
from __future__ import annotations

from nucleus_seg.geometry import MaskCrop
from nucleus_seg.inference import Instances


class ClippedPredictions:
    def __init__(self, image, whole: Instances):
        self.image, self.whole = image, whole

    def _origin(self, tile):
        offset = tile.__array_interface__["data"][0] - self.image.__array_interface__["data"][0]
        row, rem = divmod(offset, self.image.strides[0])
        return int(row), int(rem // self.image.strides[1])

    def __call__(self, tile) -> Instances:
        y0, x0 = self._origin(tile)
        h, w = tile.shape[:2]
        crops, keep = [], []
        for k, c in enumerate(self.whole.masks):
            cx0, cy0, cx1, cy1 = max(c.x0, x0), max(c.y0, y0), min(c.x1, x0 + w), min(c.y1, y0 + h)
            if cx0 >= cx1 or cy0 >= cy1:
                continue
            part = MaskCrop.from_mask(c.mask[cy0 - c.y0:cy1 - c.y0, cx0 - c.x0:cx1 - c.x0],
                                      cx0 - x0, cy0 - y0)
            if part is not None:
                crops.append(part)
                keep.append(k)
        return Instances(self.whole.scores[keep], self.whole.labels[keep], crops, None, h, w)
