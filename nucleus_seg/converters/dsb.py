"""DSB / TCGA mask-folder layout -> COCO instances.

Layout: ``<root>/<id>/images/<id>.png`` and ``<root>/<id>/masks/*.png`` with one binary mask per
nucleus. Image ids are 1..N in sorted folder-name order, annotation ids 1..M in image order, so the
same folder always gives the same JSON.
"""
from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from ..categories import NUCLEUS_CLASSES, coco_categories
from ..errors import InputError
from ..image_io import decode_image_file, is_image_file, read_mask_crop
from .annotations import instance_annotation


@dataclass
class DsbSample:
    """One ``<id>`` folder: its image and its mask files (sorted)."""
    sample_id: str
    image_path: Path
    mask_paths: List[Path]
    image_id: int = 0


@dataclass
class SampleResult:
    image: dict
    annotations: List[dict]
    empty_masks: List[str]
    overlapping_masks: List[str]


@dataclass
class ConversionReport:
    """What a conversion did, for the user: counts, skipped inputs, ignored files."""
    images: int = 0
    annotations: int = 0
    empty_masks: List[str] = field(default_factory=list)
    overlapping_masks: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.images} images, {self.annotations} annotations; "
                f"{len(self.empty_masks)} empty masks skipped; "
                f"{len(self.overlapping_masks)} masks overlap another mask (kept as separate "
                f"instances); {len(self.notes)} stray files ignored")


def relative_file_name(image_path: Path, image_root: Path) -> str:
    """``image_path`` relative to ``image_root`` with forward slashes, as mmdet joins it."""
    try:
        rel = Path(os.path.abspath(image_path)).relative_to(os.path.abspath(image_root))
    except ValueError:
        raise InputError(image_path, f"is not under the image root {image_root}") from None
    return rel.as_posix()


def _scan_sample_folder(folder: Path, notes: List[str]) -> DsbSample:
    images_dir, masks_dir = folder / "images", folder / "masks"
    if not images_dir.is_dir():
        raise InputError(folder, "has no images/ folder (expected <id>/images/<id>.png)")
    if not masks_dir.is_dir():
        raise InputError(folder, "has no masks/ folder (expected <id>/masks/*.png)")
    candidates = []
    for entry in sorted(images_dir.iterdir()):
        if entry.is_file() and is_image_file(entry) and entry.stem == folder.name:
            candidates.append(entry)
        else:
            notes.append(f"{entry}: ignored (not the image {folder.name}.<ext>)")
    if not candidates:
        raise InputError(images_dir, f"has no image named {folder.name}.png")
    if len(candidates) > 1:
        raise InputError(images_dir, "has several images named "
                         + ", ".join(c.name for c in candidates) + "; keep one")
    mask_paths = []
    for entry in sorted(masks_dir.iterdir()):
        if entry.is_file() and is_image_file(entry):
            mask_paths.append(entry)
        else:
            notes.append(f"{entry}: ignored (not a mask image)")
    return DsbSample(folder.name, candidates[0], mask_paths)


def scan_dsb_folders(roots: Sequence[Path]) -> Tuple[List[DsbSample], List[str]]:
    """Find the samples under one or more roots; ids are unique and numbered in sorted order."""
    samples, notes, seen = [], [], {}
    for root in map(Path, roots):
        if not root.is_dir():
            raise InputError(root, "not a folder")
        found = 0
        for entry in sorted(root.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir():
                notes.append(f"{entry}: ignored (not a sample folder)")
                continue
            # Case-insensitive: such ids collide on Windows/macOS file systems and in file_name keys.
            key = entry.name.lower()
            if key in seen:
                raise InputError(entry, f"duplicate image id {entry.name!r} (also {seen[key]})")
            seen[key] = entry
            samples.append(_scan_sample_folder(entry, notes))
            found += 1
        if not found:
            raise InputError(root, "contains no sample folders (<id>/images/<id>.png)")
    samples.sort(key=lambda s: s.sample_id)
    for image_id, sample in enumerate(samples, start=1):
        sample.image_id = image_id
    return samples, notes


def convert_sample(sample: DsbSample, image_root: Path, segmentation: str = "rle") -> SampleResult:
    """Annotations (without ids) of one sample; raises InputError naming the offending file."""
    pixels = decode_image_file(sample.image_path, "image")
    height, width = pixels.shape[:2]
    image = {"id": sample.image_id, "file_name": relative_file_name(sample.image_path, image_root),
             "height": int(height), "width": int(width)}
    annotations, empty, instances = [], [], []
    # How many masks cover each pixel, to count overlapping masks without comparing mask pairs.
    coverage = np.zeros((height, width), dtype=np.uint16)
    for mask_path in sample.mask_paths:
        mask_h, mask_w, crop = read_mask_crop(mask_path)
        if (mask_h, mask_w) != (height, width):
            raise InputError(mask_path, f"mask is {mask_w}x{mask_h} but its image "
                             f"{sample.image_path} is {width}x{height}")
        if crop is None:
            empty.append(str(mask_path))
            continue
        if crop.mask.shape == (height, width) and crop.mask.all():
            raise InputError(mask_path, "mask covers the whole image (is its background non-zero?)")
        ann = instance_annotation(crop, height, width, segmentation)
        ann["category_id"] = 1
        annotations.append(ann)
        coverage[crop.y0:crop.y1, crop.x0:crop.x1] += crop.mask
        instances.append((mask_path, crop))
    overlapping = [str(p) for p, crop in instances
                   if (coverage[crop.y0:crop.y1, crop.x0:crop.x1][crop.mask] > 1).any()]
    return SampleResult(image, annotations, empty, overlapping)


def _convert_sample_in_worker(args):
    # InputError does not survive pickling (its __init__ takes two arguments): send its parts back.
    try:
        return convert_sample(*args)
    except InputError as exc:
        return ("InputError", exc.path, exc.problem)


def as_root_list(roots) -> List[Path]:
    return [Path(r) for r in ([roots] if isinstance(roots, (str, os.PathLike)) else roots)]


def default_image_root(roots: Sequence[Path]) -> Path:
    """The single input folder, or the common parent of several."""
    if len(roots) == 1:
        return Path(roots[0])
    return Path(os.path.commonpath([os.path.abspath(r) for r in roots]))


def convert_dsb(roots, image_root=None, segmentation: str = "rle", workers: int = 0,
                progress: bool = True) -> Tuple[dict, ConversionReport, List[DsbSample]]:
    """Convert DSB-layout folders to one COCO dict.

    ``image_root`` (default: the single root, or the common parent of several) is what ``file_name``
    is relative to. ``workers`` > 1 converts images in that many processes; the output is identical.
    """
    roots = as_root_list(roots)
    image_root = Path(image_root) if image_root is not None else default_image_root(roots)
    samples, notes = scan_dsb_folders(roots)
    jobs = [(s, image_root, segmentation) for s in samples]
    bar = dict(total=len(jobs), desc="images", unit="img", disable=None if progress else True)
    if workers and workers > 1:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers) as pool:
            results = list(tqdm(pool.imap(_convert_sample_in_worker, jobs), **bar))
    else:
        results = [_convert_sample_in_worker(job) for job in tqdm(jobs, **bar)]

    report = ConversionReport(notes=notes)
    images, annotations = [], []
    for result in results:
        if isinstance(result, tuple):
            raise InputError(result[1], result[2])
        images.append(result.image)
        for ann in result.annotations:
            ann["id"] = len(annotations) + 1
            ann["image_id"] = result.image["id"]
            annotations.append(ann)
        report.empty_masks += result.empty_masks
        report.overlapping_masks += result.overlapping_masks
    report.images, report.annotations = len(images), len(annotations)
    coco = {"images": images, "annotations": [_ordered(a) for a in annotations],
            "categories": coco_categories(NUCLEUS_CLASSES)}
    return coco, report, samples


def _ordered(ann: dict) -> dict:
    """Conventional COCO key order, so the JSON reads naturally."""
    keys = ("id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd")
    return {k: ann[k] for k in keys} | {k: v for k, v in ann.items() if k not in keys}
