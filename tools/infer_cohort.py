#!/usr/bin/env python
"""Segment nuclei in a cohort of slides listed in a manifest, on Ray (this machine or a cluster).

    python tools/infer_cohort.py CONFIG CHECKPOINT MANIFEST --out DIR [--address auto] [--shard i/N]

MANIFEST: CSV with a header; column slide (path, relative to the manifest's folder or absolute),
optional mpp (microns per pixel overriding the file) and tissue (mask image / QuPath GeoJSON). Each
slide gets DIR/<name>/ exactly as tools/infer.py writes it. Ray starts on this machine unless
--address joins a running cluster; one model worker per GPU (or per --cpus-per-actor CPUs) is loaded
once and reused, tiles are read by Ray tasks. Finished slides are skipped and partial ones resumed
on a rerun; a slide whose worker dies is retried (--max-attempts), then reported failed. Bad rows
and failed slides are listed at the end (exit status 2); the others go on. Summary:
DIR/cohort_summary.csv.
See README.md ("Cohorts on Ray") and docs/inference.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from nucleus_seg.cohort import ModelLoader, Shard, run_cohort  # noqa: E402
from nucleus_seg.cohort.runner import DEFAULT_MAX_ATTEMPTS  # noqa: E402
from nucleus_seg.errors import EXIT_BAD_INPUT, InputError, run_cli  # noqa: E402
from nucleus_seg.inference.cli_options import (  # noqa: E402
    check_slide_arguments, slide_argument_parser, slide_settings)


def parse_args(argv=None):
    p = slide_argument_parser(__doc__)
    p.add_argument("manifest", type=Path, help="CSV: slide[,mpp][,tissue] with a header row")
    p.add_argument("--address", default=None,
                   help="join a running Ray cluster: 'auto' (on a node of it) or ray://HEAD:10001; "
                        "default: start Ray on this machine for the run")
    p.add_argument("--shard", type=str, default=None, metavar="i/N",
                   help="process every N-th manifest row from row i (0-based), e.g. one SLURM "
                        "array task each; the shards' outputs together are one full run")
    p.add_argument("--no-ray", action="store_true",
                   help="process the slides one after another in this process (no Ray)")
    p.add_argument("--actors", type=int, default=None,
                   help="model workers (default: one per GPU, or one per --cpus-per-actor CPUs)")
    p.add_argument("--cpus-per-actor", type=float, default=1.0,
                   help="CPUs each model worker reserves on a machine without GPUs")
    p.add_argument("--num-cpus", type=int, default=None,
                   help="CPUs of the Ray started on this machine (default: all)")
    p.add_argument("--max-attempts", type=int, default=DEFAULT_MAX_ATTEMPTS,
                   help="tries per slide when its worker process dies, then it is reported failed")
    p.add_argument("--prefetch", type=int, default=4,
                   help="tile batches read ahead of each model worker by Ray tasks")
    args = p.parse_args(argv)
    check_slide_arguments(p, args)
    if args.shard is not None:
        try:
            args.shard = Shard.parse(args.shard)
        except ValueError as exc:
            p.error(str(exc))
    if args.max_attempts < 1 or (args.actors is not None and args.actors < 1) or args.prefetch < 1:
        p.error("--max-attempts, --actors and --prefetch must be >= 1")
    if args.no_ray and args.address:
        p.error("--no-ray and --address exclude each other")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from nucleus_seg.slide import model_mpp

    for path, what in ((args.config, "config"), (args.checkpoint, "checkpoint")):
        if not Path(path).is_file():  # before any slide or Ray starts
            raise InputError(path, f"{what} not found")
    from nucleus_seg.calibration import score_threshold_for
    from nucleus_seg.checkpoints import trusted_checkpoints

    with trusted_checkpoints(args.trust_checkpoint):
        threshold = score_threshold_for(args.score_thr, args.checkpoint)  # the workers all use this one
    print(threshold.describe())
    settings = slide_settings(args, args.model_mpp or model_mpp(args.config))
    loader = ModelLoader(str(Path(args.config).resolve()), str(Path(args.checkpoint).resolve()),
                         args.device, threshold.value, args.max_per_img, args.scale_factor,
                         tuple(args.trust_checkpoint))
    report = run_cohort(args.manifest, args.out, settings, loader, shard=args.shard,
                        engine="local" if args.no_ray else "ray", address=args.address,
                        workers=args.actors, cpus_per_worker=args.cpus_per_actor,
                        max_attempts=args.max_attempts, prefetch=args.prefetch,
                        num_cpus=args.num_cpus, progress=not args.no_progress)
    print(report.table())
    return EXIT_BAD_INPUT if report.failed else 0


if __name__ == "__main__":
    run_cli(main)
