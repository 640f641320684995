"""Load and validate COCO-format detection / segmentation results (``*.bbox.json``, ``*.segm.json``).

``validate_results`` returns a list of :class:`Problem` (result index, image id, what is wrong); it never
fixes anything. The image list comes from a COCO GT JSON (its ``images``) or a ``test_img_ids.json``
list of ``{file_name, id, height, width}``; categories from the COCO JSON, or the nucleus table.
numpy/pycocotools only, so it is cheap to import from tools.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .categories import NUCLEUS_CLASSES, coco_categories
from .errors import InputError
from .fileio import load_json
from .geometry import rle_run_lengths


@dataclass(frozen=True)
class Problem:
    index: Optional[int]  # position in the results list (None for file-level problems)
    image_id: object
    message: str

    def __str__(self) -> str:
        where = "results" if self.index is None else f"result {self.index}"
        if self.image_id is not None:
            where += f" (image_id {self.image_id!r})"
        return f"{where}: {self.message}"


# --------------------------------------------------------------------------------------------- inputs

def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def parse_image_list(obj, path="images") -> List[dict]:
    """Image entries from a COCO JSON dict (its ``images``) or a bare list; each needs id/height/width."""
    images = obj.get("images") if isinstance(obj, dict) else obj
    if not isinstance(images, list):
        raise InputError(path, "expected a COCO JSON with 'images' or a list of {file_name, id, height, width}")
    seen = set()
    for i, im in enumerate(images):
        if not isinstance(im, dict):
            raise InputError(path, f"images[{i}] is not an object")
        for key in ("id", "height", "width"):
            if key not in im:
                raise InputError(path, f"images[{i}] has no '{key}'")
        if not (_is_int(im["height"]) and _is_int(im["width"]) and im["height"] > 0 and im["width"] > 0):
            raise InputError(path, f"images[{i}] (id {im['id']!r}) has invalid height/width "
                                   f"{im['height']!r}x{im['width']!r}")
        if im["id"] in seen:
            raise InputError(path, f"images[{i}]: duplicate image id {im['id']!r}")
        seen.add(im["id"])
    return images


def parse_categories(obj, path="categories") -> List[dict]:
    """``categories`` of a COCO JSON; the nucleus table for a bare image list (DSB ``test_img_ids.json``)."""
    if isinstance(obj, dict) and "categories" in obj:
        cats = obj["categories"]
        if not isinstance(cats, list) or not all(isinstance(c, dict) and "id" in c for c in cats):
            raise InputError(path, "'categories' must be a list of objects with an 'id'")
        return cats
    return coco_categories(NUCLEUS_CLASSES)


def load_images_and_categories(path) -> Tuple[List[dict], List[dict]]:
    obj = load_json(path)
    return parse_image_list(obj, path), parse_categories(obj, path)


def load_results(path) -> List[dict]:
    """A results JSON must be a list (of objects; those are checked by ``validate_results``)."""
    obj = load_json(path)
    if not isinstance(obj, list):
        raise InputError(path, f"results must be a JSON list of detections, got {type(obj).__name__}")
    return obj


# ------------------------------------------------------------------------------------------------ RLE

def check_segmentation(seg, height: int, width: int, require_compressed_rle: bool = True) -> Optional[str]:
    """None if ``seg`` is a mask of an ``height`` x ``width`` image, else what is wrong with it.

    Compressed RLE ({size: [h, w], counts: str}) is always accepted; polygons and uncompressed RLE
    (counts as a list) only when ``require_compressed_rle`` is false (GT files, evaluation input).
    """
    if isinstance(seg, list):
        if require_compressed_rle:
            return "segmentation must be RLE {size, counts}, got polygons"
        if not seg:
            return "segmentation is an empty polygon list"
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2 or \
                    not all(_is_number(v) and math.isfinite(v) for v in poly):
                return "polygon must be a flat list of >= 3 finite x,y pairs"
        return None
    if not isinstance(seg, dict):
        return f"segmentation must be an RLE object, got {type(seg).__name__}"
    for key in ("size", "counts"):
        if key not in seg:
            return f"segmentation has no '{key}'"
    size = seg["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
        return f"segmentation size must be [height, width], got {size!r}"
    if list(size) != [height, width]:
        return f"segmentation size {size} does not match the image size [{height}, {width}]"
    counts = seg["counts"]
    if isinstance(counts, list):
        if require_compressed_rle:
            return "segmentation counts must be a compressed RLE string, got a list"
        runs = counts
        if not all(_is_int(v) and v >= 0 for v in runs):
            return "uncompressed RLE counts must be non-negative integers"
    elif isinstance(counts, str):
        try:
            runs = rle_run_lengths(counts)
        except ValueError as exc:
            return f"bad RLE: {exc}"
    else:
        return f"segmentation counts must be a string, got {type(counts).__name__}"
    total = int(sum(runs))
    if total != height * width:
        return f"bad RLE: runs cover {total} pixels, image has {height}x{width} = {height * width}"
    return None


def check_bbox(bbox) -> Optional[str]:
    if not (isinstance(bbox, list) and len(bbox) == 4):
        return f"bbox must be [x, y, w, h], got {bbox!r}"
    if not all(_is_number(v) and math.isfinite(v) for v in bbox):
        return f"bbox must hold 4 finite numbers, got {bbox!r}"
    if bbox[2] < 0 or bbox[3] < 0:
        return f"bbox width/height must be >= 0, got {bbox!r}"
    return None


# --------------------------------------------------------------------------------------- validation

def infer_iou_type(results: Sequence) -> str:
    """'segm' when the first result carries a segmentation, else 'bbox'."""
    first = results[0] if results else {}
    return "segm" if isinstance(first, dict) and "segmentation" in first else "bbox"


def validate_results(results: Sequence, images: Iterable[dict], categories: Iterable[Union[dict, int]],
                     iou_type: Optional[str] = None, require_compressed_rle: bool = True) -> List[Problem]:
    """Every problem of a COCO results list, each naming the result index and image id.

    ``iou_type`` 'segm' requires ``segmentation`` (a ``bbox``, if present, is checked too); 'bbox' requires
    ``bbox``; None infers it from the first result.
    """
    if not isinstance(results, list):
        return [Problem(None, None, f"results must be a list, got {type(results).__name__}")]
    if iou_type is None:
        iou_type = infer_iou_type(results)
    if iou_type not in ("segm", "bbox"):
        raise ValueError(f"iou_type must be 'segm' or 'bbox', got {iou_type!r}")
    sizes: Dict[object, Tuple[int, int]] = {im["id"]: (im["height"], im["width"]) for im in images}
    cat_ids = {c["id"] if isinstance(c, dict) else c for c in categories}
    required = ("image_id", "category_id", "score", "segmentation" if iou_type == "segm" else "bbox")
    problems: List[Problem] = []
    for i, res in enumerate(results):
        if not isinstance(res, dict):
            problems.append(Problem(i, None, f"is a {type(res).__name__}, not an object"))
            continue
        image_id = res.get("image_id")
        missing = [k for k in required if k not in res]
        if missing:
            problems.append(Problem(i, image_id, "missing key(s) " + ", ".join(repr(k) for k in missing)))
        if "image_id" in res and (not _is_int(image_id) or image_id not in sizes):
            problems.append(Problem(i, image_id, f"unknown image_id {image_id!r}"))
        if "category_id" in res and res["category_id"] not in cat_ids:
            problems.append(Problem(i, image_id, f"unknown category_id {res['category_id']!r} "
                                                 f"(known: {sorted(cat_ids)})"))
        if "score" in res:
            s = res["score"]
            if not (_is_number(s) and math.isfinite(s) and 0.0 <= s <= 1.0):
                problems.append(Problem(i, image_id, f"score must be a number in [0, 1], got {s!r}"))
        if "bbox" in res:
            msg = check_bbox(res["bbox"])
            if msg:
                problems.append(Problem(i, image_id, msg))
        if "segmentation" in res and image_id in sizes and _is_int(image_id):
            msg = check_segmentation(res["segmentation"], *sizes[image_id],
                                     require_compressed_rle=require_compressed_rle)
            if msg:
                problems.append(Problem(i, image_id, msg))
    return problems


def validate_coco_gt(gt, path="gt") -> None:
    """Raise InputError on the first structural problem of a COCO instance GT (used before scoring)."""
    if not isinstance(gt, dict):
        raise InputError(path, "GT must be a COCO JSON object")
    for key in ("images", "annotations", "categories"):
        if key not in gt:
            raise InputError(path, f"GT has no '{key}'")
    images = parse_image_list(gt, path)
    cats = parse_categories(gt, path)
    sizes = {im["id"]: (im["height"], im["width"]) for im in images}
    cat_ids = {c["id"] for c in cats}
    for i, ann in enumerate(gt["annotations"]):
        if not isinstance(ann, dict):
            raise InputError(path, f"annotations[{i}] is not an object")
        for key in ("image_id", "category_id", "segmentation"):
            if key not in ann:
                raise InputError(path, f"annotations[{i}] has no '{key}'")
        if ann["image_id"] not in sizes:
            raise InputError(path, f"annotations[{i}] refers to unknown image_id {ann['image_id']!r}")
        if ann["category_id"] not in cat_ids:
            raise InputError(path, f"annotations[{i}] has unknown category_id {ann['category_id']!r}")
        msg = check_segmentation(ann["segmentation"], *sizes[ann["image_id"]], require_compressed_rle=False)
        if msg:
            raise InputError(path, f"annotations[{i}] (image_id {ann['image_id']!r}): {msg}")


def format_problems(problems: Sequence[Problem], limit: int = 20) -> List[str]:
    """Up to ``limit`` problem lines, then one line counting the rest."""
    lines = [str(p) for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more problem(s)")
    return lines


__all__ = [
    "Problem", "parse_image_list", "parse_categories", "load_images_and_categories", "load_results",
    "check_segmentation", "check_bbox", "infer_iou_type", "validate_results",
    "validate_coco_gt", "format_problems",
]
