"""Converters from nucleus datasets to COCO instance JSON, and from predictions back to label maps.

- :func:`convert_dsb` / :func:`mask2coco`: DSB / TCGA layout (``<id>/images/<id>.png``, ``<id>/masks/*.png``)
- :func:`convert_image_folder` / :func:`images2coco`: unlabeled images, ids kept from ``test_img_ids.json``
- :func:`convert_pannuke` / :func:`pannuke2coco`: PanNuke folds (``images.npy``, ``masks.npy``, ``types.npy``)
- :func:`pannuke_splits`: the 3-fold protocol's training / validation files (validation carved from the
  training folds by tissue, fixed seed)
- :func:`convert_labels` / :func:`labels2coco`: instance label maps (PNG / TIFF / .npy / .mat) and,
  with ``LabelOptions(binary=True)``, binary masks by connected components
- :func:`convert_geojson` / :func:`geojson2coco`: QuPath GeoJSON exports of images or slide regions
- :func:`coco_results_to_label_maps`: COCO results -> label maps, type maps, PanNuke ``masks.npy``
- :func:`validate_coco` / :func:`validate_file`: decode every annotation and compare with its source

Geometry (boxes, RLE, polygons) lives in :mod:`nucleus_seg.geometry`, image and mask reading in
:mod:`nucleus_seg.image_io`.
"""
from .dsb import ConversionReport, convert_dsb, scan_dsb_folders
from .images import convert_image_folder
from .annotations import instance_annotation
from .pannuke import convert_pannuke, patch_instances
from .geojson import GeojsonOptions, convert_geojson
from .labels import LabelOptions, convert_labels
from .pipeline import (geojson2coco, images2coco, labels2coco, mask2coco, pannuke2coco, pannuke_splits,
                       validate_file)
from .results import coco_results_to_label_maps
from .split import merge_coco, split_names, split_names_stratified, subset_coco
from .validate import DEFAULT_MIN_POLYGON_IOU, validate_coco

__all__ = [
    "ConversionReport", "convert_dsb", "scan_dsb_folders", "convert_image_folder",
    "instance_annotation", "convert_pannuke", "patch_instances", "images2coco",
    "mask2coco", "pannuke2coco", "pannuke_splits", "validate_file", "merge_coco", "split_names",
    "split_names_stratified", "subset_coco", "DEFAULT_MIN_POLYGON_IOU", "validate_coco",
    "LabelOptions", "convert_labels", "labels2coco", "GeojsonOptions", "convert_geojson", "geojson2coco",
    "coco_results_to_label_maps",
]
