"""Whole-slide images: readers, the model's resolution, tissue masks. See docs/slides.md.

Interface (shared with the streaming inference in ``nucleus_seg.inference``):

- :func:`open_slide` (path or :class:`SlideSpec`, ``mpp=None``) -> :class:`SlideReader`: OpenSlide
  for vendor formats and generic tiled TIFF, tifffile for OME-TIFF and other TIFFs, OpenCV for
  ordinary images (one level). One reader per process; ``reader.spec()`` reopens it elsewhere.
- ``SlideReader``: ``path, format, level_dimensions, level_downsamples, mpp, mpp_source, bounds,
  read_region(x, y, level, w, h), thumbnail(max_size), close(), spec()``.
- :class:`ResampledView` (reader, target_mpp): the scanned area at the model's microns per pixel:
  ``width, height, level, scale, offset, read(x, y, w, h), to_slide(xy), describe()``.
- :func:`tissue_mask` -> :class:`TissueMask`: ``mask, downsample, fraction(x0, y0, x1, y1),
  area_um2(mpp), save_png(path)``.
- :func:`model_mpp` (config) -> the microns per pixel a config's model expects.

Compatible additions to the agreed interface: ``open_slide(..., require_mpp=False)`` opens a file
without MPP (``reader.mpp`` is None; only ``ResampledView(reader, None)`` works on it), for plain
images processed at their own resolution; ``SlideReader.read_level(level, x, y, w, h)`` takes the
corner in that level's own pixels; ``SlideReader.qupath_origin`` and ``ResampledView.to_qupath``
give the frame QuPath shows (bounds-cropped for OpenSlide formats with bounds);
``ResampledView.scale_xy`` / ``from_slide``; ``SlideReader`` is a context manager.
"""
from .base import SlideReader, SlideSpec
from .mpp import MPP_MAX, MPP_MIN, model_mpp, resolve_mpp
from .opener import open_slide
from .resample import ResampledView, choose_level
from .tissue import TissueMask, tissue_mask

__all__ = ["SlideReader", "SlideSpec", "open_slide", "ResampledView", "choose_level", "model_mpp",
           "resolve_mpp", "MPP_MIN", "MPP_MAX", "TissueMask", "tissue_mask"]
