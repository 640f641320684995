"""Synthetic whole-slide files for tests and benchmarks, written with tifffile from DSB H&E tiles.

A slide is a white canvas (empty glass) with a block of DSB tiles in the middle (tissue) and a few
dust specks (small dark dots the tissue mask must ignore). Writers:

- :func:`write_aperio`: tiled pyramidal TIFF whose ImageDescription starts "Aperio Image Library"
  and carries "|MPP = ...|": OpenSlide opens it as vendor 'aperio' and reports its MPP;
- :func:`write_generic_tiff`: tiled pyramid with X/YResolution in cm (or inch): OpenSlide
  'generic-tiff';
- :func:`write_ome_tiff`: OME-TIFF, pyramid in SubIFDs, PhysicalSizeX/Y: the tifffile reader;
- :func:`write_generic_tiff` with ``mpp=None``: no MPP anywhere (tifffile's default resolution
  1 x 1 with unit NONE);
- :func:`write_truncated`: a copy cut short;
- :func:`write_corrupt_tile`: a copy with one level-0 tile zeroed (fails mid-slide);
- :func:`write_large_slide`: 0.25-4 gigapixel slides written tile by tile (a generator feeds
  tifffile), never holding a level in memory; used by benchmarks/.

Compression is lossless (zlib) unless asked otherwise, so level-0 reads can be compared exactly.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_TRAIN = REPO_ROOT / "data" / "sample" / "dsb2018_he" / "train"
TILE = 256  # TIFF tile size of the small test slides


def dsb_tiles(train_dir: Path = SAMPLE_TRAIN, limit: Optional[int] = None) -> List[np.ndarray]:
    """The H&E images (RGB uint8, alpha dropped) of a DSB-layout train folder, sorted by id."""
    paths = sorted(Path(train_dir).glob("*/images/*.png"))[:limit]
    if not paths:
        raise FileNotFoundError(f"no DSB tiles under {train_dir}")
    return [cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in paths]


def fill_with_tiles(tiles: Sequence[np.ndarray], width: int, height: int) -> np.ndarray:
    """A (height, width, 3) block covered row by row with the tiles, cycling, cut at the edges."""
    block = np.empty((height, width, 3), np.uint8)
    th, tw = tiles[0].shape[:2]
    k = 0
    for y in range(0, height, th):
        for x in range(0, width, tw):
            t = tiles[k % len(tiles)]
            k += 1
            h, w = min(th, height - y), min(tw, width - x)
            block[y:y + h, x:x + w] = t[:h, :w]
    return block


def make_mosaic(width: int = 2048, height: int = 1536, tissue: Tuple[int, int, int, int] = None,
                specks: int = 6, speck_radius: int = 80, tiles: Sequence[np.ndarray] = None,
                seed: int = 0) -> np.ndarray:
    """White canvas, a block of DSB tiles at ``tissue`` = (x, y, w, h) (default: the middle, with
    margins of a fifth of each side, at least 256 px), and ``specks`` dark purple dots of
    ``speck_radius`` px in the left margin, 50 um or more from the tissue (dust or debris: 40 um
    across at 0.25 um/px, 0.0013 mm^2, well below a tissue mask's minimum area)."""
    tiles = list(tiles) if tiles is not None else dsb_tiles()
    canvas = np.full((height, width, 3), 255, np.uint8)
    if tissue is None:
        mx, my = max(256, width // 5), max(256, height // 5)
        tissue = (mx, my, width - 2 * mx, height - 2 * my)
    x, y, w, h = tissue
    canvas[y:y + h, x:x + w] = fill_with_tiles(tiles, w, h)
    rng = np.random.default_rng(seed)
    for _ in range(specks):
        r = speck_radius
        cx = int(rng.integers(r + 8, max(r + 9, x - r - 200)))
        cy = int(rng.integers(r + 8, height - r - 8))
        cv2.circle(canvas, (cx, cy), r, (90, 40, 120), -1)
    return canvas


def pyramid(image: np.ndarray, factors: Sequence[int] = (4, 16)) -> List[np.ndarray]:
    """[image] + INTER_AREA reductions by each factor (from level 0, sizes floored)."""
    h, w = image.shape[:2]
    return [image] + [cv2.resize(image, (max(1, w // f), max(1, h // f)),
                                 interpolation=cv2.INTER_AREA) for f in factors]


def _write_levels(path, levels, first_page: dict, other_pages: dict, compression, tile=TILE,
                  subifds: bool = False) -> Path:
    import tifffile

    path = Path(path)
    common = dict(tile=(tile, tile), photometric="rgb", compression=compression)
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        tw.write(levels[0], **common, **first_page,
                 **({"subifds": len(levels) - 1} if subifds else {}))
        for level in levels[1:]:
            tw.write(level, subfiletype=1, **common, **other_pages)
    return path


def aperio_description(width: int, height: int, mpp: float, tile: int = TILE) -> str:
    return (f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}] "
            f"({tile}x{tile}) RAW|AppMag = {round(10 / mpp)}|MPP = {mpp}|"
            f"Filename = synthetic|Title = nucleus-seg test slide")


def write_aperio(path, image: np.ndarray, mpp: float = 0.25, factors=(4, 16),
                 compression="zlib", tile: int = TILE) -> Path:
    levels = pyramid(image, factors)
    h, w = image.shape[:2]
    first = dict(description=aperio_description(w, h, mpp, tile), metadata=None)
    other = dict(description=f"Aperio Image Library v12.0.15 \r\n{w}x{h} -> reduced", metadata=None)
    return _write_levels(path, levels, first, other, compression, tile)


def write_generic_tiff(path, image: np.ndarray, mpp: Optional[float] = 0.25, unit="CENTIMETER",
                       factors=(4, 16), compression="zlib", tile: int = TILE) -> Path:
    """Tiled pyramid, levels as reduced-resolution pages in the main IFD chain; X/YResolution in
    pixels per cm (or inch) for ``mpp``; ``mpp=None``: tifffile's default 1 x 1, unit NONE."""
    levels = pyramid(image, factors)
    if mpp is None:
        first = dict(metadata=None)
        other = dict(metadata=None)
    else:
        per_unit = {"CENTIMETER": 1e4, "INCH": 25400.0}[unit] / mpp
        first = dict(resolution=(per_unit, per_unit), resolutionunit=unit, metadata=None)
        other = dict(metadata=None)
    return _write_levels(path, levels, first, other, compression, tile)


def write_ome_tiff(path, image: np.ndarray, mpp: float = 0.25, unit: str = "µm", factors=(4, 16),
                   compression="zlib", tile: int = TILE) -> Path:
    """OME-TIFF, reduced levels in SubIFDs of the first page, PhysicalSizeX/Y in ``unit``."""
    levels = pyramid(image, factors)
    size = mpp * {"µm": 1.0, "nm": 1e3, "mm": 1e-3}[unit]
    meta = dict(axes="YXS", PhysicalSizeX=size, PhysicalSizeY=size, PhysicalSizeXUnit=unit,
                PhysicalSizeYUnit=unit)
    return _write_levels(path, levels, dict(metadata=meta), dict(metadata=None), compression, tile,
                         subifds=True)


def write_truncated(source, path, keep: float = 0.6) -> Path:
    """A copy of ``source`` cut after ``keep`` of its bytes (an interrupted download or copy)."""
    data = Path(source).read_bytes()
    path = Path(path)
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def write_corrupt_tile(source, path, at: float = 2 / 3) -> Path:
    """A copy of ``source`` whose level-0 TIFF tile at ``at`` of the tile list (row-major) is
    zeroed: the file opens and its low-resolution levels read, level 0 fails mid-slide."""
    import tifffile

    path = Path(path)
    shutil.copy(source, path)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        k = int(len(page.dataoffsets) * at)
        offset, count = page.dataoffsets[k], page.databytecounts[k]
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\0" * count)
    return path


# --- large slides for benchmarks ------------------------------------------------------------------
BLOCK = 2048  # the pattern block: level-0 content repeats with this period


def large_slide_size(gigapixels: float) -> int:
    """Side of a square slide of about ``gigapixels`` (a multiple of the pattern block)."""
    return max(1, round(math.sqrt(gigapixels * 1e9) / BLOCK)) * BLOCK


class _LargeSlide:
    """Level content of a large synthetic slide, rendered on demand: a grid of BLOCK x BLOCK
    blocks, tissue (a fixed mosaic of DSB tiles) inside an ellipse, white outside. Each level's
    block is the INTER_AREA reduction of the level-0 block, so levels are exact reductions."""

    def __init__(self, side: int, factors: Sequence[int], tiles: Sequence[np.ndarray]):
        self.side = side
        self.n = side // BLOCK
        block = fill_with_tiles(tiles, BLOCK, BLOCK)
        self.blocks = {1: block}
        for f in factors:
            self.blocks[f] = cv2.resize(block, (BLOCK // f, BLOCK // f),
                                        interpolation=cv2.INTER_AREA)
        c = (self.n - 1) / 2.0
        r = max(self.n / 2.0 * 0.9, 0.5)
        iy, ix = np.mgrid[0:self.n, 0:self.n]
        self.tissue = ((ix - c) ** 2 + (iy - c) ** 2) <= r * r  # block grid: True = tissue

    def tissue_fraction(self) -> float:
        return float(self.tissue.mean())

    def region(self, factor: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Pixels [x, x+w) x [y, y+h) of the level reduced by ``factor`` (white beyond the edge)."""
        b = BLOCK // factor
        out = np.full((h, w, 3), 255, np.uint8)
        block = self.blocks[factor]
        for by in range(y // b, min((y + h - 1) // b + 1, self.n)):
            for bx in range(x // b, min((x + w - 1) // b + 1, self.n)):
                if not self.tissue[by, bx]:
                    continue
                y0, y1 = max(y, by * b), min(y + h, (by + 1) * b)
                x0, x1 = max(x, bx * b), min(x + w, (bx + 1) * b)
                out[y0 - y:y1 - y, x0 - x:x1 - x] = block[y0 - by * b:y1 - by * b,
                                                          x0 - bx * b:x1 - bx * b]
        return out


def write_large_slide(path, gigapixels: float, kind: str = "aperio", mpp: float = 0.25,
                      tile: int = 512, compression="jpeg", quality: int = 85,
                      tiles: Sequence[np.ndarray] = None) -> dict:
    """Write a square slide of about ``gigapixels`` (0.25 / 1 / 4 for the benchmarks) tile by tile.

    ``kind``: 'aperio' (OpenSlide, vendor aperio), 'generic' (OpenSlide generic-tiff, resolution in
    cm) or 'ome' (tifffile reader). Levels reduce by 4 until the slide is under ~2,000 px. Returns
    {path, width, height, factors, tissue_fraction}; at most one tile of each level and the
    pattern blocks are in memory at any time."""
    import tifffile

    path = Path(path)
    side = large_slide_size(gigapixels)
    factors = []
    f = 4
    while side // f >= 512 and f <= BLOCK // 4:
        factors.append(f)
        f *= 4
    slide = _LargeSlide(side, factors, tiles if tiles is not None else dsb_tiles())
    levels = [1] + factors

    def tile_iter(factor: int) -> Iterator[np.ndarray]:
        size = side // factor
        for ty in range(0, size, tile):
            for tx in range(0, size, tile):
                yield slide.region(factor, tx, ty, tile, tile)

    opts = dict(tile=(tile, tile), photometric="rgb", dtype=np.uint8, compression=compression,
                compressionargs=({"level": quality} if compression == "jpeg" else None))
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for i, factor in enumerate(levels):
            size = side // factor
            page = dict(shape=(size, size, 3), **opts)
            if i == 0:
                if kind == "aperio":
                    page.update(description=aperio_description(side, side, mpp, tile),
                                metadata=None)
                elif kind == "generic":
                    page.update(resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit="CENTIMETER",
                                metadata=None)
                elif kind == "ome":
                    page.update(subifds=len(levels) - 1,
                                metadata=dict(axes="YXS", PhysicalSizeX=mpp, PhysicalSizeY=mpp))
                else:
                    raise ValueError(f"unknown kind {kind!r}")
            else:
                page.update(subfiletype=1, metadata=None)
            tw.write(tile_iter(factor), **page)
    return dict(path=path, width=side, height=side, factors=levels,
                tissue_fraction=slide.tissue_fraction(), region=slide.region)
