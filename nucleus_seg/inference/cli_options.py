"""The model and slide options shared by tools/infer.py and tools/infer_cohort.py: one definition,
so both commands take the same flags and build the same :class:`SlideSettings`."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..checkpoints import add_trust_argument
from .seams import DEFAULT_MATCH_IOU, DEFAULT_TOLERANCE
from .tiling import DEFAULT_OVERLAP, DEFAULT_TILE

ALWAYS = ("geojson", "parquet")  # written for every input; accepted in --format for old commands


def slide_argument_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of ``doc``, holding the slide arguments."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_slide_arguments(p)
    return p


def add_slide_arguments(p: argparse.ArgumentParser) -> None:
    """config, checkpoint, --out, --trust-pickle-global and every option of the single-slide path."""
    from ..slide_inference import EXTRAS, SlideSettings

    defaults = SlideSettings()
    p.add_argument("config", help="model config (.py)")
    p.add_argument("checkpoint", help="trained weights (.pth), a local file")
    p.add_argument("--out", required=True, type=Path,
                   help="output folder (one sub-folder per input)")
    p.add_argument("--format", nargs="+", choices=ALWAYS + EXTRAS, default=list(ALWAYS),
                   dest="formats", help="geojson and parquet are always written; labels, overlay "
                   "and coco add a label image, a contour overlay and COCO results for ordinary "
                   "images (up to 100 megapixels)")
    p.add_argument("--gzip", action="store_true", help="write nuclei.geojson.gz")
    p.add_argument("--mpp", type=float, default=None,
                   help="microns per pixel of the inputs, overriding their metadata (required for "
                        "slides that record none)")
    p.add_argument("--model-mpp", type=float, default=None,
                   help="microns per pixel the model expects (default: the config's nucleus_mpp)")
    p.add_argument("--tissue", default=defaults.tissue,
                   help="'auto' (detect on slides, whole ordinary images), 'detect', 'all', or a "
                        "mask image / QuPath GeoJSON of the region to process")
    p.add_argument("--min-tissue", type=float, default=defaults.min_tissue,
                   help="tiles with a smaller tissue fraction are not predicted")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE, help="tile size in model pixels")
    p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP,
                   help="overlap between tiles in model pixels; keep it above the largest nucleus "
                        "diameter")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size,
                   help="tiles per forward pass")
    p.add_argument("--workers", type=int, default=defaults.workers,
                   help="tile reader processes (0: read in the main process)")
    p.add_argument("--score-thr", type=float, default=None,
                   help="drop detections scoring below this (default: the checkpoint's calibrated threshold, "
                        "else 0.5; the one used is printed with its source)")
    p.add_argument("--max-per-img", type=int, default=1000, help="detections per tile at most")
    p.add_argument("--match-iou", type=float, default=DEFAULT_MATCH_IOU,
                   help="IoU (inside their shared window) at which two tiles' predictions are one "
                        "nucleus")
    p.add_argument("--tolerance", type=int, default=DEFAULT_TOLERANCE,
                   help="pixels by which two tiles' outlines of one nucleus may differ")
    p.add_argument("--frame", choices=("qupath", "slide"), default=defaults.frame,
                   help="output coordinates: QuPath's frame (level 0 minus the scanned-area origin "
                        "for MRXS/SCN/...) or OpenSlide's full level 0")
    p.add_argument("--region-rows", type=int, default=defaults.region_rows,
                   help="tile rows per committed region (the most a killed run loses)")
    p.add_argument("--scale-factor", type=float, default=None,
                   help="zoom tiles by this factor instead of the config's test Resize. The nucleus "
                        "configs already rescale by a fixed factor (2.0), so any --tile sees nuclei at "
                        "the training zoom; set this only for a config that resizes to a fixed size")
    p.add_argument("--device", default=None, help="e.g. cpu or cuda:0 (default: cuda:0 if available)")
    p.add_argument("--overwrite", action="store_true",
                   help="redo finished inputs and discard unfinished runs, replacing their outputs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_trust_argument(p)


def check_slide_arguments(p: argparse.ArgumentParser, args) -> None:
    if args.tile < 32:
        p.error(f"--tile must be at least 32, got {args.tile}")
    if not 0 <= args.overlap < args.tile:
        p.error(f"--overlap must be in [0, --tile), got {args.overlap} with --tile {args.tile}")
    if args.batch_size < 1 or args.workers < 0 or args.region_rows < 1:
        p.error("--batch-size and --region-rows must be >= 1, --workers >= 0")


def slide_settings(args, target_mpp: float):
    """The :class:`SlideSettings` the parsed options describe."""
    from ..slide_inference import EXTRAS, SlideSettings

    return SlideSettings(
        target_mpp=target_mpp, mpp=args.mpp, tile=args.tile, overlap=args.overlap,
        match_iou=args.match_iou, tolerance=args.tolerance, tissue=args.tissue,
        min_tissue=args.min_tissue, frame=args.frame, region_rows=args.region_rows, gzip=args.gzip,
        extras=tuple(f for f in EXTRAS if f in args.formats), batch_size=args.batch_size,
        workers=args.workers, overwrite=args.overwrite, progress=not args.no_progress)


__all__ = ["ALWAYS", "add_slide_arguments", "check_slide_arguments", "slide_argument_parser",
           "slide_settings"]
