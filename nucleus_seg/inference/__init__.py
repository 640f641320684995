"""Inference on images and slides of any size: tiling with seam matching, the MMDetection predictor and
exports (COCO results, QuPath GeoJSON, label image, overlay). See docs/inference.md.

Heavy imports (torch, mmdet) happen only in :func:`load_predictor`, so tiling and exports work
without them.
"""
from .export import (crop_polygon, crop_to_rle, export_coco, export_geojson, export_label_image,
                     export_overlay, render_overlay, to_coco_results, to_geojson)
from .image_io import expand_inputs, read_image, to_rgb8
from .instances import Instances, MaskCrop
from .seams import Nucleus, SeamMerger
from .tiling import DEFAULT_OVERLAP, DEFAULT_TILE, Predictor, Tile, TileGrid, run_tiled, tile_grid


def load_predictor(config, checkpoint, device="cpu", score_thr=0.5, max_per_img=1000,
                   scale_factor=None):
    """See :func:`nucleus_seg.inference.predictor.load_predictor` (imported lazily: needs mmdet)."""
    from .predictor import load_predictor as _load

    return _load(config, checkpoint, device, score_thr, max_per_img, scale_factor)


__all__ = [
    "Instances", "MaskCrop", "Tile", "TileGrid", "Predictor", "tile_grid", "run_tiled", "SeamMerger",
    "Nucleus",
    "read_image", "to_rgb8", "expand_inputs", "load_predictor", "to_coco_results", "crop_to_rle",
    "to_geojson", "crop_polygon", "export_coco", "export_geojson", "export_label_image",
    "export_overlay", "render_overlay", "DEFAULT_TILE", "DEFAULT_OVERLAP",
]
