#!/usr/bin/env python
"""Evaluate a checkpoint or write submission-ready results.

    python tools/test.py CONFIG CHECKPOINT --eval segm bbox
    python tools/test.py CONFIG CHECKPOINT --format-only --ann-file data/nucleus/annotations/instance_test.json \
        --img-dir data/nucleus/test --out-prefix work_dirs/results/test
        -> work_dirs/results/test.segm.json, work_dirs/results/test.bbox.json

``--eval`` takes mmdet 2.x style metric names (``segm``, ``bbox``); without it the config's evaluators
run (COCO AP at 1,000 and 100 detections + AJI / PQ / Dice on label maps). The headline ``segm_mAP`` is
the AP at maxDets=1000, ``segm_mAP@100`` the stock one; the scores are printed under lines saying how
each group was computed (see docs/metrics.md). The work is done by
:func:`nucleus_seg.runner.run_test`.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from nucleus_seg.errors import run_cli  # noqa: E402  (first: it quiets mmengine's import)
from nucleus_seg.checkpoints import add_trust_argument, trusted_checkpoints  # noqa: E402

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--eval", nargs="+", choices=["segm", "bbox"], metavar="METRIC",
                   help="mmdet 2.x style: COCO metrics to compute (segm, bbox); segm also runs the "
                        "nucleus metrics (AJI, PQ, Dice)")
    p.add_argument("--format-only", action="store_true",
                   help="only write results JSON (for an unlabeled test set); needs --out-prefix")
    p.add_argument("--out-prefix", help="write PREFIX.segm.json and PREFIX.bbox.json (COCO results)")
    p.add_argument("--out-metrics", help="also write the scores as JSON to this file")
    p.add_argument("--overwrite", action="store_true", help="replace existing result files")
    p.add_argument("--ann-file", help="COCO JSON of the images to test (default: the config's test set)")
    p.add_argument("--img-dir", help="folder the --ann-file's file_name entries are relative to")
    p.add_argument("--data-root", help="dataset root replacing the config's")
    p.add_argument("--show-dir", help="write contour overlay PNGs of the predicted masks here")
    p.add_argument("--score-thr", type=float, default=0.5, help="score threshold for --show-dir")
    p.add_argument("--work-dir", help="where the test log goes (default work_dirs/<config name>)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction)
    add_trust_argument(p)
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = p.parse_args(argv)
    if args.format_only and not args.out_prefix:
        p.error("--format-only needs --out-prefix")
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    with trusted_checkpoints(args.trust_checkpoint):
        return run(args)


def run(args) -> int:
    from nucleus_seg.runner import format_scores, run_test

    scores, _ = run_test(args.config, args.checkpoint, out_prefix=args.out_prefix,
                         show_dir=args.show_dir, out_metrics=args.out_metrics,
                         score_thr=args.score_thr, overwrite=args.overwrite,
                         eval_metrics=args.eval, format_only=args.format_only,
                         ann_file=args.ann_file, img_dir=args.img_dir, data_root=args.data_root,
                         work_dir=args.work_dir, cfg_options=args.cfg_options,
                         launcher=args.launcher)
    if scores:
        print("\n" + format_scores(scores))
    return 0


if __name__ == "__main__":
    run_cli(main)
