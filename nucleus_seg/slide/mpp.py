"""Microns per pixel: from the file's metadata, or the user's ``--mpp``, never a guess.

Each backend lists what the file says, most trusted first (vendor properties, then TIFF resolution
tags, then OME PhysicalSizeX/Y); :func:`resolve_mpp` takes the first plausible one. A value outside
0.05..20 um/px is not a scan resolution (TIFF's 72 dpi default is 352.8 um/px, a 'resolution' of
1 per cm is 10,000 um/px): it is skipped and named in the error if nothing else is found. ``mpp``
given by the user wins over the metadata and is recorded as '--mpp'.
"""
from __future__ import annotations

import os
from typing import Iterable, List, Optional, Tuple

from ..errors import InputError

MPP_MIN, MPP_MAX = 0.05, 20.0  # 0.05: beyond oil-immersion optics; 20: a 0.5x overview scan

# microns per resolution unit (TIFF ResolutionUnit; 4 and 5 are tifffile/libtiff extensions)
_TIFF_UNIT_UM = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0,
                 "inch": 25400.0, "centimeter": 10000.0, "millimeter": 1000.0, "micrometer": 1.0}
# OME-XML UnitsLength values to microns
_OME_UNIT_UM = {"pm": 1e-6, "Å": 1e-4, "nm": 1e-3, "µm": 1.0, "μm": 1.0, "um": 1.0,
                "mm": 1e3, "cm": 1e4, "dm": 1e5, "m": 1e6}

MppCandidate = Tuple[float, float, str]  # (x, y, source)


class MissingMppError(InputError):
    """The file opened fine but records no plausible microns per pixel (and none was given)."""


def is_plausible(mpp: float) -> bool:
    return MPP_MIN <= mpp <= MPP_MAX


def mpp_from_tiff_resolution(resolution, unit) -> Optional[float]:
    """Microns per pixel from a TIFF X/YResolution (pixels per unit, a number or a (num, den)
    rational) and ResolutionUnit (code or OpenSlide's lower-case name); None for unit NONE (1),
    which makes the resolution an aspect ratio, not a size, and for missing or zero values."""
    if resolution is None or unit is None:
        return None
    if isinstance(unit, str):
        unit = unit.strip().lower()
    else:
        unit = int(unit)
    um_per_unit = _TIFF_UNIT_UM.get(unit)
    if um_per_unit is None:
        return None
    try:
        if isinstance(resolution, (tuple, list)):
            num, den = resolution
            pixels_per_unit = float(num) / float(den) if float(den) else 0.0
        else:
            pixels_per_unit = float(resolution)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not pixels_per_unit > 0:
        return None
    return um_per_unit / pixels_per_unit


def mpp_from_ome_size(size, unit) -> Optional[float]:
    """Microns from an OME PhysicalSizeX/Y and its unit (OME's default unit is the micrometre)."""
    if size is None:
        return None
    factor = _OME_UNIT_UM.get((unit or "µm").strip())
    try:
        value = float(size) * factor if factor is not None else None
    except (TypeError, ValueError):
        return None
    return value if value and value > 0 else None


def resolve_mpp(path, candidates: Iterable[MppCandidate], mpp: Optional[float] = None,
                require: bool = True) -> Tuple[Optional[Tuple[float, float]], str]:
    """((mpp_x, mpp_y), source): the user's ``mpp`` if given, else the first plausible candidate.

    InputError naming ``path`` for an implausible ``mpp`` and, when ``require``, for a file with no
    plausible value ("no microns-per-pixel in the file; pass --mpp", plus the values skipped)."""
    if mpp is not None:
        try:
            mpp = float(mpp)
        except (TypeError, ValueError):
            raise InputError(path, f"--mpp {mpp!r} is not a number") from None
        if not is_plausible(mpp):
            raise InputError(path, f"--mpp {mpp:g} is outside the plausible {MPP_MIN:g}..{MPP_MAX:g} "
                                   "um/px (0.25 is a 40x scan, 0.5 a 20x scan)")
        return (mpp, mpp), "--mpp"
    skipped: List[str] = []
    for x, y, source in candidates:
        if x is None or y is None:
            continue
        if is_plausible(x) and is_plausible(y):
            return (float(x), float(y)), source
        skipped.append(f"{source} gives {x:.4g} x {y:.4g} um/px, outside {MPP_MIN:g}..{MPP_MAX:g}")
    if not require:
        return None, "none"
    detail = f" ({'; '.join(skipped)})" if skipped else ""
    raise MissingMppError(path, f"no microns-per-pixel in the file{detail}; pass --mpp")


def model_mpp(cfg) -> float:
    """Microns per pixel of the images a config's model was trained on (``nucleus_mpp``); ``cfg``
    is a loaded mmengine Config or a config file path.

    This is the resolution *before* the config's own rescale (``nucleus_scale_factor``): slides are
    resampled to it and the predictor then applies the same test-time Resize as in training."""
    if isinstance(cfg, (str, os.PathLike)):
        from ..config_utils import load_config

        cfg = load_config(str(cfg))
    value = cfg.get("nucleus_mpp") if hasattr(cfg, "get") else getattr(cfg, "nucleus_mpp", None)
    name = getattr(cfg, "filename", None) or "config"
    if value is None:
        raise InputError(name, "the config records no nucleus_mpp (microns per pixel of its "
                               "training images); add e.g. nucleus_mpp = 0.25 for 40x tiles")
    value = float(value)
    if not is_plausible(value):
        raise InputError(name, f"nucleus_mpp = {value:g} is outside {MPP_MIN:g}..{MPP_MAX:g} um/px")
    return value
