"""Check a COCO instance file: structure, then every annotation decoded with pycocotools against the
source mask it came from.

Tolerances: RLE must reproduce its source mask pixel for pixel. Polygons cannot hold holes (COCO
merges rings by union) and are rasterised by pycocotools' own rule, so a polygon annotation passes
when the IoU of its decoded mask with the source mask is at least ``min_polygon_iou`` (default 0.95;
the polygons written by these converters decode exactly for masks without holes). In both cases
``bbox`` and ``area`` must equal those of the source mask exactly.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..categories import PANNUKE_CLASSES
from ..errors import InputError
from ..geometry import MaskCrop, crop_from_segmentation, crop_iou
from ..image_io import decode_image_file, is_image_file, read_mask
from ..validation import Problem, check_coco_gt
from .pannuke import find_fold_arrays, load_fold, patch_instances

DEFAULT_MIN_POLYGON_IOU = 0.95


@dataclass
class SourceInstance:
    """A ground-truth instance: where it came from, its category id and its pixels."""
    path: str
    label: str  # prefix for messages about this instance, e.g. "patch 3, neoplastic instance 7"
    category_id: int
    crop: MaskCrop

    def key(self):
        return _exact_key(self.category_id, self.crop)


def _exact_key(category_id, crop: MaskCrop) -> Tuple:
    return (category_id, crop.xywh, hashlib.sha1(np.packbits(crop.mask).tobytes()).hexdigest())


def _decode(ann, image) -> Optional[MaskCrop]:
    return crop_from_segmentation(ann["segmentation"], image["height"], image["width"])


def compare_image(image, annotations, sources: List[SourceInstance], json_path,
                  min_polygon_iou: float = DEFAULT_MIN_POLYGON_IOU) -> List[Problem]:
    """Match the annotations of one image to its source instances; report what does not match."""
    where, problems = str(json_path), []
    unmatched: Dict[Tuple, List[SourceInstance]] = defaultdict(list)
    for source in sources:
        unmatched[source.key()].append(source)
    polygon_anns = []
    for ann in annotations:
        aid = ann["id"]
        crop = _decode(ann, image)
        if crop is None:
            problems.append(Problem(where, f"annotation {aid} (image {image['file_name']}) decodes "
                                    "to an empty mask"))
            continue
        if not isinstance(ann["segmentation"], dict):
            polygon_anns.append((ann, crop))
            continue
        if list(crop.xywh) != list(ann["bbox"]) or crop.area != ann["area"]:
            problems.append(Problem(where, f"annotation {aid}: bbox {ann['bbox']} / area {ann['area']} "
                                    f"differ from its RLE's {list(crop.xywh)} / {crop.area}"))
        matches = unmatched.get(_exact_key(ann["category_id"], crop))
        if matches:
            matches.pop()
        else:
            problems.append(Problem(where, f"annotation {aid} (image {image['file_name']}): RLE matches "
                                    "no source mask pixel-exactly"))
    remaining = [s for group in unmatched.values() for s in group]
    for ann, crop in polygon_anns:
        candidates = [s for s in remaining if s.category_id == ann["category_id"]]
        scored = [(crop_iou(crop, s.crop), s) for s in candidates]
        best_iou, best = max(scored, key=lambda t: t[0], default=(0.0, None))
        if best is None or best_iou < min_polygon_iou:
            problems.append(Problem(where, f"annotation {ann['id']} (image {image['file_name']}): "
                                    f"polygon IoU {best_iou:.3f} with the best source mask is below "
                                    f"{min_polygon_iou}"))
            continue
        remaining.remove(best)
        if list(best.crop.xywh) != list(ann["bbox"]) or best.crop.area != ann["area"]:
            problems.append(Problem(best.path, f"{best.label}bbox/area {list(best.crop.xywh)}/"
                                    f"{best.crop.area} differ from annotation "
                                    f"{ann['id']}'s {ann['bbox']}/{ann['area']}"))
    for source in remaining:
        problems.append(Problem(source.path, f"{source.label}no annotation in {where} reproduces "
                                "this mask"))
    return problems


SourceReader = Callable[[dict], Tuple[List[SourceInstance], List[Problem]]]


def _check_image_file(image_root: Path, image) -> Tuple[Path, List[Problem]]:
    image_path = image_root / image["file_name"]
    if not image_path.is_file():
        return image_path, [Problem(image_path, "image listed in the JSON not found")]
    try:
        height, width = decode_image_file(image_path).shape[:2]
    except InputError as exc:
        return image_path, [Problem(image_path, exc.problem)]
    if (height, width) != (image["height"], image["width"]):
        return image_path, [Problem(image_path, f"image is {width}x{height}, the JSON says "
                                    f"{image['width']}x{image['height']}")]
    return image_path, []


def image_files(image_root) -> SourceReader:
    """No source instances; only checks that each image exists with the listed size."""
    image_root = Path(image_root)

    def read(image):
        return [], _check_image_file(image_root, image)[1]
    return read


def dsb_sources(image_root, category_id: int = 1) -> SourceReader:
    """Source instances of a DSB-layout image: the masks in ``<image>/../../masks``."""
    image_root = Path(image_root)

    def read(image):
        image_path, problems = _check_image_file(image_root, image)
        if problems:
            return [], problems
        height, width = image["height"], image["width"]
        masks_dir = image_path.parent.parent / "masks"
        if not masks_dir.is_dir():
            return [], [Problem(image_path, f"no masks folder {masks_dir} beside it")]
        sources = []
        # The same files the converter reads; decoded here with OpenCV only, independently of the
        # converter's own PNG path, so validation cross-checks it.
        for mask_path in sorted(p for p in masks_dir.iterdir() if p.is_file() and is_image_file(p)):
            try:
                mask = read_mask(mask_path)
            except InputError as exc:
                problems.append(Problem(mask_path, exc.problem))
                continue
            if mask.shape != (height, width):
                problems.append(Problem(mask_path, f"mask is {mask.shape[1]}x{mask.shape[0]}, its "
                                        f"image {image_path} is {width}x{height}"))
                continue
            crop = MaskCrop.from_mask(mask)
            if crop is not None:
                sources.append(SourceInstance(str(mask_path), "", category_id, crop))
        return sources, problems
    return read


def pannuke_sources(fold_dir, categories) -> SourceReader:
    """Source instances of a PanNuke image (by its ``pannuke_index``) from the fold's masks.npy."""
    arrays = find_fold_arrays(fold_dir)
    _, masks, _ = load_fold(arrays)
    names = {c["name"]: c["id"] for c in categories}
    single = set(names) == {"nucleus"}
    missing = [c for c in PANNUKE_CLASSES if c not in names] if not single else []
    if missing:
        raise InputError(None, f"categories lack PanNuke classes {missing}")

    def read(image):
        index = image.get("pannuke_index")
        if not isinstance(index, int) or not 0 <= index < masks.shape[0]:
            return [], [Problem(arrays["masks.npy"], f"image {image['id']} has no valid pannuke_index")]
        sources = [SourceInstance(str(arrays["masks.npy"]), f"patch {index}, {cls} instance {iid}: ",
                                  names["nucleus" if single else cls], crop)
                   for cls, iid, crop in patch_instances(masks[index], arrays["masks.npy"], index)]
        return sources, []
    return read


def validate_coco(coco, json_path, read_sources: Optional[SourceReader] = None,
                  min_polygon_iou: float = DEFAULT_MIN_POLYGON_IOU) -> List[Problem]:
    """All problems found; empty when the file is consistent (and matches its sources if given)."""
    problems = [dataclasses.replace(p, path=str(json_path)) for p in check_coco_gt(coco, strict=True)]
    if problems:
        return problems  # decoding a malformed file would only repeat the same problems
    by_image = defaultdict(list)
    for ann in coco["annotations"]:
        by_image[ann["image_id"]].append(ann)
    for image in coco["images"]:
        anns = by_image.get(image["id"], [])
        if read_sources is None:
            for ann in anns:
                crop = _decode(ann, image)
                if crop is None:
                    problems.append(Problem(json_path, f"annotation {ann['id']} decodes to an empty mask"))
                elif isinstance(ann["segmentation"], dict) and (
                        list(crop.xywh) != list(ann["bbox"]) or crop.area != ann["area"]):
                    problems.append(Problem(json_path, f"annotation {ann['id']}: bbox/area differ from its RLE"))
            continue
        sources, source_problems = read_sources(image)
        problems += source_problems
        if not source_problems:
            problems += compare_image(image, anns, sources, json_path, min_polygon_iou)
    return problems
