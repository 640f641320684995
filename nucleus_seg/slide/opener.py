"""``open_slide``: one entry point that picks the backend for a file.

A folder is a DICOM WSI series: OpenSlide opens it from one of its files.
Order: ordinary images (PNG, JPEG, BMP, ...) -> OpenCV; OME-TIFF -> tifffile (OpenSlide would see
only its first level and no MPP); anything OpenSlide recognises (vendor formats, generic tiled TIFF)
-> OpenSlide; other TIFFs (stripped, or a generic TIFF OpenSlide fails on) -> tifffile.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional, Union

from ..errors import InputError
from .base import SlideReader, SlideSpec, one_line
from .mpp import MissingMppError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".jp2", ".pnm", ".ppm")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _backends():
    from .image_reader import ImageReader
    from .openslide_reader import OpenSlideReader
    from .tiff_reader import TiffReader

    return {"image": ImageReader, "openslide": OpenSlideReader, "tifffile": TiffReader}


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in _TIFF_MAGIC


def _is_ome(path: Path) -> bool:
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tif:
            return bool(tif.is_ome)
    except Exception:  # unreadable: the backend that tries it next reports why
        return False


def _openslide_vendor(path: Path) -> Optional[str]:
    import openslide

    try:
        return openslide.OpenSlide.detect_format(str(path))
    except Exception:
        return None


def _is_dicom(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(132)[128:] == b"DICM"  # Part 10: a 128-byte preamble, then the magic


def dicom_series_uid(path: Path) -> Optional[str]:
    """The SeriesInstanceUID of a DICOM WSI file OpenSlide reads (its series is one slide, opened
    from any of its files), else None."""
    import openslide

    if _openslide_vendor(path) != "dicom":
        return None
    try:
        with openslide.OpenSlide(str(path)) as slide:
            return slide.properties.get("dicom.SeriesInstanceUID")
    except Exception:  # unreadable: opening it as an input gives the one-line error
        return None


def _dicom_file_in_folder(folder: Path) -> Path:
    """A DICOM WSI is a folder of files, one per level (and label, overview): OpenSlide opens it
    from any one of them and gathers the rest of its series from the same folder. The first by
    name that OpenSlide detects as DICOM stands for the folder."""
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        if _openslide_vendor(path) == "dicom":
            return path
    raise InputError(folder, "is a folder without a DICOM WSI file in it (for MIRAX pass the "
                             ".mrxs file beside its folder)")


def open_slide(path_or_spec: Union[str, Path, SlideSpec], mpp: Optional[float] = None, *,
               require_mpp: bool = True, backend: Optional[str] = None) -> SlideReader:
    """Open a slide or image; InputError (one line, naming the file) if it cannot be read, is
    truncated, or has no microns per pixel while ``require_mpp`` and ``mpp`` is not given.

    ``mpp`` overrides the file's metadata (recorded as '--mpp'). ``backend`` ('openslide',
    'tifffile', 'image') forces one reader. A :class:`SlideSpec` (``reader.spec()``) reopens a
    slide exactly as it was opened, e.g. in a DataLoader worker."""
    if isinstance(path_or_spec, SlideSpec):
        spec = path_or_spec
    else:
        spec = SlideSpec(str(path_or_spec), mpp, backend, require_mpp)
    backends = _backends()
    path = Path(spec.path)
    if spec.backend is not None:
        if spec.backend not in backends:
            raise ValueError(f"unknown slide backend {spec.backend!r} (one of {sorted(backends)})")
        return backends[spec.backend](spec)
    if path.is_dir():
        path = _dicom_file_in_folder(path)
        spec = replace(spec, path=str(path))
    if not path.is_file():
        raise InputError(path, "file not found")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return backends["image"](spec)
    try:
        is_tiff = _is_tiff(path)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({one_line(exc)})") from None
    if is_tiff and _is_ome(path):
        return backends["tifffile"](spec)
    if path.suffix.lower() == ".mrxs" and not (path.with_suffix("") / "Slidedat.ini").is_file():
        # the .mrxs itself holds nothing OpenSlide reads: the slide is the folder beside it
        raise InputError(path, f"MIRAX data folder missing: expected {path.stem}/Slidedat.ini "
                               "beside it (copy the folder with the .mrxs)")
    vendor = _openslide_vendor(path)
    if vendor is not None:
        try:
            return backends["openslide"](spec)
        except MissingMppError:
            raise
        except InputError:
            if not (is_tiff and vendor == "generic-tiff"):
                raise
            # a generic TIFF OpenSlide rejects (e.g. a layout it does not handle): tifffile
            # reports its own reason if it cannot read it either
    if is_tiff:
        return backends["tifffile"](spec)
    if _is_dicom(path):
        raise InputError(path, "a DICOM file but not a whole-slide image OpenSlide reads (VL Whole "
                               "Slide Microscopy Image Storage)")
    try:
        return backends["image"](spec)
    except InputError:
        raise InputError(path, "not a slide or image format this reads (OpenSlide formats, "
                               "TIFF / OME-TIFF, or an image OpenCV decodes)") from None
