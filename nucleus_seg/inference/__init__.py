"""Inference on images and slides of any size: tiling with seam matching, the MMDetection predictor
and exports (COCO results, QuPath GeoJSON, label image, overlay). See docs/inference.md. Images are
read with :func:`nucleus_seg.image_io.read_image`; masks are :class:`nucleus_seg.geometry.MaskCrop`;
whole slides go through :func:`nucleus_seg.slide_inference.infer_slide`.

Heavy imports (torch, mmdet) happen only in :func:`load_predictor`, so tiling and exports work
without them.
"""
from .export import (export_coco, export_geojson, export_label_image, export_overlay, render_overlay,
                     to_coco_results, to_geojson)
from .instances import Instances
from .seams import Nucleus, SeamMerger
from .tiling import DEFAULT_OVERLAP, DEFAULT_TILE, Predictor, Tile, TileGrid, run_tiled, tile_grid


def load_predictor(*args, **kwargs):
    """:func:`nucleus_seg.inference.predictor.load_predictor`, imported lazily (it needs mmdet);
    the same arguments and defaults (``score_thr=None``: the checkpoint's calibrated threshold)."""
    from .predictor import load_predictor as _load

    return _load(*args, **kwargs)


__all__ = [
    "Instances", "Tile", "TileGrid", "Predictor", "tile_grid", "run_tiled", "SeamMerger",
    "Nucleus", "load_predictor", "to_coco_results", "to_geojson", "export_coco", "export_geojson",
    "export_label_image", "export_overlay", "render_overlay", "DEFAULT_TILE", "DEFAULT_OVERLAP",
]
