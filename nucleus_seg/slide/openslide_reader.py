"""Vendor formats through OpenSlide (openslide-python + the openslide-bin wheel: no system library).

OpenSlide 4 reads Aperio (.svs), Hamamatsu (.ndpi, .vms, .vmu), Leica (.scn), MIRAX (.mrxs),
Philips (.tiff), Sakura (.svslide), Trestle, Ventana (.bif), DICOM WSI (.dcm) and generic tiled
TIFF. Regions come back as non-premultiplied RGBA; transparent pixels (outside the scanned area of
a MIRAX slide, say) are composited onto white.

Reading a level whose downsample is not an integer: OpenSlide takes the corner in level-0 pixels and
divides by the downsample, painting fractional positions with interpolation. ``read_level`` asks
for round(x * downsample), which lands within 0.5 / downsample of the level's own pixel x.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from ..errors import InputError
from .base import WHITE, SlideReader, SlideSpec, one_line
from .mpp import MppCandidate, mpp_from_tiff_resolution, resolve_mpp


def _float(props, key) -> Optional[float]:
    try:
        return float(props[key])
    except (KeyError, TypeError, ValueError):
        return None


def openslide_mpp_candidates(props) -> List[MppCandidate]:
    """OpenSlide's own MPP (from the vendor's metadata), then the raw TIFF resolution tags."""
    candidates: List[MppCandidate] = []
    vendor = props.get("openslide.vendor", "")
    x, y = _float(props, "openslide.mpp-x"), _float(props, "openslide.mpp-y")
    if x is not None and y is not None:
        if vendor == "aperio" and "aperio.MPP" in props:
            source = "openslide:aperio.MPP"
        elif vendor == "generic-tiff":
            source = "openslide:tiff.XResolution"
        else:
            source = f"openslide:{vendor}:openslide.mpp-x"
        candidates.append((x, y, source))
    unit = props.get("tiff.ResolutionUnit")
    x = mpp_from_tiff_resolution(props.get("tiff.XResolution"), unit)
    y = mpp_from_tiff_resolution(props.get("tiff.YResolution"), unit)
    if x is not None and y is not None:
        candidates.append((x, y, "tiff:XResolution"))
    return candidates


class OpenSlideReader(SlideReader):
    backend = "openslide"

    def __init__(self, spec: SlideSpec):
        super().__init__(spec)
        import openslide

        self._openslide_error = openslide.OpenSlideError
        try:
            self._slide = openslide.OpenSlide(str(self.path))
        except openslide.OpenSlideUnsupportedFormatError:
            raise InputError(self.path, "not a slide format OpenSlide reads") from None
        except (openslide.OpenSlideError, OSError) as exc:
            raise InputError(self.path, f"cannot be opened as a slide ({one_line(exc)})") from None
        props = dict(self._slide.properties)
        self.properties = props
        self.format = props.get("openslide.vendor", "unknown")
        self.level_dimensions = tuple(tuple(int(v) for v in d)
                                      for d in self._slide.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in self._slide.level_downsamples)
        w0, h0 = self.level_dimensions[0]
        keys = [f"openslide.bounds-{k}" for k in ("x", "y", "width", "height")]
        values = [_float(props, k) for k in keys]
        if all(v is not None for v in values):
            bx, by, bw, bh = (int(v) for v in values)
            self.bounds = (bx, by, bw, bh)
            # QuPath's OpenSlide server shows the image cropped to these bounds (its default since
            # v0.2; '--no-crop' turns it off): its pixel (0, 0) is level-0 (bounds-x, bounds-y)
            self.qupath_origin = (bx, by)
        else:
            self.bounds = (0, 0, w0, h0)
        self.mpp, self.mpp_source = resolve_mpp(self.path, openslide_mpp_candidates(props),
                                                spec.mpp, spec.require_mpp)
        # A truncated file often opens (the directory is at the start) and fails on its first
        # tile: read one pixel of the coarsest level now, so that opening is where it fails.
        self.read_level(self.level_count - 1, 0, 0, 1, 1)

    def _read_level_inside(self, level, x, y, width, height) -> np.ndarray:
        if width == 0 or height == 0:
            return np.full((height, width, 3), WHITE, np.uint8)
        ds = self.level_downsamples[level]
        x0 = x if level == 0 else int(round(x * ds))
        y0 = y if level == 0 else int(round(y * ds))
        try:
            rgba = np.asarray(self._slide.read_region((x0, y0), level, (width, height)))
        except self._openslide_error as exc:
            raise InputError(self.path, f"cannot read level {level} at ({x}, {y}) "
                                        f"({one_line(exc)}); the file may be truncated or corrupt") \
                from None
        alpha = rgba[..., 3]
        if alpha.min() == 255:
            return np.ascontiguousarray(rgba[..., :3])
        a = alpha[..., None].astype(np.uint16)
        rgb = (rgba[..., :3].astype(np.uint16) * a + WHITE * (255 - a) + 127) // 255
        return rgb.astype(np.uint8)

    def close(self) -> None:
        if getattr(self, "_slide", None) is not None:
            self._slide.close()
            self._slide = None
