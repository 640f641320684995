"""The slide as the model sees it: pixels at the model's microns per pixel.

Level choice: the pyramid level with the largest downsample not exceeding the target scale, so a
coarser level is never enlarged when a finer one exists. Pyramid downsamples are rarely exact
(OpenSlide averages width and height ratios: 16.09 for a nominal 16), so a level up to
``LEVEL_TOLERANCE`` (1 %) coarser than the target still counts; it is then enlarged by at most 1 %.

Resampling is area averaging (what cv2.INTER_AREA computes): every model pixel is the mean of the
level pixels its footprint covers, weighted by the covered fraction. When a read's edges fall on
level-pixel edges and the factor is an integer (a 0.25 um/px slide read at 0.5 um/px), cv2.resize
with INTER_AREA does it; otherwise an exact separable version here does, because cv2.resize cannot
start a footprint part-way into a pixel. Either way a model pixel's value depends only on its
position in the slide, never on the window it was read in, so overlapping tiles agree exactly.

Upsampling happens only when the model wants a finer resolution than level 0 (e.g. a 20x scan for a
40x model): bilinear (INTER_LINEAR, pixel centres aligned) with one warning per view.
"""
from __future__ import annotations

import math
import warnings
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from ..errors import InputError
from .base import SlideReader

LEVEL_TOLERANCE = 0.01
_EPS = 1e-9


def choose_level(level_downsamples: Sequence[float], downsample: float) -> int:
    """Index of the level with the largest downsample <= ``downsample`` (1 % slack); 0 if none."""
    best = 0
    for i, ds in enumerate(level_downsamples):
        if ds <= downsample * (1 + LEVEL_TOLERANCE) and ds > level_downsamples[best]:
            best = i
    return best


def _area_axis(src: np.ndarray, edges: np.ndarray, axis: int) -> np.ndarray:
    """Area-average ``src`` along ``axis``: output k is the mean over [edges[k], edges[k+1]) in
    source pixel units (edges increasing, steps >= 1), float32.

    Each output is a weighted sum of the few source pixels its footprint overlaps, weights = the
    overlapped fraction; computed the same way for a pixel whatever window it is read in."""
    size = src.shape[axis]
    lo, hi = edges[:-1], edges[1:]
    first = np.floor(lo + _EPS).astype(np.int64)
    taps = int(np.ceil(float(np.max(hi - lo)))) + 1
    idx = first[:, None] + np.arange(taps)[None, :]                       # (n, taps)
    weight = (np.minimum(hi[:, None], idx + 1) - np.maximum(lo[:, None], idx)).clip(0, None)
    weight = (weight / (hi - lo)[:, None]).astype(np.float32)
    idx = idx.clip(0, size - 1)  # taps past the edge carry weight 0
    shape = [1] * src.ndim
    shape[axis] = len(lo)
    out = None
    for k in range(taps):
        term = np.take(src, idx[:, k], axis=axis).astype(np.float32)
        term *= weight[:, k].reshape(shape)
        out = term if out is None else out + term
    return out


def area_resample(src: np.ndarray, x_edges: np.ndarray, y_edges: np.ndarray) -> np.ndarray:
    """(len(y_edges)-1, len(x_edges)-1, C) uint8: pixel (i, j) is the area mean of ``src`` over
    [x_edges[j], x_edges[j+1]) x [y_edges[i], y_edges[i+1]) (source pixel units, steps >= 1)."""
    width, height = len(x_edges) - 1, len(y_edges) - 1
    x_step, y_step = x_edges[1] - x_edges[0], y_edges[1] - y_edges[0]
    aligned = all(abs(v - round(v)) < 1e-6 for v in (x_edges[0], y_edges[0], x_step, y_step))
    if aligned:  # whole source pixels per model pixel: OpenCV's INTER_AREA is the same average
        x0, y0 = int(round(x_edges[0])), int(round(y_edges[0]))
        window = src[y0:y0 + int(round(y_step)) * height, x0:x0 + int(round(x_step)) * width]
        return cv2.resize(window, (width, height), interpolation=cv2.INTER_AREA)
    out = _area_axis(src, x_edges, axis=1)
    out = _area_axis(out, y_edges, axis=0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def linear_resample(src: np.ndarray, x_start: float, x_step: float, width: int,
                    y_start: float, y_step: float, height: int) -> np.ndarray:
    """Bilinear sampling at pixel centres: output (i, j) samples ``src`` at the centre of
    [x_start + j*x_step, +x_step) x [...] (steps < 1: enlarging); edges replicated."""
    map_x = (x_start + (np.arange(width, dtype=np.float64) + 0.5) * x_step - 0.5).astype(np.float32)
    map_y = (y_start + (np.arange(height, dtype=np.float64) + 0.5) * y_step - 0.5).astype(np.float32)
    map_x, map_y = np.meshgrid(map_x, map_y)
    return cv2.remap(src, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


class ResampledView:
    """A slide's scanned area (``reader.bounds``) at ``target_mpp`` microns per pixel.

    ``target_mpp=None``: level 0 as it is (scale 1, no resampling), for images without MPP.
    Model pixel (x, y) covers level-0 [offset_x + x*scale_x, +scale_x) x [offset_y + y*scale_y,
    +scale_y); ``to_slide`` / ``from_slide`` convert point coordinates between the two frames.
    """

    def __init__(self, reader: SlideReader, target_mpp: Optional[float]):
        self.reader = reader
        bx, by, bw, bh = reader.bounds
        self.offset: Tuple[float, float] = (float(bx), float(by))
        if target_mpp is None:
            self.target_mpp = reader.mpp[0] if reader.mpp else None
            self.scale_xy = (1.0, 1.0)
        else:
            if reader.mpp is None:
                raise InputError(reader.path, "no microns-per-pixel in the file; pass --mpp")
            self.target_mpp = float(target_mpp)
            self.scale_xy = (self.target_mpp / reader.mpp[0], self.target_mpp / reader.mpp[1])
        sx, sy = self.scale_xy
        self.level = choose_level(reader.level_downsamples, min(sx, sy)) if target_mpp else 0
        self.level_downsample = float(reader.level_downsamples[self.level])
        # level pixels per model pixel, and where model pixel 0 starts in level pixels
        self._step = (sx / self.level_downsample, sy / self.level_downsample)
        self._origin = (bx / self.level_downsample, by / self.level_downsample)
        self.width = max(1, math.ceil(bw / sx - _EPS))
        self.height = max(1, math.ceil(bh / sy - _EPS))
        self.identity = (self._step == (1.0, 1.0)
                         and all(float(o).is_integer() for o in self._origin))
        self.upsampling = min(self._step) < 1 - 1e-3
        if self.upsampling:
            warnings.warn(
                f"{reader.path}: the model expects {self.target_mpp:g} um/px, finer than the "
                f"slide's level 0 ({reader.mpp[0]:g} um/px, {reader.mpp_source}); enlarging "
                f"{1 / min(self._step):.3g}x with bilinear interpolation", stacklevel=2)

    @property
    def scale(self) -> float:
        """Level-0 pixels per model pixel (x; ``scale_xy`` has both when the slide's pixels are
        not square)."""
        return self.scale_xy[0]

    def read(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        """RGB uint8 (height, width, 3) of model pixels [x, x+width) x [y, y+height); outside the
        slide: white."""
        width, height = int(width), int(height)
        if self.identity:
            return self.reader.read_level(self.level, int(self._origin[0]) + x,
                                          int(self._origin[1]) + y, width, height)
        fx, fy = self._step
        ax, ay = self._origin[0] + x * fx, self._origin[1] + y * fy  # first footprint, level px
        if self.upsampling or fx < 1 or fy < 1:
            # centres of the first and last model pixels, one level pixel either side for the
            # bilinear neighbours
            sx0 = math.floor(ax + 0.5 * fx - 0.5) - 1
            sy0 = math.floor(ay + 0.5 * fy - 0.5) - 1
            sx1 = math.floor(ax + (width - 0.5) * fx - 0.5) + 3
            sy1 = math.floor(ay + (height - 0.5) * fy - 0.5) + 3
            src = self.reader.read_level(self.level, sx0, sy0, sx1 - sx0, sy1 - sy0)
            return linear_resample(src, ax - sx0, fx, width, ay - sy0, fy, height)
        # footprint edges from the model pixels' global indices, so a pixel gets the same edges
        # (hence the same value) in every window that contains it
        x_edges = self._origin[0] + np.arange(x, x + width + 1, dtype=np.float64) * fx
        y_edges = self._origin[1] + np.arange(y, y + height + 1, dtype=np.float64) * fy
        sx0, sy0 = math.floor(x_edges[0] + _EPS), math.floor(y_edges[0] + _EPS)
        sx1, sy1 = math.ceil(x_edges[-1] - _EPS), math.ceil(y_edges[-1] - _EPS)
        src = self.reader.read_level(self.level, sx0, sy0, sx1 - sx0, sy1 - sy0)
        return area_resample(src, x_edges - sx0, y_edges - sy0)

    def to_slide(self, xy: np.ndarray) -> np.ndarray:
        """Model-pixel coordinates (..., 2) -> level-0 coordinates (float64)."""
        xy = np.asarray(xy, dtype=np.float64)
        return xy * np.asarray(self.scale_xy) + np.asarray(self.offset)

    def from_slide(self, xy: np.ndarray) -> np.ndarray:
        """Level-0 coordinates (..., 2) -> model-pixel coordinates (float64)."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy - np.asarray(self.offset)) / np.asarray(self.scale_xy)

    def to_qupath(self, xy: np.ndarray) -> np.ndarray:
        """Model-pixel coordinates -> the pixel frame QuPath shows for this file (level 0 minus
        ``reader.qupath_origin``: QuPath's OpenSlide server crops MRXS/SCN/... to their bounds)."""
        return self.to_slide(xy) - np.asarray(self.reader.qupath_origin, dtype=np.float64)

    def describe(self) -> dict:
        """What every output records: resolution used and how model pixels map to the slide."""
        r = self.reader
        return {
            "slide": str(r.path), "format": r.format, "backend": r.backend,
            "mpp": self.target_mpp,
            "slide_mpp": list(r.mpp) if r.mpp else None, "mpp_source": r.mpp_source,
            "level": self.level, "level_downsample": self.level_downsample,
            "scale": list(self.scale_xy), "offset": list(self.offset),
            "qupath_origin": list(r.qupath_origin),
            "size": [self.width, self.height], "bounds": list(r.bounds),
            "resampling": ("none" if self.identity else
                           "bilinear (enlarged)" if self.upsampling or min(self._step) < 1
                           else "area"),
        }
