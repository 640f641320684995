"""Per-instance geometry, in one place: mask crops, boxes, COCO RLE and the polygon tracer.

Used by the converters, the training dataset, validation, metrics and inference alike.

- :class:`MaskCrop`: a mask stored as its tight bounding box (origin + boolean array), so memory follows
  the nuclei, not the image size; with paste / intersection / union / IoU helpers.
- :func:`mask_bbox`: tight ``(x, y, w, h)`` box of a mask's non-zero pixels.
- RLE: :func:`crop_to_rle` (crop -> compressed COCO RLE, equal to ``pycocotools.mask.encode`` of the
  full mask, at the cost of the crop), :func:`to_rle` (any COCO segmentation -> pycocotools RLE),
  :func:`decode_segmentation` (-> full-size mask), :func:`crop_from_segmentation` (-> MaskCrop without
  a full-size array), :func:`rle_run_lengths` (the compressed ``counts`` string parser; for many
  strings at once :func:`rle_run_lengths_batch`).
- One tracer with two outputs: :func:`coco_polygons` (rings a quarter pixel inside the pixel edges, so
  pycocotools rasterises them back to the same pixels) and :func:`geojson_geometry` (rings on the pixel
  edges, every component, holes kept, valid per OGC/shapely); its inverse :func:`rasterise_geojson`
  (pixel-centre sampling: GeoJSON / QuPath polygons -> crop, exactly the traced pixels back).
- :func:`label_map_crops`: the instances of a label map (one crop per id, however many pieces).

Coordinates are image pixels: x right, y down; pixel (col, row) covers [col, col + 1) x [row, row + 1).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

# A bounding box as (x, y, w, h) in pixels, w = x_max - x_min + 1.
Box = Tuple[int, int, int, int]


def mask_bbox(mask: np.ndarray) -> Optional[Box]:
    """Tight (x, y, w, h) box of the non-zero pixels, or None for an empty mask."""
    if mask.dtype == bool:
        mask = mask.view(np.uint8)
    elif mask.dtype != np.uint8:
        # cv2.boundingRect scans only 8-bit images; other depths need one comparison first.
        mask = (mask != 0).view(np.uint8)
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask))
    if w == 0 or h == 0:
        return None
    return int(x), int(y), int(w), int(h)


# ----------------------------------------------------------------------------------------- crops
@dataclass
class MaskCrop:
    """A binary mask stored as its bounding box: ``mask`` covers rows y0.. and columns x0.. .

    A 30 px nucleus costs ~1 kB whatever the image size; a full-size boolean mask per nucleus on an
    8k x 8k image would cost 64 MB each."""

    x0: int
    y0: int
    mask: np.ndarray  # bool, shape (h, w)

    @property
    def x1(self) -> int:
        return self.x0 + self.mask.shape[1]

    @property
    def y1(self) -> int:
        return self.y0 + self.mask.shape[0]

    @property
    def box(self) -> tuple:
        """Pixel extent as (x0, y0, x1, y1), exclusive end."""
        return (self.x0, self.y0, self.x1, self.y1)

    @property
    def xywh(self) -> Box:
        """Pixel extent as COCO's (x, y, w, h)."""
        return (self.x0, self.y0, self.mask.shape[1], self.mask.shape[0])

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    def shifted(self, dx: int, dy: int) -> "MaskCrop":
        return MaskCrop(self.x0 + dx, self.y0 + dy, self.mask)

    @classmethod
    def from_mask(cls, mask: np.ndarray, x0: int = 0, y0: int = 0) -> Optional["MaskCrop"]:
        """Tight crop of the non-zero pixels of ``mask`` whose top-left pixel is at (x0, y0); None
        if it is empty."""
        box = mask_bbox(mask)
        if box is None:
            return None
        x, y, w, h = box
        # a copy: the crop must not keep the (tile- or image-sized) source array alive
        return cls(int(x0 + x), int(y0 + y), np.ascontiguousarray(mask[y:y + h, x:x + w] != 0))

    def to_full(self, height: int, width: int) -> np.ndarray:
        """Full-size boolean mask (for tests and small images only)."""
        full = np.zeros((height, width), dtype=bool)
        paste_crop(full, self, True)
        return full


def paste_crop(canvas: np.ndarray, crop: MaskCrop, value, only_empty: bool = False) -> None:
    """Write ``value`` into ``canvas`` (2-D, or 3-D with a colour per pixel) where ``crop`` is set,
    clipped to the canvas. With ``only_empty`` pixels already non-zero are left alone (first writer
    wins)."""
    h, w = canvas.shape[:2]
    x0, y0, x1, y1 = max(crop.x0, 0), max(crop.y0, 0), min(crop.x1, w), min(crop.y1, h)
    if x0 >= x1 or y0 >= y1:
        return
    m = crop.mask[y0 - crop.y0:y1 - crop.y0, x0 - crop.x0:x1 - crop.x0]
    region = canvas[y0:y1, x0:x1]
    if only_empty:
        m = m & (region == 0) if region.ndim == 2 else m & ~region.any(axis=-1)
    region[m] = value


def intersection_area(a: MaskCrop, b: MaskCrop) -> int:
    x0, y0 = max(a.x0, b.x0), max(a.y0, b.y0)
    x1, y1 = min(a.x1, b.x1), min(a.y1, b.y1)
    if x0 >= x1 or y0 >= y1:
        return 0
    ma = a.mask[y0 - a.y0:y1 - a.y0, x0 - a.x0:x1 - a.x0]
    mb = b.mask[y0 - b.y0:y1 - b.y0, x0 - b.x0:x1 - b.x0]
    return int(np.count_nonzero(ma & mb))


def crop_iou(a: MaskCrop, b: MaskCrop) -> float:
    """Intersection over union of two crops (0.0 when they do not overlap)."""
    inter = intersection_area(a, b)
    return inter / (a.area + b.area - inter) if inter else 0.0


def union_crops(crops: Sequence[MaskCrop]) -> MaskCrop:
    x0 = min(c.x0 for c in crops)
    y0 = min(c.y0 for c in crops)
    x1 = max(c.x1 for c in crops)
    y1 = max(c.y1 for c in crops)
    out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for c in crops:
        out[c.y0 - y0:c.y1 - y0, c.x0 - x0:c.x1 - x0] |= c.mask
    return MaskCrop(x0, y0, out)


def crop_outline(crop: MaskCrop, thickness: int = 1) -> MaskCrop:
    """The pixels of ``crop`` within ``thickness`` pixels (4-neighbour steps) of its background:
    an outline to draw, with no tracing involved."""
    padded = np.pad(crop.mask.view(np.uint8), 1)  # pixels at the crop edge border background
    inner = cv2.erode(padded, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)),
                      iterations=int(thickness))[1:-1, 1:-1]
    return MaskCrop(crop.x0, crop.y0, crop.mask & (inner == 0))


# ------------------------------------------------------------------------------------------- RLE
def rle_run_lengths(counts) -> np.ndarray:
    """Run lengths (int64) of a compressed COCO RLE ``counts`` string (pycocotools' rleFrString).

    Raises ValueError on characters outside the alphabet, a truncated last value or negative runs,
    which pycocotools itself does not check when it parses the string.
    """
    return rle_run_lengths_batch([counts])[0]


def rle_run_lengths_batch(counts_list: Sequence) -> Tuple[np.ndarray, np.ndarray]:
    """Run lengths of many compressed ``counts`` strings in one numpy pass (the metrics decode every
    instance of an image together): ``(runs, owner)``, all runs concatenated and the index of the
    string each comes from. Checks and errors as :func:`rle_run_lengths`."""
    strings = []
    for counts in counts_list:
        if isinstance(counts, str):
            if not counts.isascii():
                raise ValueError(f"invalid character {next(c for c in counts if not c.isascii())!r} "
                                 "in counts")
            counts = counts.encode("ascii")
        strings.append(bytes(counts))
    chars = np.frombuffer(b"".join(strings), dtype=np.uint8).astype(np.int64) - 48
    if chars.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    bad = np.flatnonzero((chars < 0) | (chars > 63))
    if bad.size:
        raise ValueError(f"invalid character {chr(int(chars[bad[0]]) + 48)!r} in counts")
    more = (chars & 0x20) != 0
    string_end = np.cumsum([len(b) for b in strings])
    if more[string_end[np.diff(np.r_[0, string_end]) > 0] - 1].any():
        raise ValueError("truncated counts string")
    # Each value is 5-bit groups, least significant first, ending at a char without the 0x20 bit.
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 12:
        raise ValueError("run length too large")
    position = np.arange(chars.size) - np.repeat(starts, lengths)
    values = np.add.reduceat((chars & 0x1F) << (5 * position), starts)
    negative = (chars[ends] & 0x10) != 0  # the sign bit of the last group
    values[negative] -= np.left_shift(1, 5 * lengths[negative])
    owner = np.searchsorted(string_end, starts, side="right")
    first = np.searchsorted(owner, owner)  # index of each string's first value
    index = np.arange(len(values)) - first
    # Runs after the second are stored as differences to the run two places earlier: per string, the
    # odd runs and the even runs from the third on are two cumulative sums.
    chain = owner * 3 + np.where(index == 0, 0, 2 - index % 2)
    order = np.argsort(chain, kind="stable")
    sums = np.cumsum(values[order])
    chain_start = np.flatnonzero(np.r_[True, chain[order][1:] != chain[order][:-1]])
    sums -= np.repeat((sums - values[order])[chain_start], np.diff(np.r_[chain_start, len(values)]))
    runs = np.empty_like(values)
    runs[order] = sums
    if (runs < 0).any():
        k = int(np.flatnonzero(runs < 0)[0])
        raise ValueError(f"negative run length at run {int(index[k])}")
    return runs, owner


def crop_to_rle(crop: MaskCrop, height: int, width: int) -> dict:
    """Compressed COCO RLE ``{"size": [h, w], "counts": str}`` of a crop in a ``height`` x ``width``
    image, equal to ``pycocotools.mask.encode`` of the full mask, without building it.

    COCO RLE runs over the image in column-major order, starting with a (possibly empty) run of zeros;
    the runs are found per crop column and shifted by the column's offset in the image."""
    col_major = np.pad(crop.mask.T.view(np.int8), ((0, 0), (1, 1)))  # (w, h + 2): zero above/below
    edges = np.diff(col_major, axis=1)
    col_s, row_s = np.nonzero(edges == 1)   # run starts (row index inside the crop)
    col_e, row_e = np.nonzero(edges == -1)  # run ends (exclusive)
    starts = (crop.x0 + col_s).astype(np.int64) * height + crop.y0 + row_s
    ends = (crop.x0 + col_e).astype(np.int64) * height + crop.y0 + row_e
    if len(starts) > 1:  # a run that reaches a column's last row may go on at the next one's top
        join = ends[:-1] == starts[1:]
        if join.any():
            starts = np.concatenate([starts[:1], starts[1:][~join]])
            ends = np.concatenate([ends[:-1][~join], ends[-1:]])
    counts = np.empty(2 * len(starts), dtype=np.int64)
    counts[0::2] = starts - np.concatenate([[0], ends[:-1]])
    counts[1::2] = ends - starts
    counts = counts.tolist()
    tail = height * width - (int(ends[-1]) if len(ends) else 0)
    if tail > 0 or not counts:
        counts.append(tail)
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def to_rle(segmentation, height: int, width: int) -> dict:
    """pycocotools RLE (compressed, bytes counts) of a COCO segmentation: polygons, uncompressed RLE
    (list counts) or compressed RLE (str or bytes counts)."""
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    counts = segmentation["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects(segmentation, height, width)
    if isinstance(counts, str):
        return {"size": list(segmentation["size"]), "counts": counts.encode("ascii")}
    return segmentation


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """Full-size uint8 mask of a COCO segmentation (see :func:`to_rle` for the accepted forms)."""
    rle = to_rle(segmentation, height, width)
    with warnings.catch_warnings():
        # pycocotools 2.0.11 trips numpy 2's __array__(copy=) deprecation on every decode.
        warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept",
                                category=DeprecationWarning)
        return mask_utils.decode(rle)


def crop_from_segmentation(segmentation, height: int, width: int) -> Optional[MaskCrop]:
    """A COCO segmentation as a :class:`MaskCrop` (None when empty), built from its runs: no
    full-size array, whatever the image size."""
    counts = segmentation.get("counts") if isinstance(segmentation, dict) else None
    if isinstance(counts, list):
        runs = np.asarray(counts, dtype=np.int64)
    else:
        runs = rle_run_lengths(to_rle(segmentation, height, width)["counts"])
    ends = np.cumsum(runs)
    starts, ends = (ends - runs)[1::2], ends[1::2]  # odd runs are the ones
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if starts.size == 0:
        return None
    # Split runs that continue from the bottom of one column into the next into per-column pieces.
    first_col, last_col = starts // height, (ends - 1) // height
    pieces = last_col - first_col + 1
    run = np.repeat(np.arange(starts.size), pieces)
    col = first_col[run] + np.arange(run.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    row0 = np.maximum(starts[run], col * height) - col * height
    row1 = np.minimum(ends[run], (col + 1) * height) - col * height
    x0, y0 = int(col.min()), int(row0.min())
    box_w, box_h = int(col.max()) + 1 - x0, int(row1.max()) - y0
    # +1 where a run starts and -1 where it ends, summed down each column, is the mask.
    marks = np.zeros((box_h + 1, box_w), dtype=np.int32)
    np.add.at(marks, (row0 - y0, col - x0), 1)
    np.add.at(marks, (row1 - y0, col - x0), -1)
    return MaskCrop(x0, y0, np.cumsum(marks, axis=0)[:-1] > 0)


def label_map_crops(labels: np.ndarray) -> Tuple[np.ndarray, List[MaskCrop]]:
    """The instances of a label map (0 = background): ``(ids, crops)``, ids ascending, one crop per
    distinct non-zero value holding all its pixels, however many separate pieces they form.

    Ids need not be contiguous or integers of any particular type (float PanNuke planes work). The
    boxes of all ids come from one sort of the non-zero pixels, so the per-instance work is on its
    box only."""
    ys, xs = np.nonzero(labels)
    if ys.size == 0:
        return np.zeros(0, dtype=labels.dtype), []
    values = labels[ys, xs]
    order = np.argsort(values, kind="stable")
    ids, starts = np.unique(values[order], return_index=True)
    ys, xs = ys[order], xs[order]
    y0, y1 = np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts) + 1
    x0, x1 = np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts) + 1
    crops = [MaskCrop(int(x0[k]), int(y0[k]), labels[y0[k]:y1[k], x0[k]:x1[k]] == ids[k])
             for k in range(len(ids))]
    return ids, crops


# -------------------------------------------------------------------------------------- polygons
def _trace_upsampled(mask: np.ndarray, mode: int, method: int):
    """Contours of ``mask`` upsampled 2x (each pixel a 2 x 2 block), in upsampled pixel coordinates.

    The one tracer behind both polygon outputs. Upsampling makes every feature at least two pixels
    wide, so even single pixels and 1-px lines give proper rings, and an upsampled boundary pixel
    index k lies on a known side of an original pixel edge: k = 2i is the left/top half of pixel i,
    k = 2i + 1 its right/bottom half."""
    h, w = mask.shape
    upsampled = cv2.resize(np.ascontiguousarray(mask).view(np.uint8), (2 * w, 2 * h),
                           interpolation=cv2.INTER_NEAREST)
    padded = cv2.copyMakeBorder(upsampled, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    return cv2.findContours(padded, mode, method, offset=(-1, -1))


def coco_polygons(crop: MaskCrop) -> List[List[float]]:
    """COCO polygons (one ring per 8-connected component, holes filled) in image coordinates.

    Rings run a quarter pixel inside the pixel edges instead of through the centres of the boundary
    pixels: pycocotools rasterises them back to the same pixels (centre-traced rings lose about half
    of the boundary), and even a single pixel gives a valid ring of 4 points."""
    contours, _ = _trace_upsampled(crop.mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        # Drop collinear-ish points closer than 0.3 px to the outline; keep the raw ring if that
        # would leave fewer than 3 points (a 4-number list is read as a box by pycocotools).
        ring = cv2.approxPolyDP(contour, 0.6, True)
        if len(ring) < 3:
            ring = contour
        if len(ring) < 3:
            continue
        # upsampled pixel centre k + 0.5 is at (k + 0.5) / 2 in image pixels
        points = (ring.reshape(-1, 2) + 0.5) / 2.0 + (crop.x0, crop.y0)
        polygons.append(points.ravel().tolist())
    return polygons


def _corner_ring(contour: np.ndarray) -> np.ndarray:
    """An upsampled contour as a ring on original pixel corners, without repeated or collinear
    points (open: the first point is not repeated at the end)."""
    # Upsampled index 2i (left/top half of pixel i) -> edge i; 2i + 1 (right/bottom half) -> edge
    # i + 1. A hole's boundary pixels are those of the surrounding foreground, so the same rule
    # puts hole rings on the hole's pixel edges.
    points = (contour.reshape(-1, 2).astype(np.int64) + 1) // 2
    closed = np.concatenate((points[-1:], points))
    points = points[(closed[1:] != closed[:-1]).any(axis=1)]  # drop repeats (also last == first)
    closed = np.concatenate((points[-1:], points, points[:1]))
    step_in, step_out = closed[1:-1] - closed[:-2], closed[2:] - closed[1:-1]
    turning = step_in[:, 0] * step_out[:, 1] != step_in[:, 1] * step_out[:, 0]
    return points[turning]


def _signed_area(ring: np.ndarray) -> float:
    """Shoelace area of an open ring of integer points: > 0 when counter-clockwise in (x, y)."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(x[:-1] @ y[1:] - x[1:] @ y[:-1] + x[-1] * y[0] - x[0] * y[-1])


def geojson_geometry(crop: MaskCrop, scale: float = 1.0,
                     offset: Tuple[float, float] = (0.0, 0.0)) -> Optional[dict]:
    """GeoJSON ``Polygon`` (one component) or ``MultiPolygon`` of a crop; None when it is empty.

    Every vertex lies on a pixel corner, so the rings follow the pixel edges exactly: a rasteriser
    that samples pixel centres (QuPath, shapely / rasterio) gives back exactly the mask. Each
    4-connected component is one polygon, with its holes as interior rings; pixels that touch only
    diagonally are separate polygons meeting at a point, so no ring touches itself and the geometry
    is valid per OGC (shapely ``is_valid``). Exterior rings are counter-clockwise and holes
    clockwise in (x, y) as the coordinates are written (RFC 7946's right-hand rule).
    Coordinates are ``offset + scale * (image pixel coordinates)``, e.g. a slide's level-0 frame.
    """
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(
        np.ascontiguousarray(crop.mask).view(np.uint8), connectivity=4)
    polygons = []
    for label in range(1, n_labels):
        x, y, w, h, _ = (int(v) for v in stats[label])
        component = labels[y:y + h, x:x + w] == label
        contours, _ = _trace_upsampled(component, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        rings = [_corner_ring(c) + (crop.x0 + x, crop.y0 + y) for c in contours]
        areas = [_signed_area(r) for r in rings]
        # A 4-connected component has exactly one outer boundary (the largest ring); the rest
        # are its holes.
        order = sorted(range(len(rings)), key=lambda k: -abs(areas[k]))
        oriented = []
        for k in order:
            ring = rings[k]
            if (areas[k] > 0) != (k == order[0]):
                ring = ring[::-1]
            start = int(np.lexsort((ring[:, 0], ring[:, 1]))[0])  # top-left corner first
            closed = np.concatenate((ring[start:], ring[:start + 1]))
            oriented.append(_to_frame(closed, scale, offset))
        polygons.append(oriented)
    if not polygons:
        return None
    if len(polygons) == 1:
        return {"type": "Polygon", "coordinates": polygons[0]}
    return {"type": "MultiPolygon", "coordinates": polygons}


def _to_frame(points: np.ndarray, scale: float, offset: Tuple[float, float]) -> list:
    if scale == 1 and offset[0] == 0 and offset[1] == 0:
        return points.tolist()  # integer pixel corners: exact and compact
    return (points * float(scale) + np.asarray(offset, dtype=np.float64)).tolist()


def geojson_rings(geometry: dict) -> List[np.ndarray]:
    """Every ring (exteriors and holes, of every part) of a GeoJSON ``Polygon`` or ``MultiPolygon``
    as (n, 2) float64 arrays (a third coordinate is dropped). ValueError for other types and for
    coordinates that are not lists of numeric points."""
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "Polygon":
        polygons = [coords]
    elif kind == "MultiPolygon":
        polygons = coords
    else:
        raise ValueError(f"geometry type {kind!r} is not a Polygon or MultiPolygon")
    try:
        rings = [np.asarray(ring, dtype=np.float64) for polygon in polygons for ring in polygon]
    except (TypeError, ValueError):
        raise ValueError(f"malformed {kind} coordinates") from None
    for ring in rings:
        if ring.ndim != 2 or ring.shape[1] < 2:
            raise ValueError(f"malformed {kind} coordinates (a ring is not a list of [x, y] points)")
    return [ring[:, :2] for ring in rings]


def rasterise_rings(rings: Sequence[np.ndarray], window: Optional[Tuple[int, int, int, int]] = None
                    ) -> Optional[MaskCrop]:
    """The pixels whose centres lie inside ``rings`` (even-odd over all rings, so holes are holes and
    the parts of a MultiPolygon are unions), as a tight crop in image coordinates; None when no pixel
    centre is inside. ``window`` = (x0, y0, x1, y1) keeps only pixels in it (a tile's clip).

    A centre exactly on an edge belongs to the pixel on the right of a vertical edge and below a
    horizontal one (half-open spans, as Java2D's "insideness" that QuPath rasterises with), so
    polygons that share an edge never share a pixel. Rings along pixel edges (:func:`geojson_geometry`)
    come back as exactly the traced pixels. Scanline over the rings' edges: no full-size array."""
    edges = []
    for ring in rings:
        ring = np.asarray(ring, dtype=np.float64)[:, :2]
        if len(ring) >= 2:
            edges.append(np.concatenate((ring, np.roll(ring, -1, axis=0)), axis=1))  # closes the ring
    if not edges:
        return None
    xa, ya, xb, yb = np.concatenate(edges).T
    sloped = ya != yb  # horizontal edges cross no row centre
    xa, ya, xb, yb = xa[sloped], ya[sloped], xb[sloped], yb[sloped]
    # rows r whose centre r + 0.5 lies in [min(ya, yb), max(ya, yb)): half-open, so a vertex shared
    # by two edges is counted once
    first = np.ceil(np.minimum(ya, yb) - 0.5).astype(np.int64)
    stop = np.ceil(np.maximum(ya, yb) - 0.5).astype(np.int64)
    if window is not None:
        first, stop = np.maximum(first, window[1]), np.minimum(stop, window[3])
    n = np.maximum(stop - first, 0)
    if n.sum() == 0:
        return None
    edge = np.repeat(np.arange(len(n)), n)
    rows = np.repeat(first, n) + np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    x = xa[edge] + (rows + 0.5 - ya[edge]) * (xb[edge] - xa[edge]) / (yb[edge] - ya[edge])
    order = np.lexsort((x, rows))
    rows, x = rows[order], x[order]
    # closed rings cross every row an even number of times: consecutive crossings bound the spans
    row = rows[0::2]
    start = np.ceil(x[0::2] - 0.5).astype(np.int64)  # first column whose centre is >= the crossing
    end = np.ceil(x[1::2] - 0.5).astype(np.int64)
    if window is not None:
        start, end = np.maximum(start, window[0]), np.minimum(end, window[2])
    keep = end > start
    row, start, end = row[keep], start[keep], end[keep]
    if row.size == 0:
        return None
    x0, y0 = int(start.min()), int(row.min())
    marks = np.zeros((int(row.max()) + 1 - y0, int(end.max()) + 1 - x0), dtype=np.int32)
    np.add.at(marks, (row - y0, start - x0), 1)
    np.add.at(marks, (row - y0, end - x0), -1)
    return MaskCrop.from_mask(np.cumsum(marks, axis=1)[:, :-1] > 0, x0, y0)


def rasterise_geojson(geometry: dict, window: Optional[Tuple[int, int, int, int]] = None
                      ) -> Optional[MaskCrop]:
    """A GeoJSON ``Polygon`` / ``MultiPolygon`` (image pixel coordinates, pixel-corner convention)
    as the crop of the pixels whose centres it covers; the inverse of :func:`geojson_geometry`. See
    :func:`rasterise_rings` for the rule and ``window``."""
    return rasterise_rings(geojson_rings(geometry), window)


__all__ = [
    "Box", "mask_bbox", "MaskCrop", "paste_crop", "intersection_area", "crop_iou", "union_crops",
    "crop_outline", "rle_run_lengths", "rle_run_lengths_batch", "crop_to_rle", "to_rle", "decode_segmentation",
    "crop_from_segmentation", "label_map_crops", "coco_polygons", "geojson_geometry", "geojson_rings",
    "rasterise_rings", "rasterise_geojson",
]
