#!/usr/bin/env python
"""Evaluate a checkpoint or write submission-ready results.

    python tools/test.py CONFIG CHECKPOINT --eval segm bbox
    python tools/test.py CONFIG CHECKPOINT --format-only --ann-file data/nucleus/annotations/instance_test.json \
        --img-dir data/nucleus/test --out-prefix work_dirs/results/test
        -> work_dirs/results/test.segm.json, work_dirs/results/test.bbox.json

``--eval`` takes mmdet 2.x style metric names (``segm``, ``bbox``); without it the config's evaluators
run (COCO AP at 1,000 and 100 detections + AJI / PQ / Dice on label maps). The headline ``segm_mAP`` is
the AP at maxDets=1000, ``segm_mAP@100`` the stock one; the scores are printed under lines saying how
each group was computed (see docs/metrics.md).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import shutil
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from nucleus_seg.errors import InputError, run_cli  # noqa: E402  (first: it quiets mmengine's import)

from mmengine.config import DictAction  # noqa: E402

COCO_METRIC_TYPES = ("DenseCocoMetric", "CocoMetric")


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
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = p.parse_args(argv)
    if args.format_only and not args.out_prefix:
        p.error("--format-only needs --out-prefix")
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def result_paths(prefix: str, metrics) -> list:
    return [f"{prefix}.{m}.json" for m in metrics]


def build_test_config(args, tmp_prefix=None):
    """The config after every command-line override (importable for tests)."""
    import nucleus_seg.register  # noqa: F401
    from nucleus_seg.checkpoints import check_checkpoint
    from nucleus_seg.config_utils import evaluators, load_config, replace_data_root

    check_checkpoint(args.checkpoint)
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    cfg.load_from = args.checkpoint
    cfg.work_dir = args.work_dir or osp.join("work_dirs", osp.splitext(osp.basename(args.config))[0])
    if args.data_root:
        replace_data_root(cfg, args.data_root)

    dataset = cfg.test_dataloader.dataset
    if args.ann_file:
        if not osp.isfile(args.ann_file):
            raise InputError(args.ann_file, "annotation file not found")
        dataset.data_root = ""
        dataset.ann_file = osp.abspath(args.ann_file)
        dataset.data_prefix = dict(img=osp.abspath(args.img_dir) + "/" if args.img_dir else "")
    ann_file = osp.join(dataset.get("data_root", ""), dataset.ann_file)
    if not osp.isfile(ann_file):
        raise InputError(ann_file, "test annotation file not found (pass --ann-file)")

    coco = [e for e in evaluators(cfg.test_evaluator) if e.type in COCO_METRIC_TYPES]
    if not coco:
        raise InputError(args.config, "test_evaluator has no CocoMetric/DenseCocoMetric")
    coco = coco[0]
    coco.ann_file = ann_file
    if args.eval:
        coco.metric = list(args.eval)
    if args.format_only:
        coco.format_only = True
        coco.outfile_prefix = tmp_prefix
        cfg.test_evaluator = [coco]  # nothing to score against on an unlabeled set
    else:
        others = [dict(e, ann_file=ann_file) for e in evaluators(cfg.test_evaluator)
                  if e.type not in COCO_METRIC_TYPES and (not args.eval or "segm" in args.eval)]
        if tmp_prefix:
            coco.outfile_prefix = tmp_prefix
        cfg.test_evaluator = [coco] + others

    return cfg, coco


def write_overlays(cfg, segm_json: str, show_dir: str, score_thr: float, overwrite: bool) -> int:
    """Contour overlays of the segm results, one PNG per test image (readable at 1,000 nuclei,
    unlike mmdet's box-and-label visualiser)."""
    import json
    from collections import defaultdict

    from nucleus_seg.fileio import load_json
    from nucleus_seg.inference.export import export_overlay, instances_from_coco_results
    from nucleus_seg.inference.image_io import read_image

    dataset = cfg.test_dataloader.dataset
    coco = load_json(osp.join(dataset.get("data_root", ""), dataset.ann_file))
    classes = list(dataset.get("metainfo", {}).get("classes", [])) or [c["name"] for c in coco["categories"]]
    label_of = {c["id"]: classes.index(c["name"]) for c in coco["categories"] if c["name"] in classes}
    by_image = defaultdict(list)
    with open(segm_json) as f:
        for r in json.load(f):
            by_image[r["image_id"]].append(r)
    img_dir = osp.join(dataset.get("data_root", ""), dataset.get("data_prefix", {}).get("img", ""))
    for info in coco["images"]:
        image = read_image(osp.join(img_dir, info["file_name"]))
        instances = instances_from_coco_results(by_image[info["id"]], info["height"], info["width"],
                                                label_of, score_thr)
        name = osp.splitext(osp.basename(info["file_name"]))[0] + ".png"
        export_overlay(osp.join(show_dir, name), image, instances, overwrite=overwrite)
    return len(coco["images"])


def main(argv=None) -> int:
    args = parse_args(argv)
    final_paths = []
    tmp_dir = tmp_prefix = None
    if args.out_prefix or args.show_dir:
        # CocoMetric writes its JSON here first; finished files are moved into place by rename.
        out_dir = osp.dirname(osp.abspath(args.out_prefix or args.show_dir))
        os.makedirs(out_dir, exist_ok=True)
        tmp_dir = tempfile.mkdtemp(prefix=".results-", dir=out_dir)
        tmp_prefix = osp.join(tmp_dir, "results")
    try:
        cfg, coco = build_test_config(args, tmp_prefix)
        metrics = list(coco.metric) if isinstance(coco.metric, (list, tuple)) else [coco.metric]
        if args.show_dir and "segm" not in metrics:
            raise InputError(args.show_dir, "--show-dir draws masks: evaluate segm too")
        if args.out_prefix:
            final_paths = result_paths(args.out_prefix, metrics)
        for path in final_paths + ([args.out_metrics] if args.out_metrics else []):
            if osp.exists(path) and not args.overwrite:  # refuse before spending time on inference
                raise InputError(path, "already exists; pass --overwrite to replace it")
        from mmengine.runner import Runner
        runner = Runner.from_cfg(cfg)
        scores = runner.test()
        evaluation = [m.describe() for m in runner.test_evaluator.metrics if hasattr(m, "describe")]
        if args.show_dir:
            n = write_overlays(cfg, f"{tmp_prefix}.segm.json", args.show_dir, args.score_thr,
                               args.overwrite)
            print(f"wrote {n} overlays to {args.show_dir}")
        if args.out_prefix:
            for metric, path in zip(metrics, final_paths):
                produced = f"{tmp_prefix}.{metric}.json"
                if osp.exists(produced):
                    os.replace(produced, path)
                    print(f"wrote {path}")
        if scores and not args.format_only:
            print_scores(scores, evaluation)
            if args.out_metrics:
                from nucleus_seg.fileio import atomic_write_json
                atomic_write_json(args.out_metrics, {**{k: _plain(v) for k, v in scores.items()},
                                                     "evaluation": evaluation},
                                  overwrite=args.overwrite, indent=1)
                print(f"wrote {args.out_metrics}")
    finally:
        if tmp_dir:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return 0


def _plain(value):
    """JSON-safe number (metrics may be numpy scalars; NaN becomes null)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return None if value != value else value


def print_scores(scores: dict, evaluation=()) -> None:
    """The scores, one per line, under the lines that say how they were computed."""
    width = max(len(k) for k in scores)
    print("\n" + "\n".join(list(evaluation) + [
        f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}" for k, v in scores.items()]))


if __name__ == "__main__":
    run_cli(main)
