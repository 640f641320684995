#!/usr/bin/env python
"""Segment nuclei in images of any size and export the results.

    python tools/infer.py CONFIG CHECKPOINT INPUT... --out DIR [--format coco geojson labels overlay]

INPUT: image files, folders (their .png/.jpg/.tif/... files) or quoted glob patterns. Large images
are processed in overlapping tiles (--tile, --overlap); nuclei on tile seams come out once and whole.
A bad input file is reported at the end (exit status 2) without stopping the others. See
docs/inference.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from nucleus_seg.errors import EXIT_BAD_INPUT, InputError, run_cli  # noqa: E402
from nucleus_seg.inference.batch import FORMATS, BatchReport, check_run_outputs, infer_files  # noqa: E402
from nucleus_seg.image_io import expand_inputs  # noqa: E402
from nucleus_seg.inference.tiling import DEFAULT_DEDUP_THR, DEFAULT_OVERLAP, DEFAULT_TILE  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("config", help="model config (.py)")
    p.add_argument("checkpoint", help="trained weights (.pth), a local file")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--format", nargs="+", choices=FORMATS, default=["coco", "geojson", "labels"],
                   dest="formats", help="exports to write")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE, help="tile size in pixels")
    p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP,
                   help="overlap between tiles in pixels; keep it above the largest nucleus diameter")
    p.add_argument("--score-thr", type=float, default=0.5, help="drop detections scoring below this")
    p.add_argument("--dedup-thr", type=float, default=DEFAULT_DEDUP_THR,
                   help="overlap at which predictions of one nucleus from two tiles are merged")
    p.add_argument("--max-per-img", type=int, default=1000, help="detections per tile at most")
    p.add_argument("--scale-factor", type=float, default=None,
                   help="zoom tiles by this factor instead of the config's test Resize. The nucleus "
                        "configs already rescale by a fixed factor (2.0), so any --tile sees nuclei at "
                        "the training zoom; set this only for a config that resizes to a fixed size")
    p.add_argument("--device", default=None, help="e.g. cpu or cuda:0 (default: cuda:0 if available)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.tile < 32:
        p.error(f"--tile must be at least 32, got {args.tile}")
    if not 0 <= args.overlap < args.tile:
        p.error(f"--overlap must be in [0, --tile), got {args.overlap} with --tile {args.tile}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    report = BatchReport()
    files, problems = expand_inputs(args.inputs)
    report.failed.extend(problems)
    if not files:
        if len(problems) == 1:
            raise InputError(*problems[0])
        print(report.format(), file=sys.stderr)
        return EXIT_BAD_INPUT
    check_run_outputs(args.out, args.formats, args.overwrite)  # before the slow model load

    from nucleus_seg.inference.predictor import load_predictor

    device = args.device
    if device is None:
        import torch
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    predictor = load_predictor(args.config, args.checkpoint, device, args.score_thr,
                               args.max_per_img, args.scale_factor)
    infer_files(files, predictor, args.out, predictor.class_names, args.formats, args.tile,
                args.overlap, args.dedup_thr, args.overwrite, progress=not args.no_progress,
                report=report)
    print(report.format())
    return EXIT_BAD_INPUT if report.failed else 0


if __name__ == "__main__":
    run_cli(main)
