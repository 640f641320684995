"""Reading images and masks: the one image reader and its one conversion to 8-bit RGB, the mask
readers, and expanding command-line inputs into image files.

Every path that gives a model pixels goes through :func:`to_rgb8`: training and ``tools/test.py``
(via the ``LoadNucleusImage`` pipeline step, :mod:`nucleus_seg.transforms`), ``tools/infer.py`` and
the predictor (via :func:`read_image`), so one file gives the model the same pixels everywhere.

Conversion to 8-bit is one rule per data type, never per image, so tiles of one slide or crops of one
image map equal values to equal pixels:

* uint8: unchanged;
* uint16: ``round(v / 257)`` — the exact linear map of 0..65535 onto 0..255, so 8-bit data stored in
  16 bits (v * 257, as PNG and TIFF writers widen) comes back unchanged. (mmcv's loader used
  ``v >> 8``, which also round-trips such data but truncates everything else; nearest is unbiased.)
  A 12-bit camera image in a 16-bit file is therefore dark: rescale it to the 16-bit range first;
* other integer types: ``round(v * 255 / max of the type)``; negative values are an error; where the
  file declares its bit depth (TIFF BitsPerSample, e.g. 12 in uint16) that range is used instead;
* bool: 0 / 255; float: values in [0, 1], ``round(v * 255)`` (other values are an error);
* grey: repeated in R, G and B; alpha (grey + alpha, RGBA): dropped.

Pixels are taken as stored: a JPEG's EXIF orientation is not applied, because masks and COCO
annotations refer to the stored pixel grid (mmcv's loader applied it, so a rotated JPEG trained
against annotations that did not match).
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .errors import InputError
from .geometry import MaskCrop
from .png_rows import decode_grey8_png_rows

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def is_image_file(path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> bool:
    """An image by its extension (case-insensitive, one of ``extensions``), not a hidden file."""
    path = Path(path)
    return path.suffix.lower() in extensions and not path.name.startswith(".")


# ------------------------------------------------------------------------------------- decoding
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
    """Decode any image OpenCV reads (8/16-bit, grey, BGR(A), palette) as stored: no conversion."""
    path = Path(path)
    if not path.is_file():  # checked first: cv2.imread would also print a warning of its own
        raise InputError(path, f"{what} file not found")
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        # cv2.imread returns None for any failure (and for non-ASCII paths on Windows): read the
        # bytes ourselves to tell the user which it was.
        pixels = _decode_bytes(path, _read_bytes(path, what), what)
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise InputError(path, f"{what} is empty (0 pixels)")
    return pixels


# ------------------------------------------------------------------------------ images -> RGB8
def to_uint8(array: np.ndarray, significant_bits: Optional[int] = None) -> np.ndarray:
    """Pixel values as uint8 by the rule of their data type (module docstring); ValueError for
    values the rule does not cover. ``significant_bits``: integer data whose file declares fewer
    bits than its type holds (a TIFF's BitsPerSample = 12 in uint16) spans 0 .. 2**bits - 1
    instead of the type's range; larger values saturate."""
    dtype = array.dtype
    if dtype == bool:
        return array.view(np.uint8) * np.uint8(255)
    if np.issubdtype(dtype, np.integer):
        bits = np.iinfo(dtype).bits - (1 if np.issubdtype(dtype, np.signedinteger) else 0)
        if significant_bits is not None and 0 < significant_bits < bits:
            bits = int(significant_bits)
        if dtype == np.uint8 and bits == 8:
            return array
        if np.issubdtype(dtype, np.signedinteger) and array.size and array.min() < 0:
            raise ValueError(f"{dtype} pixel values below 0 (min {array.min()})")
        if dtype == np.uint16 and bits == 16:
            return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(v / 257)
        top = float(2 ** bits - 1)  # odd, so v * 255 / top is never halfway between integers
        return np.rint(np.minimum(array, top).astype(np.float64) * 255.0 / top).astype(np.uint8)
    if np.issubdtype(dtype, np.floating):
        if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
            raise ValueError(f"{dtype} pixel values must lie in [0, 1] "
                             f"(found {np.nanmin(array):g} .. {np.nanmax(array):g})")
        return np.rint(array.astype(np.float64) * 255.0).astype(np.uint8)
    raise ValueError(f"unsupported pixel data type {dtype}")


def to_rgb8(array: np.ndarray, channel_order: str = "bgr") -> np.ndarray:
    """An image array (grey, grey + alpha, 3 or 4 channels, any dtype of :func:`to_uint8`) as RGB
    uint8 (H, W, 3). ``channel_order`` is that of colour inputs: "bgr" for OpenCV's, else "rgb"."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"unsupported image shape {array.shape}; expected grey, RGB or RGBA")
    if array.shape[2] in (2, 4):  # drop alpha
        array = array[:, :, :-1]
    array = to_uint8(array)
    if array.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(array, 3, axis=2))
    if channel_order == "bgr":
        return np.ascontiguousarray(array[:, :, ::-1])
    return np.ascontiguousarray(array)


def read_image(path) -> np.ndarray:
    """The image at ``path`` as RGB uint8 (H, W, 3); InputError naming the file if it cannot be."""
    pixels = decode_image_file(path, "image")
    try:
        return to_rgb8(pixels, "bgr")
    except ValueError as exc:
        raise InputError(path, str(exc)) from None


# ------------------------------------------------------------------------------------------ masks
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
    """Decode a mask file with OpenCV to a 2-D array; non-zero pixels belong to the instance."""
    return foreground_plane(decode_image_file(path, "mask"))


def read_mask_crop(path) -> Tuple[int, int, Optional[MaskCrop]]:
    """(height, width, crop of the non-zero pixels) of a mask file; the crop is None when the mask
    is empty. Same pixels as :func:`read_mask`, but 8-bit grey PNGs (nearly all mask files) skip
    reconstructing their zero rows (see :mod:`nucleus_seg.png_rows`)."""
    path = Path(path)
    data = _read_bytes(path, "mask")
    block = decode_grey8_png_rows(data)
    if block is not None:
        height, width, first_row, rows = block
        return height, width, MaskCrop.from_mask(rows, 0, first_row) if rows.size else None
    mask = foreground_plane(_decode_bytes(path, data, "mask"))
    return mask.shape[0], mask.shape[1], MaskCrop.from_mask(mask)


# ------------------------------------------------------------------------------- command line
def expand_inputs(inputs, extensions: Sequence[str] = IMAGE_EXTENSIONS
                  ) -> Tuple[List[Path], List[Tuple[str, str]]]:
    """Files, folders (their files with one of ``extensions``, not recursive) and glob patterns ->
    (files, problems).

    A name that matches nothing is a problem (reported, not fatal). Order: as given, folders and
    globs sorted; duplicates removed."""
    files: List[Path] = []
    problems: List[Tuple[str, str]] = []
    seen = set()

    def add(p: Path):
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            files.append(p)

    for item in inputs:
        item = str(item)
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p, extensions))
            if not found:
                problems.append((item, "folder holds no image files (" + ", ".join(extensions) + ")"))
            for p in found:
                add(p)
        elif path.is_file():
            add(path)  # named explicitly: tried whatever its suffix
        elif glob.has_magic(item):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True)
                           if Path(p).is_file() and is_image_file(p, extensions))
            if not found:
                problems.append((item, "pattern matches no image files"))
            for p in found:
                add(p)
        else:
            problems.append((item, "file not found"))
    return files, problems


__all__ = [
    "IMAGE_EXTENSIONS", "is_image_file", "decode_image_file", "to_uint8", "to_rgb8", "read_image",
    "foreground_plane", "read_mask", "read_mask_crop", "expand_inputs",
]
