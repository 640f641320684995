"""Validation of COCO files, in one place: ground truth (converter outputs, evaluation input) and
results (``*.segm.json`` / ``*.bbox.json``), with one :class:`Problem` type and shared checks.

Checks return every :class:`Problem` they find and never fix anything; :class:`ProblemsError` turns
a list of problems into the one-line ``InputError`` the CLIs print. numpy (via
:mod:`nucleus_seg.geometry`) only, so it is cheap to import from tools. The converters' comparison
of annotations with their source masks is in :mod:`nucleus_seg.converters.validate`.
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
    """One thing wrong with an input: the file (None where the caller names it), where in the file
    (e.g. ``result 3 (image_id 5)``, ``annotation 12``; None for the file as a whole), and what."""

    path: Optional[str]
    problem: str
    item: Optional[str] = None

    def __post_init__(self):
        if self.path is not None and not isinstance(self.path, str):
            object.__setattr__(self, "path", str(self.path))  # Path objects print the same

    def __str__(self) -> str:
        return ": ".join(str(p) for p in (self.path, self.item, self.problem) if p is not None)


class ProblemsError(InputError):
    """Bad input with a list of problems (``problems``); the one-line message names the first and
    counts the rest."""

    def __init__(self, path, problems: Sequence[Problem], summary: Optional[str] = None):
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "invalid"
        more = f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
        super().__init__(path, (f"{summary}: " if summary else "") + first + more)


def raise_problems(path, problems: Sequence[Problem], summary: Optional[str] = None) -> None:
    if problems:
        raise ProblemsError(path, problems, summary)


def limit_lines(lines: Sequence[str], limit: int = 20) -> List[str]:
    """Up to ``limit`` lines, then one line counting the rest."""
    lines = [str(line) for line in lines]
    if len(lines) > limit:
        return lines[:limit] + [f"... and {len(lines) - limit} more"]
    return lines


# ------------------------------------------------------------------------------------ field checks
def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


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


def check_images(images, require_file_name: bool = False) -> List[Problem]:
    """Image entries: objects with id, height, width (and file_name) and unique ids."""
    if not isinstance(images, list):
        return [Problem(None, "expected a COCO JSON with 'images' or a list of "
                              "{file_name, id, height, width}")]
    problems, seen = [], set()
    required = ("id", "file_name", "height", "width") if require_file_name else ("id", "height", "width")
    for i, im in enumerate(images):
        item = f"images[{i}]"
        if not isinstance(im, dict):
            problems.append(Problem(None, "is not an object", item))
            continue
        missing = [k for k in required if k not in im]
        if missing:
            problems.append(Problem(None, "has no " + ", ".join(repr(k) for k in missing), item))
            continue
        if not (_is_int(im["height"]) and _is_int(im["width"]) and im["height"] > 0 and im["width"] > 0):
            problems.append(Problem(None, f"(id {im['id']!r}) has invalid height/width "
                                          f"{im['height']!r}x{im['width']!r}", item))
        if im["id"] in seen:
            problems.append(Problem(None, f"duplicate image id {im['id']!r}", item))
        seen.add(im["id"])
    return problems


def check_categories(categories, require_ids_from_1: bool = False) -> List[Problem]:
    if not isinstance(categories, list) or not all(isinstance(c, dict) and "id" in c for c in categories):
        return [Problem(None, "'categories' must be a list of objects with an 'id'")]
    ids = [c["id"] for c in categories]
    if require_ids_from_1 and sorted(ids) != list(range(1, len(ids) + 1)):
        return [Problem(None, f"category ids must be 1..N, got {ids}")]
    return []


def check_coco_gt(gt, strict: bool = False) -> List[Problem]:
    """Every structural problem of a COCO instance file (ground truth): images, categories, and each
    annotation's references and segmentation (decodable at its image's size).

    ``strict`` adds what the converters promise about their outputs: every image has a file_name,
    category ids are 1..N, annotation ids are present and unique, ``iscrowd`` is 0 and ``bbox`` is a
    valid [x, y, w, h]."""
    if not isinstance(gt, dict) or not all(isinstance(gt.get(k), list)
                                           for k in ("images", "annotations", "categories")):
        return [Problem(None, "must be a COCO JSON object with lists images, annotations and categories")]
    problems = check_images(gt["images"], require_file_name=strict)
    problems += check_categories(gt["categories"], require_ids_from_1=strict)
    if problems:
        return problems  # annotations refer to images and categories: those must be sound first
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    ann_ids = set()
    for i, ann in enumerate(gt["annotations"]):
        if not isinstance(ann, dict):
            problems.append(Problem(None, "is not an object", f"annotations[{i}]"))
            continue
        item = f"annotation {ann['id']!r}" if "id" in ann else f"annotations[{i}]"
        missing = [k for k in ("image_id", "category_id", "segmentation") + (("id", "bbox") if strict else ())
                   if k not in ann]
        if missing:
            problems.append(Problem(None, "has no " + ", ".join(repr(k) for k in missing), item))
            continue
        if strict:
            if ann["id"] in ann_ids:
                problems.append(Problem(None, "id is used twice", item))
            ann_ids.add(ann["id"])
            if ann.get("iscrowd", 0) != 0:
                problems.append(Problem(None, "iscrowd must be 0 for nuclei", item))
            msg = check_bbox(ann["bbox"])
            if msg:
                problems.append(Problem(None, msg, item))
        if ann["category_id"] not in cat_ids:
            problems.append(Problem(None, f"unknown category_id {ann['category_id']!r}", item))
        if ann["image_id"] not in sizes:
            problems.append(Problem(None, f"refers to unknown image_id {ann['image_id']!r}", item))
            continue
        msg = check_segmentation(ann["segmentation"], *sizes[ann["image_id"]], require_compressed_rle=False)
        if msg:
            problems.append(Problem(None, f"(image_id {ann['image_id']!r}) {msg}", item))
    return problems


def validate_coco_gt(gt, path="gt") -> None:
    """Raise :class:`ProblemsError` naming ``path`` if the GT has any structural problem (before
    scoring against it)."""
    raise_problems(path, check_coco_gt(gt))


# ---------------------------------------------------------------------------------------- results
def parse_image_list(obj, path="images") -> List[dict]:
    """Image entries from a COCO JSON dict (its ``images``) or a bare list; each needs id/height/width."""
    images = obj.get("images") if isinstance(obj, dict) else obj
    raise_problems(path, check_images(images))
    return images


def parse_categories(obj, path="categories") -> List[dict]:
    """``categories`` of a COCO JSON; the nucleus table for a bare image list (DSB ``test_img_ids.json``)."""
    if isinstance(obj, dict) and "categories" in obj:
        raise_problems(path, check_categories(obj["categories"]))
        return obj["categories"]
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
        return [Problem(None, f"results must be a list, got {type(results).__name__}")]
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
            problems.append(Problem(None, f"is a {type(res).__name__}, not an object", f"result {i}"))
            continue
        image_id = res.get("image_id")
        item = f"result {i}" if image_id is None else f"result {i} (image_id {image_id!r})"
        missing = [k for k in required if k not in res]
        if missing:
            problems.append(Problem(None, "missing key(s) " + ", ".join(repr(k) for k in missing), item))
        if "image_id" in res and (not _is_int(image_id) or image_id not in sizes):
            problems.append(Problem(None, f"unknown image_id {image_id!r}", item))
        if "category_id" in res and res["category_id"] not in cat_ids:
            problems.append(Problem(None, f"unknown category_id {res['category_id']!r} "
                                          f"(known: {sorted(cat_ids)})", item))
        if "score" in res:
            s = res["score"]
            if not (_is_number(s) and math.isfinite(s) and 0.0 <= s <= 1.0):
                problems.append(Problem(None, f"score must be a number in [0, 1], got {s!r}", item))
        if "bbox" in res:
            msg = check_bbox(res["bbox"])
            if msg:
                problems.append(Problem(None, msg, item))
        if "segmentation" in res and image_id in sizes and _is_int(image_id):
            msg = check_segmentation(res["segmentation"], *sizes[image_id],
                                     require_compressed_rle=require_compressed_rle)
            if msg:
                problems.append(Problem(None, msg, item))
    return problems


__all__ = [
    "Problem", "ProblemsError", "raise_problems", "limit_lines", "check_segmentation", "check_bbox",
    "check_images", "check_categories", "check_coco_gt", "validate_coco_gt", "parse_image_list",
    "parse_categories", "load_images_and_categories", "load_results", "infer_iou_type",
    "validate_results",
]
