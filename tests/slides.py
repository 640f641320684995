"""Synthetic whole-slide files for tests and benchmarks, written with tifffile (MIRAX, DICOM: by hand)
from DSB H&E tiles.

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
- :func:`write_leica_scn`: a Leica SCN (BigTIFF, Leica XML in the first IFD): the image sits at an
  offset inside a larger collection, so OpenSlide 'leica' reports non-zero openslide.bounds-x/y;
- :func:`write_ndpi`: a Hamamatsu NDPI (one restart-marked JPEG per level, the private NDPI tags):
  OpenSlide 'hamamatsu';
- :func:`write_mirax`: a 3DHISTECH MIRAX (``.mrxs`` + folder with Slidedat.ini, Index.dat and a
  data file of JPEG or PNG images): empty camera positions around the image, so OpenSlide 'mirax'
  reports non-zero openslide.bounds-x/y; :func:`mirax_levels_decoded` is what it must return;
- :func:`write_dicom_wsi`: a DICOM WSI series (VL Whole Slide Microscopy Image, one Part 10 file
  per level, TILED_FULL frames, RGB or JPEG baseline) written byte by byte: OpenSlide 'dicom';
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


# --- vendor formats: what OpenSlide 4's leica and hamamatsu drivers read ----------------------------
LEICA_XMLNS = "http://www.leica-microsystems.com/scn/2010/10/01"


def _leica_image_xml(name: str, dims: Sequence[Tuple[int, int, int]], nm_per_px: float,
                     offset_nm: Tuple[int, int]) -> str:
    """One <image> of a Leica collection: ``dims`` = (IFD, width, height) per pyramid level, the
    first the finest; the <view> gives its size and offset in the collection in nm."""
    w0, h0 = dims[0][1], dims[0][2]
    dimensions = "".join(f'<dimension sizeX="{w}" sizeY="{h}" r="{r}" ifd="{ifd}"/>'
                         for r, (ifd, w, h) in enumerate(dims))
    return (f'<image name="{name}"><creationDate>2024-01-01T00:00:00.00Z</creationDate>'
            f'<device model="Leica SCN400;Leica SCN" version="1.5.1.10804 2012/05/10 13:29:07"/>'
            f'<pixels sizeX="{w0}" sizeY="{h0}">{dimensions}</pixels>'
            f'<view sizeX="{round(w0 * nm_per_px)}" sizeY="{round(h0 * nm_per_px)}" '
            f'offsetX="{offset_nm[0]}" offsetY="{offset_nm[1]}" spacingZ="0"/>'
            f'<scanSettings><objectiveSettings><objective>{round(10 * 1000 / nm_per_px)}'
            f'</objective></objectiveSettings><illuminationSettings><numericalAperture>0.7'
            f'</numericalAperture><illuminationSource>brightfield</illuminationSource>'
            f'</illuminationSettings></scanSettings></image>')


def write_leica_scn(path, image: np.ndarray, mpp: float = 0.5, offset: Tuple[int, int] = (320, 192),
                    collection: Tuple[int, int] = None, factors=(4, 16), compression="zlib",
                    tile: int = TILE, macro_factor: int = 16) -> Path:
    """A Leica SCN as OpenSlide's leica driver reads it: a BigTIFF whose first IFD (tiled) carries
    the Leica XML: a collection (the glass, ``collection`` level-0 px, default the image plus
    ``offset`` on every side, in nm), a macro image of the whole collection (IFD 0, view offset 0
    and the collection's size: what the driver takes for a macro) and one brightfield main image,
    ``image`` and its reductions by ``factors`` (IFDs 1..), at ``offset`` level-0 px inside the
    collection. OpenSlide then reports the collection as level 0 (transparent outside the main
    image), ``openslide.bounds-x/y`` = ``offset``, and ``openslide.mpp-x`` from the main image's
    level-0 X/YResolution (pixels per cm), not from the XML. Offsets that are multiples of the
    largest factor keep the coarse levels aligned (OpenSlide truncates nm / nm-per-px)."""
    import tifffile

    h, w = image.shape[:2]
    cw, ch = collection or (w + 2 * offset[0], h + 2 * offset[1])
    nm = mpp * 1000.0
    levels = pyramid(image, factors)
    glass = np.full((ch, cw, 3), 255, np.uint8)
    glass[offset[1]:offset[1] + h, offset[0]:offset[0] + w] = image
    macro = cv2.resize(glass, (cw // macro_factor, ch // macro_factor), interpolation=cv2.INTER_AREA)
    macro_xml = _leica_image_xml("macro", [(0, macro.shape[1], macro.shape[0])],
                                 cw * nm / macro.shape[1], (0, 0))
    main_dims = [(1 + i, lv.shape[1], lv.shape[0]) for i, lv in enumerate(levels)]
    main_xml = _leica_image_xml("main", main_dims, nm, (round(offset[0] * nm), round(offset[1] * nm)))
    description = (f'<?xml version="1.0" encoding="utf-8"?><scn xmlns="{LEICA_XMLNS}">'
                   f'<collection name="nucleus-seg synthetic" sizeX="{round(cw * nm)}" '
                   f'sizeY="{round(ch * nm)}"><barcode>MTIzNDU=</barcode>'
                   f'{macro_xml}{main_xml}</collection></scn>')
    path = Path(path)
    common = dict(tile=(tile, tile), photometric="rgb", compression=compression,
                  resolutionunit="CENTIMETER", metadata=None)
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        per_cm = 1e4 * macro.shape[1] / (cw * mpp)
        tw.write(macro, description=description, resolution=(per_cm, per_cm), **common)
        for level in levels:
            per_cm = 1e4 * level.shape[1] / (w * mpp)
            tw.write(level, resolution=(per_cm, per_cm), **common)
    return path


NDPI_FORMAT_FLAG, NDPI_SOURCELENS, NDPI_FOCAL_PLANE, NDPI_MCU_STARTS = 65420, 65421, 65424, 65426


def _restart_marked_jpeg(level: np.ndarray, quality: int, restart_mcus: int):
    """(JPEG bytes, offsets of each restart interval's first byte): baseline 4:4:4 (8 x 8 MCUs), a
    restart marker every ``restart_mcus`` MCUs. Not 4:2:0: OpenSlide 4.0.1 decodes an NDPI tile
    (one MCU row) with libjpeg's fancy upsampling, which reads ahead into the next MCU row and
    fails on the tile's end ('found marker 0xd9 instead of RST0')."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_RST_INTERVAL, restart_mcus,
              cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(level, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {level.shape} JPEG")
    data = encoded.tobytes()
    sos = data.index(b"\xff\xda")
    first = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    starts, k = [first], first
    while True:  # in entropy-coded data 0xFF is followed by 0x00 (stuffing) or a marker
        k = data.find(b"\xff", k)
        if k < 0 or k + 1 >= len(data):
            break
        if 0xD0 <= data[k + 1] <= 0xD7:
            starts.append(k + 2)
        k += 2
    return data, starts


def write_ndpi(path, image: np.ndarray, mpp: float = 0.5, factors=(4, 16), quality: int = 90,
               restart_mcus: int = 8, source_lens: float = 20.0) -> Path:
    """A Hamamatsu NDPI as OpenSlide's hamamatsu driver reads it: a TIFF whose IFDs (finest first)
    each hold one level as a single JPEG strip with restart markers (OpenSlide's tiles are the
    restart intervals: ``restart_mcus`` x 8 px wide, 8 px high), the NDPI tags 65420 (format
    flag: what OpenSlide detects NDPI by), 65421 (source lens; > 0: a pyramid level), 65424
    (focal plane 0) and 65426 (each interval's offset in the JPEG), and X/YResolution in pixels
    per cm (OpenSlide's openslide.mpp-x). Every level's width must be a multiple of
    8 * ``restart_mcus`` and its height of 8 (the intervals tile the level exactly)."""
    import tifffile

    path = Path(path)
    w0 = image.shape[1]
    with tifffile.TiffWriter(path) as tw:
        for level in pyramid(image, factors):
            h, w = level.shape[:2]
            if w % (8 * restart_mcus) or h % 8:
                raise ValueError(f"NDPI level {w}x{h}: width must be a multiple of "
                                 f"{8 * restart_mcus} and height of 8")
            data, starts = _restart_marked_jpeg(level, quality, restart_mcus)
            per_cm = 1e4 * w / (w0 * mpp)
            tags = [(271, "s", 0, "Hamamatsu", True),  # Make: tifffile's NDPI test wants it
                    (NDPI_FORMAT_FLAG, "I", 1, 1, True), (NDPI_SOURCELENS, "f", 1, source_lens, True),
                    (NDPI_FOCAL_PLANE, "i", 1, 0, True),
                    (NDPI_MCU_STARTS, "I", len(starts), starts, True)]
            # the encoded JPEG goes in as it is: one strip, the whole level
            tw.write(iter([data]), shape=(h, w, 3), dtype=np.uint8, photometric="rgb",
                     compression="jpeg", rowsperstrip=h, resolution=(per_cm, per_cm),
                     resolutionunit="CENTIMETER", metadata=None, extratags=tags)
    _ndpi_ifd_layout(path)
    return path


def _ndpi_ifd_layout(path: Path) -> None:
    """Rewrite a little-endian classic TIFF's IFDs as NDPI lays them out (classic TIFF with 64-bit
    offsets): an 8-byte first-IFD offset in the header, and per IFD the 12-byte entries, an 8-byte
    next-IFD offset and a 4-byte high half per entry (zero here: the file is under 4 GB). The new
    IFDs go at the end of the file; the old ones, at offset 8 and after the data, become unused.
    OpenSlide then reads the file in its NDPI mode, and tifffile (which takes a '.ndpi' file for
    this layout) reads it too."""
    data = bytearray(Path(path).read_bytes())
    if data[:4] != b"II*\x00" or int.from_bytes(data[4:8], "little") != 8:
        raise ValueError(f"{path}: expected a little-endian classic TIFF with its first IFD at 8")
    entries, offset = [], 8
    while offset:
        n = int.from_bytes(data[offset:offset + 2], "little")
        for e in range(offset + 2, offset + 2 + 12 * n, 12):
            # OpenSlide's NDPI mode reads every ASCII value out of line, tifffile inlines <= 4 bytes
            if data[e + 2:e + 4] == b"\x02\x00" and int.from_bytes(data[e + 4:e + 8], "little") <= 4:
                raise ValueError(f"{path}: ASCII tag {int.from_bytes(data[e:e + 2], 'little')} "
                                 "of 4 bytes or less would be misread in the NDPI layout")
        entries.append(bytes(data[offset:offset + 2 + 12 * n]))
        offset = int.from_bytes(data[offset + 2 + 12 * n:offset + 6 + 12 * n], "little")
    positions, end = [], len(data) + len(data) % 2
    for ifd in entries:
        positions.append(end)
        n = (len(ifd) - 2) // 12
        end += len(ifd) + 8 + 4 * n
    out = data + b"\x00" * (len(data) % 2)
    for k, ifd in enumerate(entries):
        n = (len(ifd) - 2) // 12
        following = positions[k + 1] if k + 1 < len(positions) else 0
        out += ifd + following.to_bytes(8, "little") + b"\x00" * (4 * n)
    out[4:12] = positions[0].to_bytes(8, "little")  # overwrites the start of the unused old IFD
    Path(path).write_bytes(bytes(out))


def ndpi_levels_decoded(path) -> List[np.ndarray]:
    """Each NDPI level's JPEG strip decoded whole with OpenCV (RGB): what OpenSlide must return."""
    import tifffile

    out = []
    with tifffile.TiffFile(path) as tif, open(path, "rb") as f:
        for page in tif.pages:
            # the StripOffsets / StripByteCounts tags themselves: tifffile presents an NDPI
            # level as the tiles its restart intervals make
            f.seek(int(page.tags[273].value[0]))
            data = np.frombuffer(f.read(int(page.tags[279].value[0])), np.uint8)
            out.append(cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    return out


# --- 3DHISTECH MIRAX -------------------------------------------------------------------------------
MIRAX_INDEX_VERSION = "01.02"


def _encode_tile(tile: np.ndarray, image_format: str, quality: int) -> bytes:
    """One MIRAX image (RGB) as the bytes of a JPEG (OpenCV's default 4:2:0) or PNG file."""
    if image_format == "JPEG":
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(tile, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, quality])
    elif image_format == "PNG":
        ok, data = cv2.imencode(".png", cv2.cvtColor(tile, cv2.COLOR_RGB2BGR))
    else:
        raise ValueError(f"MIRAX image format {image_format!r}: 'JPEG' or 'PNG' here")
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {tile.shape} {image_format} tile")
    return data.tobytes()


class _MiraxLayout:
    """Where :func:`write_mirax` puts things: the glass (white, ``margin`` = (left, top, right,
    bottom) empty camera positions around ``image``, which is padded with white to whole camera
    positions of ``divisions`` x ``tile``), which camera positions were scanned (any pixel not
    white) and each zoom level's images."""

    def __init__(self, image, tile, divisions, margin):
        self.tile, self.divisions = tile, divisions
        tw, th = tile
        self.cam_w, self.cam_h = divisions * tw, divisions * th
        h, w = image.shape[:2]
        cols = margin[0] + -(-w // self.cam_w) + margin[2]
        rows = margin[1] + -(-h // self.cam_h) + margin[3]
        self.glass = np.full((rows * self.cam_h, cols * self.cam_w, 3), 255, np.uint8)
        x0, y0 = margin[0] * self.cam_w, margin[1] * self.cam_h
        self.glass[y0:y0 + h, x0:x0 + w] = image
        self.images_x, self.images_y = cols * divisions, rows * divisions
        blocks = self.glass.reshape(rows, self.cam_h, cols, self.cam_w, 3)
        self.active = (blocks != 255).any(axis=(1, 3, 4))  # (rows, cols): positions scanned

    def images(self, k: int) -> Iterator[Tuple[int, int, np.ndarray]]:
        """(x, y, pixels) of zoom level ``k``'s images: x, y on the level-0 image grid (multiples
        of 2^k), pixels the 2^k x 2^k level-0 images there reduced by 2^k (INTER_AREA). Only
        images covering a scanned camera position (OpenSlide skips the rest)."""
        c, (tw, th), d = 2 ** k, self.tile, self.divisions
        span_w, span_h = c * tw, c * th
        gh, gw = self.glass.shape[:2]
        padded = np.full((-(-gh // span_h) * span_h, -(-gw // span_w) * span_w, 3), 255, np.uint8)
        padded[:gh, :gw] = self.glass
        level = padded if c == 1 else cv2.resize(padded, (padded.shape[1] // c, padded.shape[0] // c),
                                                  interpolation=cv2.INTER_AREA)
        for y in range(0, self.images_y, c):
            for x in range(0, self.images_x, c):
                if self.active[y // d:-(-(y + c) // d), x // d:-(-(x + c) // d)].any():
                    lx, ly = x // c * tw, y // c * th
                    yield x, y, level[ly:ly + th, lx:lx + tw]


def write_mirax(path, image: np.ndarray, mpp: float = 0.25, tile: Tuple[int, int] = (256, 192),
                divisions: int = 2, margin: Tuple[int, int, int, int] = (1, 2, 1, 1),
                levels: int = 3, image_format: str = "JPEG", quality: int = 90) -> Path:
    """A 3DHISTECH MIRAX slide as OpenSlide 4.0's mirax driver reads it: ``name.mrxs`` (only its
    name matters to OpenSlide) beside a folder ``name/`` holding ``Slidedat.ini``, ``Index.dat``
    and ``Data0000.dat``.

    The scanner photographs the glass on a grid of camera positions, each cut into ``divisions``
    x ``divisions`` images of ``tile`` = (w, h) px (CameraImageDivisionsPerSide, DIGITIZER_WIDTH /
    HEIGHT); positions are stored in a VIMSLIDE_POSITION_BUFFER (no overlap here: exactly on the
    grid). ``image`` is placed ``margin`` = (left, top, right, bottom) empty camera positions
    inside the grid (its level-0 corner: ``margin[0] * divisions * tile[0]``, ``margin[1] *
    divisions * tile[1]``), and only the positions holding something other than white glass are
    written: as in a real scan, OpenSlide's level 0 is the whole camera grid and
    ``openslide.bounds-*`` is the box of the positions that exist. ``levels`` zoom levels, each
    image of level k the 2^k x 2^k level-0 images below it reduced by 2^k into one image of the
    same size (IMAGE_CONCAT_FACTOR 1); MICROMETER_PER_PIXEL_X/Y of the level-0 layer is
    OpenSlide's ``openslide.mpp-x/y``. JPEG (as scanners write) or PNG (lossless) images;
    :func:`mirax_levels_decoded` gives what OpenSlide must return."""
    import struct

    path = Path(path)
    if path.suffix != ".mrxs":
        raise ValueError(f"{path}: a MIRAX slide's name ends with .mrxs")
    folder = path.with_suffix("")
    layout = _MiraxLayout(image, tile, divisions, margin)
    slide_id = "6e75636c6575732d7365672d6d697261"  # fixed: the same image gives the same files

    data = bytearray((MIRAX_INDEX_VERSION + slide_id).encode())
    level_records = []  # per level: (image index on the level-0 grid, offset, length, file 0)
    for k in range(levels):
        records = []
        for x, y, pixels in layout.images(k):
            encoded = _encode_tile(pixels, image_format, quality)
            records.append((y * layout.images_x + x, len(data), len(encoded), 0))
            data += encoded
        level_records.append(records)
    # the camera positions: per position a flag byte (1: scanned) and its level-0 x, y (int32)
    rows, cols = layout.active.shape
    positions = b"".join(struct.pack("<bii", int(layout.active[r, c]), c * layout.cam_w,
                                     r * layout.cam_h) for r in range(rows) for c in range(cols))
    positions_record = (len(data), len(positions), 0)
    data += positions

    # Index.dat: version + slide id, the pointer to the hierarchical (zoom level) table and the
    # one to the non-hierarchical (position buffer) table; each table entry points at a list head
    # (0, first page), a page is (count, next page, records...)
    hier_table = len(MIRAX_INDEX_VERSION) + len(slide_id) + 8
    nonhier_table = hier_table + 4 * levels
    cursor = nonhier_table + 4
    index = bytearray((MIRAX_INDEX_VERSION + slide_id).encode())
    index += struct.pack("<ii", hier_table, nonhier_table)
    level_heads = []
    for records in level_records:
        level_heads.append(cursor)
        cursor += 16 + 16 * len(records)
    index += b"".join(struct.pack("<i", p) for p in level_heads)
    index += struct.pack("<i", cursor)  # the position buffer's record
    for head, records in zip(level_heads, level_records):
        index += struct.pack("<iiii", 0, head + 8, len(records), 0)
        index += b"".join(struct.pack("<iiii", *r) for r in records)
    # a non-hierarchical page: count 1, next page 0, two zeros, then offset, size, file number
    index += struct.pack("<ii", 0, cursor + 8) + struct.pack("<iiii", 1, 0, 0, 0)
    index += struct.pack("<iii", *positions_record)

    tw, th = tile
    sections = "".join(
        f"[LAYER_0_LEVEL_{k}_SECTION]\nOVERLAP_X = 0\nOVERLAP_Y = 0\n"
        f"MICROMETER_PER_PIXEL_X = {mpp * 2 ** k!r}\nMICROMETER_PER_PIXEL_Y = {mpp * 2 ** k!r}\n"
        f"IMAGE_FORMAT = {image_format}\nIMAGE_FILL_COLOR_BGR = 16777215\n"
        f"DIGITIZER_WIDTH = {tw}\nDIGITIZER_HEIGHT = {th}\n"
        f"IMAGE_CONCAT_FACTOR = {0 if k == 0 else 1}\n\n" for k in range(levels))
    zoom_levels = "".join(f"HIER_0_VAL_{k} = ZoomLevel_{k}\n"
                          f"HIER_0_VAL_{k}_SECTION = LAYER_0_LEVEL_{k}_SECTION\n" for k in range(levels))
    slidedat = (
        f"[GENERAL]\nSLIDE_VERSION = 01.02\nSLIDE_ID = {slide_id}\n"
        f"IMAGENUMBER_X = {layout.images_x}\nIMAGENUMBER_Y = {layout.images_y}\n"
        f"OBJECTIVE_MAGNIFICATION = {round(10 / mpp)}\nCameraImageDivisionsPerSide = {divisions}\n\n"
        f"[HIERARCHICAL]\nINDEXFILE = Index.dat\nHIER_COUNT = 1\n"
        f"HIER_0_NAME = Slide zoom level\nHIER_0_COUNT = {levels}\n{zoom_levels}"
        f"NONHIER_COUNT = 1\nNONHIER_0_NAME = VIMSLIDE_POSITION_BUFFER\nNONHIER_0_COUNT = 1\n"
        f"NONHIER_0_VAL_0 = default\nNONHIER_0_VAL_0_SECTION = NONHIER_0_VAL_0\n\n"
        f"[DATAFILE]\nFILE_COUNT = 1\nFILE_0 = Data0000.dat\n\n{sections}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Slidedat.ini").write_text(slidedat)
    (folder / "Index.dat").write_bytes(bytes(index))
    (folder / "Data0000.dat").write_bytes(bytes(data))
    path.write_bytes(b"")  # OpenSlide opens the folder beside it; the file's content is unused
    return path


def mirax_levels_decoded(image: np.ndarray, tile: Tuple[int, int] = (256, 192), divisions: int = 2,
                         margin: Tuple[int, int, int, int] = (1, 2, 1, 1), levels: int = 3,
                         image_format: str = "JPEG", quality: int = 90) -> List[np.ndarray]:
    """Each zoom level of :func:`write_mirax`'s slide (same arguments) as OpenSlide must return
    it: the written images encoded and decoded with OpenCV, placed on white; camera positions
    that were not scanned white (OpenSlide leaves them transparent)."""
    layout = _MiraxLayout(image, tile, divisions, margin)
    gh, gw = layout.glass.shape[:2]
    tw, th = tile
    out = []
    for k in range(levels):
        c = 2 ** k
        level = np.full((gh // c + th, gw // c + tw, 3), 255, np.uint8)
        for x, y, pixels in layout.images(k):
            encoded = np.frombuffer(_encode_tile(pixels, image_format, quality), np.uint8)
            lx, ly = x // c * tw, y // c * th
            level[ly:ly + th, lx:lx + tw] = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR),
                                                         cv2.COLOR_BGR2RGB)
        for r, col in zip(*np.nonzero(~layout.active)):
            y0, x0 = r * layout.cam_h // c, col * layout.cam_w // c
            level[y0:y0 + -(-layout.cam_h // c), x0:x0 + -(-layout.cam_w // c)] = 255
        out.append(level[:gh // c, :gw // c])
    return out


# --- DICOM WSI (VL Whole Slide Microscopy Image) ---------------------------------------------------
DICOM_WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"  # VL Whole Slide Microscopy Image Storage
DICOM_SYNTAXES = {"none": "1.2.840.10008.1.2.1",        # explicit VR little endian, native frames
                  "jpeg": "1.2.840.10008.1.2.4.50"}     # JPEG baseline, encapsulated frames
# VRs whose header is tag, VR, two reserved bytes and a 4-byte length (the others: 2-byte length)
_DICOM_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
_DICOM_ITEM, _DICOM_SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)


def _dicom_uid(seed: str, what: str) -> str:
    """A UID under the UUID root 2.25 (no registered root needed), fixed by ``seed`` and ``what``
    so the same call writes the same bytes."""
    import uuid

    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'nucleus-seg/{seed}/{what}').int}"


def _dicom_value(vr: str, value) -> bytes:
    """One value in explicit VR little endian: numbers packed, strings backslash-joined and padded
    to an even length (UIDs with NUL, text with a space), a sequence as items of defined length."""
    import struct

    if vr == "SQ":
        return b"".join(_dicom_tag(*_DICOM_ITEM) + struct.pack("<I", len(item)) + item
                        for item in (_dicom_dataset(elements) for elements in value))
    if vr in ("US", "UL", "FL", "FD"):
        fmt = {"US": "<H", "UL": "<I", "FL": "<f", "FD": "<d"}[vr]
        values = value if isinstance(value, (list, tuple)) else [value]
        return b"".join(struct.pack(fmt, v) for v in values)
    if vr in ("OB", "OW"):
        data = bytes(value)
    else:
        values = value if isinstance(value, (list, tuple)) else [value]
        data = "\\".join(str(v) for v in values).encode("ascii")
    if len(data) % 2:
        data += b"\0" if vr in ("UI", "OB") else b" "
    return data


def _dicom_tag(group: int, element: int) -> bytes:
    import struct

    return struct.pack("<HH", group, element)


def _dicom_element(tag: Tuple[int, int], vr: str, value) -> bytes:
    import struct

    data = _dicom_value(vr, value)
    if vr in _DICOM_LONG_VRS:
        return _dicom_tag(*tag) + vr.encode() + b"\0\0" + struct.pack("<I", len(data)) + data
    return _dicom_tag(*tag) + vr.encode() + struct.pack("<H", len(data)) + data


def _dicom_dataset(elements) -> bytes:
    """Elements (tag, VR, value) in ascending tag order, as a data set must be."""
    return b"".join(_dicom_element(*e) for e in sorted(elements, key=lambda e: e[0]))


def _dicom_frames(level: np.ndarray, tile: int) -> List[np.ndarray]:
    """The level cut into tile x tile frames, row by row (TILED_FULL order); edge frames padded
    with white (OpenSlide clips them to the level's size)."""
    h, w = level.shape[:2]
    frames = []
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            frame = np.full((tile, tile, 3), 255, np.uint8)
            part = level[y:y + tile, x:x + tile]
            frame[:part.shape[0], :part.shape[1]] = part
            frames.append(frame)
    return frames


def _dicom_jpeg(frame: np.ndarray, quality: int) -> bytes:
    """A JPEG baseline frame, YCbCr with 4:2:2 chroma: what PhotometricInterpretation
    YBR_FULL_422 says."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality,
                             cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {frame.shape} JPEG frame")
    return data.tobytes()


def _dicom_pixel_data(frames: List[np.ndarray], compression: str, quality: int) -> bytes:
    """The Pixel Data element: native (all frames back to back, OB of defined length) or
    encapsulated (undefined length: a Basic Offset Table item with each frame's offset from the
    first frame's item, one item per frame, a sequence delimiter)."""
    import struct

    if compression == "none":
        return _dicom_element((0x7FE0, 0x0010), "OB", b"".join(f.tobytes() for f in frames))
    items, offsets, position = [], [], 0
    for frame in frames:
        data = _dicom_jpeg(frame, quality)
        data += b"\0" * (len(data) % 2)  # items have even lengths
        offsets.append(position)
        items.append(_dicom_tag(*_DICOM_ITEM) + struct.pack("<I", len(data)) + data)
        position += len(items[-1])
    table = struct.pack(f"<{len(offsets)}I", *offsets)
    return (_dicom_tag(0x7FE0, 0x0010) + b"OB\0\0" + struct.pack("<I", 0xFFFFFFFF)
            + _dicom_tag(*_DICOM_ITEM) + struct.pack("<I", len(table)) + table
            + b"".join(items) + _dicom_tag(*_DICOM_SEQUENCE_END) + struct.pack("<I", 0))


def write_dicom_wsi(folder, image: np.ndarray, mpp: float = 0.25, factors=(4, 16), tile: int = 256,
                    compression: str = "none", quality: int = 90, seed: str = "slide") -> List[Path]:
    """A DICOM WSI series as OpenSlide 4.0's dicom driver (libdicom) reads it: one Part 10 file
    per pyramid level (``level-0.dcm``, ...; returned level 0 first) in ``folder``, written byte by
    byte (no pydicom): 128-byte preamble, "DICM", the file meta group (its group length first),
    then an explicit VR little endian data set of the VL Whole Slide Microscopy Image IOD.

    Each level: ImageType ``.../VOLUME/NONE``, ``tile`` x ``tile`` frames in DimensionOrganizationType
    TILED_FULL order (no per-frame positions: frame k is tile (k mod across, k div across)),
    TotalPixelMatrixColumns/Rows the level's size (``pyramid(image, factors)``), PixelSpacing
    (mm: ``mpp * factor / 1000``) in the Shared Functional Groups' Pixel Measures, which OpenSlide
    reports as ``openslide.mpp-x/y``. Study, series and frame-of-reference UIDs are shared by the
    files (OpenSlide gathers the files of the opened file's SeriesInstanceUID from its folder);
    SOP instance UIDs differ. ``compression`` 'none' (RGB frames, native pixel data: exact) or
    'jpeg' (JPEG baseline, YBR_FULL_422, encapsulated with a Basic Offset Table). ``seed`` fixes
    the UIDs: a second series in the same folder needs another seed."""
    if compression not in DICOM_SYNTAXES:
        raise ValueError(f"DICOM compression {compression!r}: one of {sorted(DICOM_SYNTAXES)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    h0, w0 = image.shape[:2]
    study, series = _dicom_uid(seed, "study"), _dicom_uid(seed, "series")
    frame_of_reference, organization = _dicom_uid(seed, "frame-of-reference"), _dicom_uid(seed, "dim")
    paths = []
    for number, (factor, level) in enumerate(zip((1, *factors), pyramid(image, factors))):
        h, w = level.shape[:2]
        instance = _dicom_uid(seed, f"level-{number}")
        frames = _dicom_frames(level, tile)
        spacing_mm = mpp * factor / 1000
        lossy = compression == "jpeg"
        elements = [
            ((0x0008, 0x0008), "CS", ["ORIGINAL" if number == 0 else "DERIVED", "PRIMARY",
                                      "VOLUME", "NONE" if number == 0 else "RESAMPLED"]),
            ((0x0008, 0x0016), "UI", DICOM_WSI_SOP_CLASS),
            ((0x0008, 0x0018), "UI", instance),
            ((0x0008, 0x0020), "DA", "20250101"), ((0x0008, 0x0030), "TM", "120000"),
            ((0x0008, 0x0023), "DA", "20250101"), ((0x0008, 0x0033), "TM", "120000"),
            ((0x0008, 0x002A), "DT", "20250101120000"),
            ((0x0008, 0x0050), "SH", "0"),                       # AccessionNumber
            ((0x0008, 0x0060), "CS", "SM"),                      # Modality: slide microscopy
            ((0x0008, 0x0070), "LO", "nucleus-seg tests"),       # Manufacturer
            ((0x0008, 0x0090), "PN", "Nobody"),                  # ReferringPhysicianName
            ((0x0008, 0x1090), "LO", "write_dicom_wsi"),         # ManufacturerModelName
            ((0x0008, 0x9206), "CS", "VOLUME"),                  # VolumetricProperties
            ((0x0010, 0x0010), "PN", "Synthetic^Slide"), ((0x0010, 0x0020), "LO", "0"),
            ((0x0010, 0x0030), "DA", "19700101"), ((0x0010, 0x0040), "CS", "O"),
            ((0x0018, 0x1000), "LO", "0"), ((0x0018, 0x1020), "LO", "1"),  # serial, software
            ((0x0020, 0x000D), "UI", study), ((0x0020, 0x000E), "UI", series),
            ((0x0020, 0x0010), "SH", "1"), ((0x0020, 0x0011), "IS", 1),
            ((0x0020, 0x0013), "IS", number + 1),               # InstanceNumber
            ((0x0020, 0x0052), "UI", frame_of_reference),
            ((0x0020, 0x1040), "LO", "SLIDE_CORNER"),            # PositionReferenceIndicator
            ((0x0020, 0x9221), "SQ", [[((0x0020, 0x9164), "UI", organization)]]),
            ((0x0020, 0x9311), "CS", "TILED_FULL"),
            ((0x0028, 0x0002), "US", 3),                         # SamplesPerPixel
            ((0x0028, 0x0004), "CS", "YBR_FULL_422" if lossy else "RGB"),
            ((0x0028, 0x0006), "US", 0),                         # PlanarConfiguration: RGBRGB...
            ((0x0028, 0x0008), "IS", len(frames)),               # NumberOfFrames
            ((0x0028, 0x0010), "US", tile), ((0x0028, 0x0011), "US", tile),  # Rows, Columns
            ((0x0028, 0x0100), "US", 8), ((0x0028, 0x0101), "US", 8),
            ((0x0028, 0x0102), "US", 7), ((0x0028, 0x0103), "US", 0),
            ((0x0028, 0x0301), "CS", "NO"),                      # BurnedInAnnotation
            ((0x0028, 0x2110), "CS", "01" if lossy else "00"),   # LossyImageCompression
            ((0x0040, 0x0512), "LO", "S-0"),                     # ContainerIdentifier
            ((0x0048, 0x0001), "FL", w0 * mpp / 1000),           # ImagedVolumeWidth (mm)
            ((0x0048, 0x0002), "FL", h0 * mpp / 1000),
            ((0x0048, 0x0003), "FL", 0.004),                     # ImagedVolumeDepth (mm)
            ((0x0048, 0x0006), "UL", w), ((0x0048, 0x0007), "UL", h),  # TotalPixelMatrix
            ((0x0048, 0x0008), "SQ", [[((0x0040, 0x072A), "DS", 0), ((0x0040, 0x073A), "DS", 0)]]),
            ((0x0048, 0x0010), "CS", "NO"),                      # SpecimenLabelInImage
            ((0x0048, 0x0011), "CS", "AUTO"), ((0x0048, 0x0012), "CS", "NO"),
            ((0x0048, 0x0102), "DS", [0, -1, 0, -1, 0, 0]),      # ImageOrientationSlide
            ((0x0048, 0x0105), "SQ", [[((0x0048, 0x0106), "SH", "1"),  # OpticalPathSequence
                                       ((0x0048, 0x0112), "DS", round(10 / mpp))]]),
            ((0x0048, 0x0302), "UL", 1), ((0x0048, 0x0303), "UL", 1),  # optical paths, planes
            ((0x5200, 0x9229), "SQ", [[((0x0028, 0x9110), "SQ", [[  # Shared Functional Groups
                ((0x0018, 0x0050), "DS", 0.004),                 # SliceThickness (mm)
                ((0x0028, 0x0030), "DS", [repr(spacing_mm), repr(spacing_mm)]),  # row, column
            ]])]]),
        ]
        meta = _dicom_dataset([
            ((0x0002, 0x0001), "OB", b"\0\1"),
            ((0x0002, 0x0002), "UI", DICOM_WSI_SOP_CLASS), ((0x0002, 0x0003), "UI", instance),
            ((0x0002, 0x0010), "UI", DICOM_SYNTAXES[compression]),
            ((0x0002, 0x0012), "UI", _dicom_uid("nucleus-seg", "implementation")),
        ])
        path = folder / f"level-{number}.dcm"
        with open(path, "wb") as f:
            f.write(b"\0" * 128 + b"DICM")
            f.write(_dicom_element((0x0002, 0x0000), "UL", len(meta)) + meta)
            f.write(_dicom_dataset(elements))
            f.write(_dicom_pixel_data(frames, compression, quality))
        paths.append(path)
    return paths


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
