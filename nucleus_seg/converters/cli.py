"""Arguments the converter CLIs share (output folder, split, segmentation form, validation,
no-clobber), so every converter takes them with the same names, defaults and help."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from .validate import DEFAULT_MIN_POLYGON_IOU


def add_coco_output_arguments(p: argparse.ArgumentParser, image_root: Optional[str] = "the images folder"
                              ) -> None:
    """``--out-dir``, ``--image-root`` (unless ``image_root`` is None; its text names the default),
    ``--polygons``, ``--val-ratio``, ``--seed``, ``--validate``, ``--min-polygon-iou``,
    ``--overwrite``, ``--quiet``."""
    p.add_argument("--out-dir", type=Path, required=True,
                   help="writes instance_all.json, or instance_train.json + instance_val.json with --val-ratio")
    if image_root:
        p.add_argument("--image-root", type=Path, default=None,
                       help=f"file_name is relative to this folder (default: {image_root})")
    p.add_argument("--polygons", action="store_true", help="store polygons instead of exact RLE")
    p.add_argument("--val-ratio", type=float, default=0.0, help="fraction of images for val (0: no split)")
    p.add_argument("--seed", type=int, default=0, help="split seed (same seed, same split everywhere)")
    p.add_argument("--validate", action="store_true",
                   help="decode every annotation and compare with its source before writing")
    p.add_argument("--min-polygon-iou", type=float, default=DEFAULT_MIN_POLYGON_IOU)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no notes")


def segmentation_form(args: argparse.Namespace) -> str:
    return "polygon" if args.polygons else "rle"


def print_label_report(report, coco: dict, outputs, quiet: bool) -> None:
    """Notes (stderr, unless ``quiet``), the summary with the categories, and the written files."""
    from .pipeline import print_lines

    if not quiet:
        print_lines(report.notes, "note: ")
    names = ", ".join(f"{c['id']}={c['name']}" for c in coco["categories"])
    print(f"{report.summary()}; categories {names}")
    for path in outputs:
        print(f"wrote {path}")
