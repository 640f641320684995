"""Reading user images of any kind into 8-bit RGB, and expanding CLI inputs into image files.

Conversion rules (documented in docs/inference.md):
 * grayscale -> the gray value repeated in R, G and B;
 * RGBA / gray+alpha -> alpha dropped (slides exported with alpha are opaque in tissue);
 * 16-bit or float -> scaled linearly so the image's maximum maps to 255 (its minimum to 0 for float
   images with negative values); a 12-bit camera image in a 16-bit file would otherwise be near-black.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np

from ..errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def to_rgb8(array: np.ndarray, channel_order: str = "bgr") -> np.ndarray:
    """Convert an image array (gray, gray+alpha, 3 or 4 channels, any integer/float dtype) to RGB uint8.

    ``channel_order`` is that of colour inputs: "bgr" for arrays from cv2.imread, "rgb" otherwise."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"unsupported image shape {array.shape}")
    if array.shape[2] in (2, 4):  # drop alpha
        array = array[:, :, :-1]
    if array.dtype != np.uint8:
        array = _scale_to_uint8(array)
    if array.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(array, 3, axis=2))
    if channel_order == "bgr":
        return np.ascontiguousarray(array[:, :, ::-1])
    return np.ascontiguousarray(array)


def _scale_to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    data = array.astype(np.float32)
    finite = np.isfinite(data)
    if not finite.all():
        data = np.where(finite, data, 0)
    low = min(float(data.min()), 0.0)
    high = float(data.max())
    if high <= low:
        return np.zeros(array.shape, dtype=np.uint8)
    if np.issubdtype(array.dtype, np.floating) and low == 0.0 and high <= 1.0:
        high = 1.0  # float images in [0, 1] keep their absolute intensity
    return np.clip((data - low) * (255.0 / (high - low)) + 0.5, 0, 255).astype(np.uint8)


def read_image(path) -> np.ndarray:
    """Read any image OpenCV can decode as an RGB uint8 (H, W, 3) array; InputError if it cannot."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    # np.fromfile + imdecode: works for non-ASCII paths, and a decode failure is detectable (None)
    data = np.fromfile(str(path), dtype=np.uint8)
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if array is None:
        raise InputError(path, "cannot be read as an image (unsupported or corrupt file)")
    if array.ndim == 3 and array.shape[2] > 4:
        raise InputError(path, f"has {array.shape[2]} channels; expected gray, RGB or RGBA")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(path, "image is empty")
    return to_rgb8(array, "bgr")


def expand_inputs(inputs, suffixes=IMAGE_SUFFIXES) -> Tuple[List[Path], List[Tuple[str, str]]]:
    """Files, folders (their files with ``suffixes``, not recursive) and glob patterns -> (files,
    problems).

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
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in suffixes)
            if not found:
                problems.append((item, "folder holds no image files (" +
                                 ", ".join(suffixes) + ")"))
            for p in found:
                add(p)
        elif path.is_file():
            add(path)  # named explicitly: tried whatever its suffix
        elif glob.has_magic(item):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True)
                           if Path(p).is_file() and Path(p).suffix.lower() in suffixes)
            if not found:
                problems.append((item, "pattern matches no image files"))
            for p in found:
                add(p)
        else:
            problems.append((item, "file not found"))
    return files, problems
