"""The reader interface every slide backend implements, and the picklable spec that reopens a slide.

A :class:`SlideReader` is one open file. It is NOT shared across processes: a DataLoader worker
reopens the slide from ``reader.spec()`` with :func:`nucleus_seg.slide.open_slide`.

Coordinates follow OpenSlide: ``read_region(x, y, level, w, h)`` takes the top-left corner in
level-0 pixels and a size in pixels of ``level``. ``read_level`` is the same read with the corner
in pixels of ``level`` itself; it is what :class:`~nucleus_seg.slide.ResampledView` uses, so a
pyramid level whose downsample is not an integer (10001 px / 2500 px = 4.0004) is read on its own
pixel grid rather than at a level-0 position that falls between two of its pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np

WHITE = 255  # outside the image and transparent pixels: the colour of an empty glass slide


@dataclass(frozen=True)
class SlideSpec:
    """Everything needed to reopen a slide in another process (picklable, hashable)."""

    path: str
    mpp: Optional[float] = None       # the user's --mpp (overrides the file's metadata)
    backend: Optional[str] = None     # 'openslide' | 'tifffile' | 'image': reopen with the same one
    require_mpp: bool = True


class SlideReader:
    """One open slide: a pyramid of levels, level 0 the finest, pixels RGB uint8.

    Attributes set by every backend: ``path``, ``format`` ('aperio', 'generic-tiff', 'ome-tiff',
    'mirax', 'image', ...), ``level_dimensions`` ((width, height) per level, level 0 first),
    ``level_downsamples``, ``mpp`` (level-0 microns per pixel, (x, y); None only when opened with
    ``require_mpp=False``), ``mpp_source`` ('openslide:aperio.MPP', 'tiff:XResolution',
    'ome:PhysicalSizeX', '--mpp', ...), ``bounds`` ((x, y, w, h) of the scanned area in level-0
    pixels; the whole frame when the file records none), ``qupath_origin`` (the level-0 point QuPath
    shows as (0, 0): the bounds origin where QuPath's OpenSlide server crops to the bounds, else
    (0, 0)), ``properties`` (the file's metadata as strings).
    """

    backend: str = ""

    path: Path
    format: str
    level_dimensions: Tuple[Tuple[int, int], ...]
    level_downsamples: Tuple[float, ...]
    mpp: Optional[Tuple[float, float]]
    mpp_source: str
    bounds: Tuple[int, int, int, int]
    qupath_origin: Tuple[int, int] = (0, 0)
    properties: dict

    def __init__(self, spec: SlideSpec):
        self._spec = spec
        self.path = Path(spec.path)
        self.properties = {}

    # --- what a backend implements -------------------------------------------------------------
    def _read_level_inside(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """RGB uint8 (height, width, 3) of a window lying wholly inside ``level``."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # --- shared behaviour ----------------------------------------------------------------------
    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @property
    def dimensions(self) -> Tuple[int, int]:
        return self.level_dimensions[0]

    def spec(self) -> SlideSpec:
        """A picklable description; ``open_slide(reader.spec())`` reopens this slide the same way."""
        return SlideSpec(str(self.path), self._spec.mpp, self.backend, self._spec.require_mpp)

    def read_level(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """RGB uint8 (height, width, 3); x, y in pixels of ``level``; outside the image: white."""
        self._check_level(level)
        width, height = int(width), int(height)
        if width < 0 or height < 0:
            raise ValueError(f"negative region size {width}x{height}")
        lw, lh = self.level_dimensions[level]
        x0, y0 = max(int(x), 0), max(int(y), 0)
        x1, y1 = min(int(x) + width, lw), min(int(y) + height, lh)
        if x0 == int(x) and y0 == int(y) and x1 - x0 == width and y1 - y0 == height:
            return self._read_level_inside(level, x0, y0, width, height)
        out = np.full((height, width, 3), WHITE, np.uint8)
        if x1 > x0 and y1 > y0:
            out[y0 - int(y):y1 - int(y), x0 - int(x):x1 - int(x)] = \
                self._read_level_inside(level, x0, y0, x1 - x0, y1 - y0)
        return out

    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        """RGB uint8 (height, width, 3); x, y in level-0 pixels (OpenSlide's convention); outside
        the image: white. The corner maps to the ``level`` pixel nearest to x / downsample."""
        self._check_level(level)
        ds = self.level_downsamples[level]
        return self.read_level(level, math.floor(x / ds + 0.5), math.floor(y / ds + 0.5),
                               width, height)

    def best_level_for_downsample(self, downsample: float) -> int:
        """The level with the largest downsample not exceeding ``downsample`` (level 0 if none)."""
        from .resample import choose_level

        return choose_level(self.level_downsamples, downsample)

    def thumbnail(self, max_size: int) -> np.ndarray:
        """The whole level-0 frame, RGB uint8, longest side ``max_size`` (never enlarged), read
        from the coarsest level that is still at least that large and reduced with INTER_AREA."""
        w0, h0 = self.dimensions
        factor = max(w0, h0) / float(max_size)
        if factor <= 1:
            return self.read_level(0, 0, 0, w0, h0)
        level = self.best_level_for_downsample(factor)
        lw, lh = self.level_dimensions[level]
        image = self.read_level(level, 0, 0, lw, lh)
        size = (max(1, round(w0 / factor)), max(1, round(h0 / factor)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    def describe(self) -> dict:
        """What was opened, for logs and output metadata."""
        return {
            "path": str(self.path), "format": self.format, "backend": self.backend,
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "level_downsamples": list(self.level_downsamples),
            "mpp": list(self.mpp) if self.mpp else None, "mpp_source": self.mpp_source,
            "bounds": list(self.bounds),
        }

    def _check_level(self, level: int) -> None:
        if not 0 <= level < len(self.level_dimensions):
            raise ValueError(f"{self.path}: level {level} does not exist "
                             f"(the slide has {len(self.level_dimensions)})")

    def __enter__(self) -> "SlideReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.path.name} format={self.format} "
                f"levels={self.level_dimensions} mpp={self.mpp} ({self.mpp_source})>")

    def __getstate__(self):
        raise TypeError(f"{type(self).__name__} holds an open file and is not shared across "
                        "processes; pass reader.spec() and reopen it with open_slide(spec)")


def level_downsamples_from_dimensions(dims) -> Tuple[float, ...]:
    """Downsample per level as OpenSlide computes it: the mean of the width and height ratios."""
    w0, h0 = dims[0]
    return tuple((w0 / w + h0 / h) / 2.0 for w, h in dims)


def one_line(exc: BaseException) -> str:
    """A library's error message on one line (OpenSlide and tifffile messages can span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
