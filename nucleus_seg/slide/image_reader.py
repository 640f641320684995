"""Ordinary images (PNG, JPEG, BMP, ...) as one-level slides, decoded once with OpenCV.

They are small enough to hold (a PNG cannot be decoded in parts anyway), and this gives
``tools/infer.py`` one code path for tiles and slides. Microns per pixel come from the PNG pHYs
chunk (unit: metre) or the JPEG JFIF density (dots per inch / cm) when the file records one, read
with Pillow without decoding the pixels; most images record none or a screen default (72 or 96 dpi,
i.e. 353 or 265 um/px, which the plausibility check rejects), so ``--mpp`` is usually needed.
"""
from __future__ import annotations

from typing import List

import numpy as np

from ..image_io import read_image
from .base import SlideReader, SlideSpec
from .mpp import MppCandidate, resolve_mpp


def _image_mpp_candidates(path) -> List[MppCandidate]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            dpi = im.info.get("dpi")
            kind = im.format
    except Exception:  # Pillow cannot parse it: OpenCV decoded it, so it simply has no metadata
        return []
    if not dpi:
        return []
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return []
    if x <= 0 or y <= 0:
        return []
    source = {"PNG": "png:pHYs", "JPEG": "jpeg:JFIF density"}.get(kind, f"{kind}:dpi")
    return [(25400.0 / x, 25400.0 / y, source)]


class ImageReader(SlideReader):
    backend = "image"

    def __init__(self, spec: SlideSpec):
        super().__init__(spec)
        self._image = read_image(self.path)  # InputError naming the file if OpenCV cannot decode it
        h, w = self._image.shape[:2]
        self.format = "image"
        self.level_dimensions = ((w, h),)
        self.level_downsamples = (1.0,)
        self.bounds = (0, 0, w, h)
        self.mpp, self.mpp_source = resolve_mpp(self.path, _image_mpp_candidates(self.path),
                                                spec.mpp, spec.require_mpp)

    def _read_level_inside(self, level, x, y, width, height) -> np.ndarray:
        return self._image[y:y + height, x:x + width].copy()

    def close(self) -> None:
        self._image = None
