"""Per-instance geometry: read a mask file, find its bounding box, encode it as COCO RLE or polygons.

All per-mask work after decoding happens on the mask's bounding box: full-image operations per mask
(``np.nonzero``, ``pycocotools.mask.encode`` of the whole image) dominate conversion time on
megapixel tiles with hundreds of nuclei. ``read_mask_crop`` (the converter's reader) decodes 8-bit
grey PNGs with ``png_rows`` and everything else with OpenCV; ``read_mask`` always uses OpenCV and
is what validation compares against.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..errors import InputError
from .png_rows import decode_grey8_png_rows

IMAGE_EXTENSIONS = frozenset({".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"})

# A bounding box as (x, y, w, h) in pixels, w = x_max - x_min + 1.
Box = Tuple[int, int, int, int]


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _read_bytes(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise InputError(path, f"{what} file not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read {what}: {exc.strerror or exc}") from None
    if not data:
        raise InputError(path, f"{what} file is empty")
    return data


def _decode_bytes(path: Path, data: bytes, what: str) -> np.ndarray:
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        article = "an" if what[0] in "aeiou" else "a"
        raise InputError(path, f"cannot be decoded as {article} {what}")
    return pixels


def decode_image_file(path, what: str = "image") -> np.ndarray:
    """Decode any image OpenCV reads (8/16-bit, grey, RGB(A), palette) without changing its depth."""
    path = Path(path)
    if not path.is_file():  # checked first: cv2.imread would also print a warning of its own
        raise InputError(path, f"{what} file not found")
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is not None:
        return pixels
    # cv2.imread returns None for any failure (and for non-ASCII paths on Windows): read the bytes
    # ourselves to tell the user which it was.
    return _decode_bytes(path, _read_bytes(path, what), what)


def foreground_plane(pixels: np.ndarray) -> np.ndarray:
    """A 2-D array whose non-zero pixels are the mask.

    Single-channel masks (0/255, 0/1, any non-zero, 8 or 16 bit) are returned unchanged. For
    multi-channel masks (RGB, RGBA, palette expanded by OpenCV) a pixel is foreground when any colour
    channel is non-zero; the alpha channel is used only when it is the only channel that varies
    (a constant opaque alpha must not turn the whole image into foreground).
    """
    if pixels.ndim == 2:
        return pixels
    channels = pixels.shape[2]
    if channels == 1:
        return pixels[..., 0]
    colour = pixels[..., :3] if channels >= 3 else pixels[..., :1]
    alpha = pixels[..., channels - 1] if channels in (2, 4) else None
    if alpha is not None and alpha.min() != alpha.max() and colour.min() == colour.max():
        return alpha
    return colour.any(axis=2).view(np.uint8)


def read_mask(path) -> np.ndarray:
    """Decode a mask file to a 2-D array; non-zero pixels belong to the instance."""
    return foreground_plane(decode_image_file(path, "mask"))


def read_mask_crop(path) -> Tuple[int, int, Optional[Box], Optional[np.ndarray]]:
    """(height, width, box, boolean crop of the box) of a mask file; box and crop are None when
    the mask is empty. Same result as ``read_mask`` + ``mask_bbox``, but 8-bit grey PNGs (nearly
    all mask files) skip reconstructing their zero rows (see png_rows)."""
    path = Path(path)
    data = _read_bytes(path, "mask")
    block = decode_grey8_png_rows(data)
    if block is not None:
        height, width, first_row, rows = block
        box = mask_bbox(rows) if rows.size else None
        if box is None:
            return height, width, None, None
        x, y, w, h = box
        return height, width, (x, first_row + y, w, h), rows[y:y + h, x:x + w] != 0
    mask = foreground_plane(_decode_bytes(path, data, "mask"))
    box = mask_bbox(mask)
    if box is None:
        return mask.shape[0], mask.shape[1], None, None
    x, y, w, h = box
    return mask.shape[0], mask.shape[1], box, mask[y:y + h, x:x + w] != 0


def mask_bbox(mask: np.ndarray) -> Optional[Box]:
    """Tight (x, y, w, h) box of the non-zero pixels, or None for an empty mask."""
    if mask.dtype != np.uint8:
        # cv2.boundingRect scans only 8-bit images; other depths need one comparison first.
        mask = (mask != 0).view(np.uint8)
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return None
    return int(x), int(y), int(w), int(h)


def rle_counts_from_crop(crop: np.ndarray, x: int, y: int, height: int, width: int) -> np.ndarray:
    """Uncompressed COCO RLE counts of a full ``height`` x ``width`` mask that is zero outside ``crop``.

    COCO RLE runs over the image in column-major order, starting with a (possibly empty) run of zeros.
    Columns left and right of the box are all zero, so only the box's columns, at full height, need
    looking at: run boundaries there, shifted by ``x * height``, are the boundaries of the whole image.
    Equal to ``pycocotools.mask.encode`` of the full mask (tests check this), at the cost of the box.
    """
    box_h, box_w = crop.shape
    # Column-major strip of the box's columns at full height, with one zero before and after so
    # every run of ones has a start and an end.
    strip = np.zeros(box_w * height + 2, dtype=np.int8)
    strip[1:-1].reshape(box_w, height)[:, y:y + box_h] = crop.T
    boundaries = np.flatnonzero(strip[1:] != strip[:-1]) + x * height
    counts = np.diff(np.concatenate(([0], boundaries, [height * width])))
    if counts[-1] == 0:  # the mask reaches the last pixel; pycocotools ends with that run of ones
        counts = counts[:-1]
    return counts


def rle_from_crop(crop: np.ndarray, x: int, y: int, height: int, width: int) -> dict:
    """Compressed COCO RLE ``{"size": [h, w], "counts": str}`` of the full-size mask."""
    counts = rle_counts_from_crop(crop, x, y, height, width)
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def polygons_from_crop(crop: np.ndarray, x: int, y: int) -> List[List[float]]:
    """COCO polygons (one ring per connected component, holes filled) in image coordinates.

    The crop is upsampled 2x before tracing so the rings run a quarter pixel inside the pixel edges
    instead of through the centres of the boundary pixels: pycocotools then rasterises them back to
    the same pixels (centre-traced rings lose about half of the boundary), and even a single pixel
    gives a valid ring of 4 points.
    """
    box_h, box_w = crop.shape
    upsampled = cv2.resize(crop.view(np.uint8), (2 * box_w, 2 * box_h),
                           interpolation=cv2.INTER_NEAREST)
    padded = cv2.copyMakeBorder(upsampled, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE,
                                   offset=(-1, -1))
    polygons = []
    for contour in contours:
        # Drop collinear-ish points closer than 0.3 px to the outline; keep the raw ring if that
        # would leave fewer than 3 points (a 4-number list is read as a box by pycocotools).
        ring = cv2.approxPolyDP(contour, 0.6, True)
        if len(ring) < 3:
            ring = contour
        if len(ring) < 3:
            continue
        points = (ring.reshape(-1, 2) + 0.5) / 2.0 + (x, y)
        polygons.append(points.ravel().tolist())
    return polygons


def instance_annotation(crop: np.ndarray, x: int, y: int, height: int, width: int,
                        segmentation: str = "rle") -> dict:
    """COCO annotation fields (no ids) for one instance given as a boolean crop at (x, y).

    ``bbox`` and ``area`` always describe the exact pixels, whichever segmentation is stored.
    """
    box_h, box_w = crop.shape
    if segmentation == "rle":
        seg = rle_from_crop(crop, x, y, height, width)
    elif segmentation == "polygon":
        seg = polygons_from_crop(crop, x, y)
    else:
        raise ValueError(f"segmentation must be 'rle' or 'polygon', not {segmentation!r}")
    return {"segmentation": seg, "bbox": [x, y, box_w, box_h],
            "area": int(np.count_nonzero(crop)), "iscrowd": 0}


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """Full-size uint8 mask of a COCO segmentation (RLE with str/bytes/list counts, or polygons)."""
    if isinstance(segmentation, dict):
        counts = segmentation.get("counts")
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = {"size": segmentation["size"],
                   "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    with warnings.catch_warnings():
        # pycocotools 2.0.11 trips numpy 2's __array__(copy=) deprecation on every decode.
        warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept",
                                category=DeprecationWarning)
        return mask_utils.decode(rle)
