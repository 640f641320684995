"""Tissue masks: where on the slide there is tissue, on a low-resolution grid.

Automatic: the scanned area is read at ``mask_mpp`` (8 um/px by default, from the coarsest pyramid
level that is fine enough, area-averaged; keep it within 8-32 um/px: on finer grids nuclei and
stroma separate and Otsu splits those instead of tissue from glass) and thresholded with Otsu on a stain score: the larger of
HSV saturation (stained tissue is coloured, glass is white or grey) and darkness below the glass
(the 99th percentile of brightness minus the pixel's; pale, barely stained tissue has little colour
but is darker than the glass). Otsu always splits something, so on blank glass it would split
noise: its threshold is floored at ``MIN_SATURATION`` (20 of 255; glass tint and JPEG noise score
below ~15), which keeps a blank slide empty instead of inventing tissue. Then
morphological closing (gaps under ``close_um``), opening (specks under ``open_um``), filling holes
smaller than ``max_hole_um2`` and dropping pieces smaller than ``min_area_um2``.

Or from the user: a mask image (any size, non-zero = tissue, covering the slide's scanned area as
QuPath shows it) or a QuPath GeoJSON file (annotations; Polygon / MultiPolygon with holes, in
QuPath's pixel frame), rasterised onto the same grid.

An empty mask is an InputError naming the file: the slide would produce nothing.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..errors import InputError
from ..fileio import atomic_write_bytes
from ..geometry import geojson_rings, paste_crop, rasterise_rings
from ..image_io import read_mask
from ..qupath import object_type, read_geojson_features
from .base import SlideReader
from .resample import ResampledView

MASK_MPP = 8.0           # um per mask pixel
MIN_SATURATION = 20      # floor of the Otsu threshold (0-255)
CLOSE_UM = 32.0          # close gaps narrower than this
OPEN_UM = 16.0           # remove specks thinner than this
MAX_HOLE_UM2 = 20000.0   # fill holes smaller than this (~140 um across): lumina stay, fat gaps too
MIN_AREA_UM2 = 10000.0   # drop tissue pieces smaller than this (0.01 mm^2: dust, debris)
_MAX_GRID = 4096         # mask side when the slide has no MPP (user regions only)


class TissueMask:
    """A boolean mask on a grid over the slide's scanned area.

    Mask pixel (i, j) covers level-0 [origin_x + j*downsample, +downsample) x
    [origin_y + i*downsample_y, +downsample_y)."""

    def __init__(self, mask: np.ndarray, downsample: float, origin=(0.0, 0.0),
                 downsample_y: Optional[float] = None, source: str = "", info: dict = None):
        self.mask = np.asarray(mask, dtype=bool)
        self.downsample = float(downsample)
        self.downsample_y = float(downsample_y if downsample_y is not None else downsample)
        self.origin = (float(origin[0]), float(origin[1]))
        self.source = source
        self.info = dict(info or {})
        self._integral = None

    def fraction(self, x0: float, y0: float, x1: float, y1: float) -> float:
        """Tissue fraction of the level-0 box [x0, x1) x [y0, y1) (area-weighted; 0 outside)."""
        area = (x1 - x0) * (y1 - y0)
        if area <= 0:
            return 0.0
        if self._integral is None:
            self._integral = cv2.integral(self.mask.astype(np.uint8)).astype(np.float64)
        h, w = self.mask.shape
        gx0 = min(max((x0 - self.origin[0]) / self.downsample, 0.0), w)
        gx1 = min(max((x1 - self.origin[0]) / self.downsample, 0.0), w)
        gy0 = min(max((y0 - self.origin[1]) / self.downsample_y, 0.0), h)
        gy1 = min(max((y1 - self.origin[1]) / self.downsample_y, 0.0), h)
        if gx1 <= gx0 or gy1 <= gy0:
            return 0.0
        s = self._area_below
        covered = s(gx1, gy1) - s(gx0, gy1) - s(gx1, gy0) + s(gx0, gy0)
        return float(covered * self.downsample * self.downsample_y / area)

    def _area_below(self, x: float, y: float) -> float:
        # mask pixels in [0, x) x [0, y): the summed-area table is exactly bilinear between its
        # grid points for a piecewise-constant mask
        t = self._integral
        i, j = min(int(y), t.shape[0] - 2), min(int(x), t.shape[1] - 2)
        fy, fx = y - i, x - j
        return ((1 - fy) * ((1 - fx) * t[i, j] + fx * t[i, j + 1])
                + fy * ((1 - fx) * t[i + 1, j] + fx * t[i + 1, j + 1]))

    def area_um2(self, mpp) -> float:
        """Tissue area in square microns, for level-0 microns per pixel ``mpp`` (float or (x, y))."""
        mx, my = (mpp, mpp) if np.isscalar(mpp) else mpp
        return float(self.mask.sum()) * self.downsample * mx * self.downsample_y * my

    def save_png(self, path, overwrite: bool = False) -> Path:
        """The mask as an 8-bit PNG (255 = tissue), one pixel per mask cell, for a person to check."""
        ok, data = cv2.imencode(".png", self.mask.astype(np.uint8) * 255)
        if not ok:
            raise RuntimeError("PNG encoding failed")
        return atomic_write_bytes(path, data.tobytes(), overwrite)

    def describe(self) -> dict:
        return {"source": self.source, "shape": list(self.mask.shape),
                "downsample": [self.downsample, self.downsample_y], "origin": list(self.origin),
                "tissue_fraction": float(self.mask.mean()) if self.mask.size else 0.0,
                **self.info}

    @classmethod
    def full(cls, reader: SlideReader) -> "TissueMask":
        """All tissue (for images processed whole, or when tissue detection is turned off)."""
        bx, by, bw, bh = reader.bounds
        return cls(np.ones((1, 1), bool), bw, (bx, by), bh, source="all")


def _low_res_rgb(view: ResampledView, source_chunk: int = 2048) -> np.ndarray:
    """The whole view, read in chunks of about ``source_chunk`` source pixels a side."""
    step = max(view.scale_xy) / view.level_downsample
    chunk = max(16, int(source_chunk / max(step, 1.0)))
    out = np.empty((view.height, view.width, 3), np.uint8)
    for y in range(0, view.height, chunk):
        for x in range(0, view.width, chunk):
            h, w = min(chunk, view.height - y), min(chunk, view.width - x)
            out[y:y + h, x:x + w] = view.read(x, y, w, h)
    return out


def _disk(radius_px: float) -> Optional[np.ndarray]:
    r = int(round(radius_px))
    if r < 1:
        return None
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _remove_small(mask: np.ndarray, min_px: float, keep_touching_border: bool = True) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_px
    if keep_touching_border:
        h, w = mask.shape
        x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
        bw, bh = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
        keep |= (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)
    keep[0] = False
    return keep[labels]


def detect_tissue(rgb: np.ndarray, pixel_um: float, close_um: float = CLOSE_UM,
                  open_um: float = OPEN_UM, max_hole_um2: float = MAX_HOLE_UM2,
                  min_area_um2: float = MIN_AREA_UM2) -> Tuple[np.ndarray, dict]:
    """Boolean tissue mask of a low-resolution RGB image whose pixels are ``pixel_um`` wide."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    value = hsv[:, :, 2].astype(np.int16)
    # darker than the glass: pale, barely stained tissue has little saturation but is darker than
    # the background (the 99th percentile of brightness, so a tinted glass counts as 0)
    darkness = np.clip(np.percentile(value, 99) - value, 0, 255).astype(np.uint8)
    # no median filter: the area averaging down to mask_mpp already removed pixel noise, and at
    # 32 um/px a 3x3 median would bridge 100 um gaps
    stain = np.maximum(hsv[:, :, 1], darkness)
    otsu, _ = cv2.threshold(stain, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = max(float(otsu), float(MIN_SATURATION))
    mask = (stain > threshold).astype(np.uint8)
    close = _disk(close_um / pixel_um / 2)
    if close is not None:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, close)
    opening = _disk(open_um / pixel_um / 2)
    if opening is not None:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, opening)
    px_area = pixel_um * pixel_um
    # holes are background components that are small and do not touch the border: fill them
    background = _remove_small(mask == 0, max_hole_um2 / px_area, keep_touching_border=True)
    mask = ~background
    mask = _remove_small(mask, min_area_um2 / px_area, keep_touching_border=False)
    info = {"method": "otsu(max(saturation, darkness))", "otsu_threshold": float(otsu),
            "threshold": threshold, "mask_um_per_px": pixel_um}
    return mask, info


def _read_mask_image(path: Path, shape) -> np.ndarray:
    image = read_mask(path)  # the package's mask reader: non-zero pixels are tissue
    h, w = shape
    ih, iw = image.shape
    if abs(iw / ih - w / h) > 0.02 * (w / h) + 1.0 / min(ih, h):
        raise InputError(path, f"mask is {iw}x{ih} but the slide's area is {w}x{h} "
                               "(different aspect ratio); it must cover the whole slide")
    scaled = cv2.resize((image > 0).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return scaled >= 0.5


def _geojson_polygons(path: Path) -> List[List[np.ndarray]]:
    """The rings of each Polygon / MultiPolygon annotation of a QuPath GeoJSON file (detections and
    cells are results, not regions), read by the package's one QuPath reader."""
    polygons: List[List[np.ndarray]] = []
    for index, feature in enumerate(read_geojson_features(path)):
        geometry = feature.get("geometry")
        if object_type(feature) != "annotation" or not isinstance(geometry, dict) or \
                geometry.get("type") not in ("Polygon", "MultiPolygon"):
            continue
        try:
            polygons.append(geojson_rings(geometry))
        except ValueError as exc:
            raise InputError(path, f"feature {index}: {exc}") from None
    if not polygons:
        raise InputError(path, "holds no Polygon or MultiPolygon annotation")
    return polygons


def _rasterise(polygons, shape, to_grid) -> np.ndarray:
    """Grid cells whose centres the polygons cover (the package's one rasteriser)."""
    out = np.zeros(shape, bool)
    window = (0, 0, shape[1], shape[0])
    for rings in polygons:
        crop = rasterise_rings([to_grid(r) for r in rings], window)
        if crop is not None:
            paste_crop(out, crop, True)
    return out


def tissue_mask(reader: SlideReader, *, region: Union[str, Path, None] = None,
                mask_mpp: float = MASK_MPP, close_um: float = CLOSE_UM, open_um: float = OPEN_UM,
                max_hole_um2: float = MAX_HOLE_UM2,
                min_area_um2: float = MIN_AREA_UM2) -> TissueMask:
    """The slide's tissue: detected (Otsu on saturation + morphology, see the module docstring) or
    from ``region``, a mask image or a QuPath GeoJSON file (``.geojson`` / ``.json``).

    InputError naming the file if the mask comes out empty, or for an unreadable region file."""
    bx, by, bw, bh = reader.bounds
    if reader.mpp is not None:
        view = ResampledView(reader, max(mask_mpp, max(reader.mpp)))
        ds_x, ds_y = view.scale_xy
        shape = (view.height, view.width)
    elif region is not None:
        view = None
        ds_x = ds_y = max(1.0, max(bw, bh) / _MAX_GRID)
        shape = (max(1, math.ceil(bh / ds_y)), max(1, math.ceil(bw / ds_x)))
    else:
        raise InputError(reader.path, "no microns-per-pixel in the file, which tissue detection "
                                      "needs; pass --mpp or a tissue region")
    if region is None:
        rgb = _low_res_rgb(view)
        mask, info = detect_tissue(rgb, view.target_mpp, close_um, open_um, max_hole_um2,
                                   min_area_um2)
        if not mask.any():
            raise InputError(reader.path, "no tissue found (Otsu on saturation/darkness, threshold "
                                          f"{info['threshold']:.0f}/255); pass a tissue region "
                                          "(mask PNG or QuPath GeoJSON) if there is tissue")
        return TissueMask(mask, ds_x, (bx, by), ds_y, source="detected", info=info)
    region = Path(region)
    if not region.is_file():
        raise InputError(region, "tissue region file not found")
    if region.suffix.lower() in (".geojson", ".json"):
        qx, qy = reader.qupath_origin
        polygons = _geojson_polygons(region)
        scale = np.array([ds_x, ds_y])
        shift = np.array([qx - bx, qy - by], dtype=np.float64)
        mask = _rasterise(polygons, shape, lambda ring: (ring + shift) / scale)
        source = f"geojson:{region}"
    else:
        mask = _read_mask_image(region, shape)
        source = f"mask:{region}"
    if not mask.any():
        raise InputError(region, "the tissue region covers no part of the slide "
                                 f"({reader.path.name}, {bw}x{bh} px)")
    return TissueMask(mask, ds_x, (bx, by), ds_y, source=source)
