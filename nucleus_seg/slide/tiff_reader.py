"""OME-TIFF and generic (pyramidal or plain) TIFFs that OpenSlide does not read, with tifffile.

Regions are read segment by segment: only the tiles (or strips) a region touches are read from the
file and decoded (``TiffPage.decode``), so a region read never decodes a whole level-0 page; an
uncompressed page is memory-mapped instead. No zarr.

Pyramid: tifffile's series levels (OME SubIFDs, or reduced-resolution pages after the first).
Layouts: interleaved RGB(A) or grey (axes YXS / YX), or planar RGB (SYX); 8-bit, or 16-bit scaled
by the bits per sample it declares (the same factor for every tile, so tiles agree).
MPP: OME PhysicalSizeX/Y (+ units), then an Aperio description's "MPP = ", then the TIFF
X/YResolution tags with ResolutionUnit inch or cm (unit NONE is an aspect ratio, not a size).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from typing import List, Optional

import numpy as np

from ..errors import InputError
from ..image_io import to_rgb8, to_uint8
from .base import WHITE, SlideReader, SlideSpec, level_downsamples_from_dimensions, one_line
from .mpp import MppCandidate, mpp_from_ome_size, mpp_from_tiff_resolution, resolve_mpp

_APERIO_MPP = re.compile(r"\|\s*MPP\s*=\s*([0-9.eE+-]+)")


@contextlib.contextmanager
def _quiet_tifffile():
    """tifffile logs damaged-file warnings (e.g. 'invalid page offset') on stderr; the reader turns
    what matters into one InputError line instead."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


class _Level:
    """One pyramid level: a TIFF page and how its pixels are cut into segments."""

    def __init__(self, page, axes: str, path):
        self.page = page
        self.width, self.height = int(page.imagewidth), int(page.imagelength)
        self.samples = int(page.samplesperpixel)
        self.planar = axes.startswith("S") and self.samples > 1
        if page.is_tiled:
            self.seg_h, self.seg_w = int(page.tilelength), int(page.tilewidth)
        else:
            self.seg_h, self.seg_w = int(page.rowsperstrip or self.height), self.width
            self.seg_h = min(self.seg_h, self.height) or self.height
        self.cols = math.ceil(self.width / self.seg_w)
        self.rows = math.ceil(self.height / self.seg_h)
        self.memmap = None
        if page.is_memmappable and not self.planar:  # uncompressed, contiguous, native order
            shape = (self.height, self.width, self.samples)
            self.memmap = np.memmap(path, dtype=page.dtype, mode="r",
                                    offset=int(page.dataoffsets[0]), shape=shape)

    def data_end(self) -> int:
        ends = [o + c for o, c in zip(self.page.dataoffsets, self.page.databytecounts) if c]
        return max(ends, default=0)


class TiffReader(SlideReader):
    backend = "tifffile"

    def __init__(self, spec: SlideSpec):
        super().__init__(spec)
        import tifffile

        self._tif = None
        try:
            with _quiet_tifffile():
                self._tif = tifffile.TiffFile(str(self.path))
                series = self._pick_series()
                self._init_levels(series)
                candidates = self._mpp_candidates(series)
        except InputError:
            self.close()
            raise
        except Exception as exc:  # tifffile raises TiffFileError, ValueError, struct.error, ...
            self.close()
            raise InputError(self.path, f"cannot be read as a TIFF ({one_line(exc)})") from None
        try:
            self.mpp, self.mpp_source = resolve_mpp(self.path, candidates, spec.mpp,
                                                    spec.require_mpp)
        except BaseException:
            self.close()
            raise

    def _pick_series(self):
        series = [s for s in self._tif.series if len(s.shape) >= 2]
        if not series:
            raise InputError(self.path, "holds no image")
        # the main image is the largest one (SVS/OME files also hold thumbnails, labels, macros)
        self._series_index = max(range(len(series)),
                                 key=lambda i: int(np.prod(series[i].shape[:2]) if series[i].axes
                                                   .startswith("YX") else np.prod(series[i].shape)))
        return series[self._series_index]

    def _init_levels(self, series) -> None:
        tif = self._tif
        self.format = "ome-tiff" if tif.is_ome else "aperio" if tif.is_svs else "generic-tiff"
        levels: List[_Level] = []
        for lvl in series.levels:
            axes = lvl.axes
            if axes not in ("YXS", "YX", "SYX") or len(lvl.pages) != 1:
                raise InputError(self.path, f"unsupported image layout (axes {axes}, "
                                            f"{len(lvl.pages)} planes); expected RGB or grey")
            page = lvl.keyframe
            if page.dtype not in (np.uint8, np.uint16):
                raise InputError(self.path, f"pixel type {page.dtype} is not supported "
                                            "(brightfield slides are 8- or 16-bit)")
            if int(page.photometric) not in (0, 1, 2, 6):  # MINISWHITE, MINISBLACK, RGB, YCBCR
                raise InputError(self.path, f"photometric {page.photometric.name} not supported")
            levels.append(_Level(page, axes, str(self.path)))
        size = os.path.getsize(self.path)
        for i, level in enumerate(levels):
            end = level.data_end()
            if end > size:
                raise InputError(self.path, f"truncated: level {i} needs {end} bytes, the file "
                                            f"has {size}")
        self._levels = levels
        self.level_dimensions = tuple((lv.width, lv.height) for lv in levels)
        self.level_downsamples = level_downsamples_from_dimensions(self.level_dimensions)
        w0, h0 = self.level_dimensions[0]
        self.bounds = (0, 0, w0, h0)
        page0 = levels[0].page
        self.properties = {f"tiff.{tag.name}": str(tag.value) for tag in page0.tags.values()
                           if tag.name in ("XResolution", "YResolution", "ResolutionUnit",
                                           "ImageDescription", "Software", "Make", "Model")}

    def _mpp_candidates(self, series) -> List[MppCandidate]:
        candidates: List[MppCandidate] = []
        if self._tif.is_ome:
            pixels = self._ome_pixels()
            if pixels:
                x = mpp_from_ome_size(pixels.get("PhysicalSizeX"), pixels.get("PhysicalSizeXUnit"))
                y = mpp_from_ome_size(pixels.get("PhysicalSizeY"), pixels.get("PhysicalSizeYUnit"))
                candidates.append((x, y, "ome:PhysicalSizeX"))
        page0 = self._levels[0].page
        match = _APERIO_MPP.search(page0.description or "") if self._tif.is_svs else None
        if match:
            value = float(match.group(1))
            candidates.append((value, value, "tiff:aperio.MPP"))
        tags = page0.tags
        unit = tags.get("ResolutionUnit")
        unit = int(unit.value) if unit is not None else None
        xres, yres = tags.get("XResolution"), tags.get("YResolution")
        x = mpp_from_tiff_resolution(xres.value if xres is not None else None, unit)
        y = mpp_from_tiff_resolution(yres.value if yres is not None else None, unit)
        candidates.append((x, y, "tiff:XResolution"))
        return candidates

    def _ome_pixels(self) -> Optional[dict]:
        import tifffile

        try:
            ome = tifffile.xml2dict(self._tif.ome_metadata)["OME"]
        except Exception:
            return None
        images = ome.get("Image")
        images = images if isinstance(images, list) else [images]
        # tifffile builds one series per OME Image, in order
        index = min(self._series_index, len(images) - 1)
        image = images[index] if images and images[index] else {}
        return image.get("Pixels")

    # --- reading -----------------------------------------------------------------------------
    def _read_level_inside(self, level, x, y, width, height) -> np.ndarray:
        lv = self._levels[level]
        if width == 0 or height == 0:
            return np.full((height, width, 3), WHITE, np.uint8)
        if lv.memmap is not None:
            return self._to_rgb(np.asarray(lv.memmap[y:y + height, x:x + width]), lv)
        out = None
        for row in range(y // lv.seg_h, (y + height - 1) // lv.seg_h + 1):
            for col in range(x // lv.seg_w, (x + width - 1) // lv.seg_w + 1):
                seg = self._segment(lv, row, col)  # (seg rows, seg cols, samples)
                sy0, sx0 = row * lv.seg_h, col * lv.seg_w
                ty0, tx0 = max(y, sy0), max(x, sx0)
                ty1 = min(y + height, sy0 + seg.shape[0])
                tx1 = min(x + width, sx0 + seg.shape[1])
                if out is None:
                    out = np.empty((height, width, seg.shape[2]), seg.dtype)
                out[ty0 - y:ty1 - y, tx0 - x:tx1 - x] = seg[ty0 - sy0:ty1 - sy0, tx0 - sx0:tx1 - sx0]
        return self._to_rgb(out, lv)

    def _segment(self, lv: _Level, row: int, col: int) -> np.ndarray:
        page = lv.page
        planes = lv.samples if lv.planar else 1
        parts = []
        for plane in range(planes):
            index = (plane * lv.rows + row) * lv.cols + col
            offset, count = page.dataoffsets[index], page.databytecounts[index]
            if not count:  # sparse TIFF: a tile never written is empty glass
                fill = np.iinfo(page.dtype).max
                shape = (lv.seg_h, lv.seg_w, 1 if lv.planar else lv.samples)
                parts.append(np.full(shape, fill, page.dtype))
                continue
            fh = self._tif.filehandle
            fh.seek(offset)
            data = fh.read(count)
            try:
                segment, _, _ = page.decode(data, index, jpegtables=page.jpegtables)
            except Exception as exc:
                raise InputError(self.path, f"cannot decode tile {index} of a {lv.width}x"
                                            f"{lv.height} level ({one_line(exc)}); the file may "
                                            "be truncated or corrupt") from None
            segment = np.asarray(segment)
            segment = segment.reshape(segment.shape[-3:] if segment.ndim >= 3 else
                                      segment.shape + (1,))
            parts.append(segment)
        return parts[0] if planes == 1 else np.concatenate(parts, axis=-1)

    def _to_rgb(self, array: np.ndarray, lv: _Level) -> np.ndarray:
        page = lv.page
        array = to_uint8(array, significant_bits=int(page.bitspersample))  # the one rule per dtype
        if int(page.photometric) == 0:  # MINISWHITE: 0 is white
            array = 255 - array
        return to_rgb8(array, "rgb")

    def close(self) -> None:
        for lv in getattr(self, "_levels", []):
            lv.memmap = None
        tif = getattr(self, "_tif", None)
        if tif is not None:
            tif.close()
            self._tif = None
