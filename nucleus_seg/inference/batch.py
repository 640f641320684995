"""Batch inference over many image files: what ``tools/infer.py`` runs, importable for reuse.

One bad file (unreadable, output already present, ...) is recorded and the others go on; the caller
reports failures at the end and exits non-zero.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from tqdm import tqdm

from ..categories import coco_categories
from ..errors import InputError
from ..fileio import atomic_write_json, check_writable
from ..image_io import read_image
from .export import (coco_results_json, export_coco_parts, export_geojson, export_label_image,
                     export_overlay)
from .tiling import DEFAULT_DEDUP_THR, DEFAULT_OVERLAP, DEFAULT_TILE, Predictor, run_tiled, tile_grid

FORMATS = ("coco", "geojson", "labels", "overlay")
COCO_RESULTS_NAME = "coco_results.json"
COCO_IMAGES_NAME = "coco_images.json"


@dataclass
class ImageSummary:
    path: Path
    height: int
    width: int
    tiles: int
    nuclei: int
    seconds: float
    outputs: List[Path] = field(default_factory=list)


@dataclass
class BatchReport:
    done: List[ImageSummary] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)  # (path, problem)

    def format(self) -> str:
        lines = []
        if self.done:
            name_w = max(5, max(len(s.path.name) for s in self.done))
            lines.append(f"{'image':<{name_w}}  {'size (WxH)':>11}  {'tiles':>5}  {'nuclei':>6}  "
                         f"{'seconds':>7}")
            for s in self.done:
                lines.append(f"{s.path.name:<{name_w}}  {f'{s.width}x{s.height}':>11}  "
                             f"{s.tiles:>5}  {s.nuclei:>6}  {s.seconds:>7.1f}")
        lines.append(f"{len(self.done)} image(s) done, {len(self.failed)} failed")
        for path, problem in self.failed:
            lines.append(f"error: {path}: {problem}")
        return "\n".join(lines)


def output_paths(image_path: Path, out_dir: Path, formats: Sequence[str]) -> Dict[str, Path]:
    """Per-image outputs, named after the image's file stem."""
    stem = out_dir / image_path.stem
    paths = {}
    if "geojson" in formats:
        paths["geojson"] = Path(f"{stem}.geojson")
    if "labels" in formats:
        paths["labels"] = Path(f"{stem}.labels.png")  # .labels.npy if >= 65536 nuclei
    if "overlay" in formats:
        paths["overlay"] = Path(f"{stem}.overlay.png")
    return paths


def check_run_outputs(out_dir: Path, formats: Sequence[str], overwrite: bool) -> None:
    """Fail before any work if a run-level output exists (the COCO files)."""
    if "coco" in formats:
        check_writable(out_dir / COCO_RESULTS_NAME, overwrite)
        check_writable(out_dir / COCO_IMAGES_NAME, overwrite)


def infer_files(files: Sequence[Path], predictor: Predictor, out_dir, class_names: Sequence[str],
                formats: Sequence[str] = ("coco", "geojson", "labels"), tile: int = DEFAULT_TILE,
                overlap: int = DEFAULT_OVERLAP, dedup_thr: float = DEFAULT_DEDUP_THR,
                overwrite: bool = False, progress: bool = True,
                report: Optional[BatchReport] = None) -> BatchReport:
    """Run tiled inference on each file and write the chosen exports into ``out_dir``.

    COCO image ids are 1-based positions in ``files`` (stable whether or not others fail)."""
    out_dir = Path(out_dir)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown formats {unknown}; choose from {FORMATS}")
    report = report or BatchReport()
    check_run_outputs(out_dir, formats, overwrite)
    coco_parts, coco_images = [], []  # per-image JSON text: compact
    claimed: Dict[str, Path] = {}  # output stem -> input that produces it

    for image_id, path in enumerate(tqdm(files, desc="images", unit="img", file=sys.stderr,
                                         disable=not progress), start=1):
        path = Path(path)
        try:
            if path.stem in claimed:
                raise InputError(path, f"has the same file name stem as {claimed[path.stem]}; "
                                       "their outputs would collide (run them separately)")
            claimed[path.stem] = path
            targets = output_paths(path, out_dir, formats)
            for target in targets.values():  # before spending time on the image
                check_writable(target, overwrite)
            if "labels" in formats:
                check_writable(Path(str(out_dir / path.stem) + ".labels.npy"), overwrite)
            start = time.perf_counter()
            image = read_image(path)
            height, width = image.shape[:2]
            n_tiles = len(tile_grid(height, width, tile, overlap))
            with tqdm(total=n_tiles, desc=f"  {path.name}", unit="tile", leave=False,
                      file=sys.stderr, disable=not progress) as bar:
                instances = run_tiled(image, predictor, tile, overlap, dedup_thr,
                                      progress=lambda done, total: bar.update(1))
            written = []
            if "geojson" in formats:
                written.append(export_geojson(targets["geojson"], instances, class_names, overwrite))
            if "labels" in formats:
                written.append(export_label_image(out_dir / path.stem, instances, overwrite))
            if "overlay" in formats:
                written.append(export_overlay(targets["overlay"], image, instances, overwrite))
            if "coco" in formats:
                coco_parts.append(coco_results_json(instances, image_id))
                coco_images.append({"id": image_id, "file_name": path.name,
                                    "height": height, "width": width})
            del image
            report.done.append(ImageSummary(path, height, width, n_tiles, len(instances),
                                            time.perf_counter() - start, written))
        except InputError as exc:
            report.failed.append((exc.path or str(path), exc.problem))
        except MemoryError:
            report.failed.append((str(path), "not enough memory to load or process this image"))

    if "coco" in formats:
        export_coco_parts(out_dir / COCO_RESULTS_NAME, coco_parts, overwrite)
        atomic_write_json(out_dir / COCO_IMAGES_NAME,
                          {"images": coco_images, "categories": coco_categories(class_names)},
                          overwrite)
    return report
