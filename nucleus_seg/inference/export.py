"""Exports of merged instances: COCO results JSON, QuPath GeoJSON, instance label image, overlay PNG.

All writers go through nucleus_seg.fileio (atomic, refuse to overwrite unless ``overwrite=True``) and
work from mask crops, so none allocates a full-size array per nucleus. Coordinates are image pixels
(x right, y down, origin at the top-left pixel).
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import cv2
import numpy as np

from ..errors import InputError
from ..fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, check_writable
from ..geometry import crop_from_segmentation, crop_outline, crop_to_rle, geojson_geometry, paste_crop
from .instances import Instances

# Colours per class index (RGB), also used in the overlay; cycles for more classes.
CLASS_COLORS = [(255, 64, 64), (64, 200, 64), (64, 128, 255), (255, 200, 0), (200, 64, 255),
                (0, 210, 210), (255, 128, 0), (128, 128, 128)]


def class_color(label: int) -> List[int]:
    return list(CLASS_COLORS[int(label) % len(CLASS_COLORS)])


# ----------------------------------------------------------------------------- COCO results
def iter_coco_results(instances: Instances, image_id: int,
                      category_ids: Optional[Sequence[int]] = None) -> Iterator[dict]:
    """COCO results records (segm + bbox) for one image; category id = label + 1 by default."""
    for k, crop in enumerate(instances.masks):
        label = int(instances.labels[k])
        x0, y0, x1, y1 = (float(v) for v in instances.bboxes[k])
        yield {
            "image_id": int(image_id),
            "category_id": int(category_ids[label]) if category_ids else label + 1,
            "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
            "score": round(float(instances.scores[k]), 5),
            "area": crop.area,
            "segmentation": crop_to_rle(crop, instances.height, instances.width),
        }


def to_coco_results(instances: Instances, image_id: int,
                    category_ids: Optional[Sequence[int]] = None) -> List[dict]:
    return list(iter_coco_results(instances, image_id, category_ids))


def coco_results_json(instances: Instances, image_id: int) -> str:
    """The records of one image as JSON text without the surrounding brackets ("" if none):
    batch runs keep this compact text per image instead of millions of dicts."""
    return ",\n".join(json.dumps(r) for r in iter_coco_results(instances, image_id))


def export_coco(path, results: List[dict], overwrite: bool = False) -> Path:
    """Write a COCO results list (as accepted by COCO.loadRes)."""
    return atomic_write_json(path, results, overwrite)


def export_coco_parts(path, parts: Sequence[str], overwrite: bool = False) -> Path:
    """Write a COCO results list from per-image ``coco_results_json`` texts."""
    body = ",\n".join(p for p in parts if p)
    return atomic_write_text(path, "[" + body + "]", overwrite)


# ----------------------------------------------------------------------------- GeoJSON
def geojson_feature(geometry: dict, label: int, score: float, class_names: Sequence[str],
                    **properties) -> dict:
    """One nucleus as a GeoJSON Feature QuPath imports as a detection of its class."""
    name = class_names[label] if label < len(class_names) else f"class_{label}"
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {
            "objectType": "detection",
            "classification": {"name": name, "color": class_color(label)},
            "score": round(float(score), 5),
            **properties,
        },
    }


def _geojson_features(instances: Instances, class_names: Sequence[str]) -> Iterator[dict]:
    for k, crop in enumerate(instances.masks):
        yield geojson_feature(geojson_geometry(crop), int(instances.labels[k]),
                              instances.scores[k], class_names)


def to_geojson(instances: Instances, class_names: Sequence[str]) -> dict:
    """A GeoJSON FeatureCollection QuPath imports as detections (File > Import objects)."""
    return {"type": "FeatureCollection", "features": list(_geojson_features(instances, class_names))}


def export_geojson(path, instances: Instances, class_names: Sequence[str],
                   overwrite: bool = False) -> Path:
    """Write :func:`to_geojson`'s collection; features are serialised one at a time (a whole
    collection as Python lists costs ~10x its text on slides with 10^5 nuclei)."""
    check_writable(path, overwrite)
    body = ",\n".join(json.dumps(f) for f in _geojson_features(instances, class_names))
    return atomic_write_text(path, '{"type": "FeatureCollection", "features": [\n' + body + "\n]}",
                             overwrite)


# ----------------------------------------------------------------------------- rasters
def write_label_array(path_stem, labels: np.ndarray, overwrite: bool = False) -> Path:
    """Instance ids (0 = background) as ``<path_stem>.png``, 16-bit grey, when every id is below
    65536; else ``<path_stem>.npy``, uint32 (PNG has no 32-bit grey)."""
    if labels.size == 0 or int(labels.max()) < 65536:
        path = Path(str(path_stem) + ".png")
        check_writable(path, overwrite)
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(labels, dtype=np.uint16))
        if not ok:
            raise InputError(path, "could not encode the label image as PNG")
        return atomic_write_bytes(path, buf.tobytes(), overwrite)
    path = Path(str(path_stem) + ".npy")
    check_writable(path, overwrite)
    bio = io.BytesIO()
    np.save(bio, np.ascontiguousarray(labels, dtype=np.uint32))
    return atomic_write_bytes(path, bio.getvalue(), overwrite)


def export_label_image(stem_path, instances: Instances, overwrite: bool = False) -> Path:
    """Instance ids 1..N (score order, 0 = background) as a 16-bit PNG ``<stem>.labels.png``;
    with 65536 or more instances a uint32 NumPy file ``<stem>.labels.npy`` instead (PNG has no
    32-bit gray). Where masks overlap the higher-scoring instance keeps the pixel."""
    ordered = instances.sorted_by_score()
    return write_label_array(str(stem_path) + ".labels", ordered.to_label_image(np.uint32), overwrite)


def instances_from_coco_results(results: Sequence[dict], height: int, width: int,
                                label_of_category: dict, score_thr: float = 0.0) -> Instances:
    """COCO results of one image -> crop-based Instances, without a full-size array per mask."""
    scores, labels, crops = [], [], []
    for r in results:
        if r["score"] < score_thr:
            continue
        crop = crop_from_segmentation(r["segmentation"], height, width)
        if crop is None:
            continue
        scores.append(r["score"])
        labels.append(label_of_category[r["category_id"]])
        crops.append(crop)
    return Instances(np.array(scores), np.array(labels), crops, height=height, width=width)


def render_overlay(image_rgb: np.ndarray, instances: Instances, thickness: int = 1) -> np.ndarray:
    """A copy of the image (BGR, for cv2) with each instance's outline (its boundary pixels,
    ``thickness`` deep) painted in its class colour."""
    canvas = np.ascontiguousarray(image_rgb[:, :, ::-1])
    for k, crop in enumerate(instances.masks):
        r, g, b = class_color(int(instances.labels[k]))
        paste_crop(canvas, crop_outline(crop, thickness), (b, g, r))
    return canvas


def export_overlay(path, image_rgb: np.ndarray, instances: Instances, overwrite: bool = False,
                   thickness: int = 1) -> Path:
    path = check_writable(path, overwrite)
    ok, buf = cv2.imencode(".png", render_overlay(image_rgb, instances, thickness))
    if not ok:
        raise InputError(path, "could not encode the overlay as PNG")
    return atomic_write_bytes(path, buf.tobytes(), overwrite)
