#!/usr/bin/env python
"""Segment nuclei in whole-slide images and ordinary images; write QuPath-ready results.

    python tools/infer.py CONFIG CHECKPOINT INPUT... --out DIR [options]

INPUT: slides (.svs .ndpi .mrxs .scn .tif/.tiff incl. OME-TIFF, .bif, .dcm, ...), images (.png .jpg
.tif ...), folders of them or quoted glob patterns. Each input gets a folder DIR/<name>/ with
nuclei.geojson (QuPath), nuclei.parquet, summary.json, qc.png and tissue.png. Slides are read at the
model's microns per pixel, tiles without tissue are skipped, nuclei on tile seams come out once. A
killed run started again resumes where it stopped; finished inputs are skipped. A bad input is
reported at the end (exit status 2) without stopping the others. See docs/inference.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from nucleus_seg.checkpoints import trusted_checkpoints  # noqa: E402
from nucleus_seg.errors import EXIT_BAD_INPUT, InputError, run_cli  # noqa: E402
from nucleus_seg.inference.batch import (SLIDE_SUFFIXES, BatchReport, infer_inputs,  # noqa: E402
                                         one_input_per_dicom_series)
from nucleus_seg.inference.cli_options import (  # noqa: E402
    check_slide_arguments, slide_argument_parser, slide_settings)
from nucleus_seg.image_io import IMAGE_EXTENSIONS, expand_inputs  # noqa: E402


def parse_args(argv=None):
    p = slide_argument_parser(__doc__)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="slide or image files, folders or glob patterns")
    args = p.parse_args(argv)
    check_slide_arguments(p, args)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    report = BatchReport()
    files, problems = expand_inputs(args.inputs, IMAGE_EXTENSIONS + SLIDE_SUFFIXES)
    files = one_input_per_dicom_series(files)
    report.failed.extend(problems)
    if not files:
        if len(problems) == 1:
            raise InputError(*problems[0])
        print(report.format(), file=sys.stderr)
        return EXIT_BAD_INPUT

    from nucleus_seg.inference.predictor import load_predictor
    from nucleus_seg.slide import model_mpp

    device = args.device
    if device is None:
        import torch
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    with trusted_checkpoints(args.trust_checkpoint):
        predictor = load_predictor(args.config, args.checkpoint, device, args.score_thr,
                                   args.max_per_img, args.scale_factor)
    print(predictor.threshold.describe())
    settings = slide_settings(args, args.model_mpp or model_mpp(predictor.model.cfg))
    infer_inputs(files, predictor, args.out, settings, report)
    print(report.format())
    return EXIT_BAD_INPUT if report.failed else 0


if __name__ == "__main__":
    run_cli(main)
