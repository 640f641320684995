"""Training and testing runs: configs with the command-line overrides applied, and the test run with
its outputs (results JSON, scores, contour overlays). ``tools/train.py`` and ``tools/test.py`` parse
arguments and call these."""
from __future__ import annotations

import os
import os.path as osp
import shutil
import tempfile
from collections import defaultdict
from typing import List, Optional, Sequence, Tuple

from .checkpoints import check_checkpoint, check_pretrained
from .config_utils import evaluators, load_config, replace_data_root
from .errors import InputError
from .fileio import atomic_write_json, check_writable, load_json

COCO_METRIC_TYPES = ("DenseCocoMetric", "CocoMetric")


def default_work_dir(config) -> str:
    """``work_dirs/<config file name without .py>``."""
    return osp.join("work_dirs", osp.splitext(osp.basename(str(config)))[0])


def _check_annotation_files(cfg, splits: Sequence[str], what: str) -> None:
    for split in splits:
        dl = cfg.get(split)
        if dl and dl.get("dataset") and dl.dataset.get("ann_file"):
            ann = osp.join(dl.dataset.get("data_root", ""), dl.dataset.ann_file)
            if not osp.isfile(ann):
                raise InputError(ann, f"{split} annotation file not found ({what})")


def build_train_config(config, *, work_dir: Optional[str] = None, data_root: Optional[str] = None,
                       resume: Optional[str] = None, amp: bool = False, no_pretrained: bool = False,
                       time_budget: Optional[float] = None, no_validate: bool = False,
                       seed: Optional[int] = None, cfg_options: Optional[dict] = None,
                       launcher: str = "none"):
    """The training config after every override of ``tools/train.py``.

    ``resume``: "auto" resumes from the work dir's latest checkpoint, a path from that file.
    One-line InputErrors for a missing config, pretrained checkpoint, resume file or annotation file,
    and for ``amp`` without a GPU."""
    from . import register  # noqa: F401  (compat fixes + registrations)

    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    if data_root:
        replace_data_root(cfg, data_root)
    cfg.work_dir = work_dir or default_work_dir(config)
    if no_pretrained:
        cfg.load_from = None
    elif not resume:
        check_pretrained(cfg.get("load_from"))
    if amp:
        import torch
        if not torch.cuda.is_available():  # mmengine's AmpOptimWrapper asserts on a CUDA device
            raise InputError(None, "--amp needs a CUDA GPU; train without it on the CPU")
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.loss_scale = "dynamic"
    if resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif resume:
        if not osp.isfile(resume):
            raise InputError(resume, "checkpoint to resume from not found")
        cfg.resume, cfg.load_from = True, resume
    if time_budget:
        from .time_budget import apply_time_budget
        apply_time_budget(cfg, time_budget)
    if no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if seed is not None:
        cfg.randomness = dict(seed=seed)
    _check_annotation_files(cfg, ("train_dataloader", "val_dataloader"),
                            "convert your data with converters/mask2coco.py (PanNuke: pannuke2coco.py, "
                            "then pannuke_splits.py), or pass --data-root")
    return cfg


def train(cfg) -> str:
    """Run training on a config from :func:`build_train_config`; returns the work dir."""
    from mmengine.runner import Runner

    Runner.from_cfg(cfg).train()
    return osp.abspath(cfg.work_dir)


def build_test_config(config, checkpoint, *, eval_metrics: Optional[Sequence[str]] = None,
                      format_only: bool = False, ann_file: Optional[str] = None,
                      img_dir: Optional[str] = None, data_root: Optional[str] = None,
                      work_dir: Optional[str] = None, cfg_options: Optional[dict] = None,
                      launcher: str = "none", outfile_prefix: Optional[str] = None):
    """The test config after every override of ``tools/test.py``; returns (config, its COCO metric).

    ``eval_metrics`` (mmdet 2.x ``--eval``: 'segm', 'bbox') chooses the COCO metrics; the config's
    other evaluators (AJI / PQ / Dice) run when 'segm' is among them or no choice is made.
    ``format_only`` only writes results (an unlabeled test set); ``outfile_prefix`` is where the COCO
    metric writes ``<prefix>.segm.json`` / ``.bbox.json``."""
    from . import register  # noqa: F401

    check_checkpoint(checkpoint)
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    cfg.load_from = str(checkpoint)
    cfg.work_dir = work_dir or default_work_dir(config)
    if data_root:
        replace_data_root(cfg, data_root)

    dataset = cfg.test_dataloader.dataset
    if ann_file:
        if not osp.isfile(ann_file):
            raise InputError(ann_file, "annotation file not found")
        dataset.data_root = ""
        dataset.ann_file = osp.abspath(ann_file)
        dataset.data_prefix = dict(img=osp.abspath(img_dir) + "/" if img_dir else "")
    ann_path = osp.join(dataset.get("data_root", ""), dataset.ann_file)
    if not osp.isfile(ann_path):
        raise InputError(ann_path, "test annotation file not found (pass --ann-file)")

    coco = [e for e in evaluators(cfg.test_evaluator) if e.type in COCO_METRIC_TYPES]
    if not coco:
        raise InputError(str(config), "test_evaluator has no CocoMetric/DenseCocoMetric")
    coco = coco[0]
    coco.ann_file = ann_path
    if eval_metrics:
        coco.metric = list(eval_metrics)
    if format_only:
        coco.format_only = True
        coco.outfile_prefix = outfile_prefix
        cfg.test_evaluator = [coco]  # nothing to score against on an unlabeled set
    else:
        others = [dict(e, ann_file=ann_path) for e in evaluators(cfg.test_evaluator)
                  if e.type not in COCO_METRIC_TYPES and (not eval_metrics or "segm" in eval_metrics)]
        if outfile_prefix:
            coco.outfile_prefix = outfile_prefix
        cfg.test_evaluator = [coco] + others
    return cfg, coco


def write_overlays(cfg, segm_json: str, show_dir: str, score_thr: float, overwrite: bool) -> int:
    """Contour overlays of the segm results, one PNG per test image (readable at 1,000 nuclei,
    unlike mmdet's box-and-label visualiser); returns the number written."""
    from .image_io import read_image
    from .inference.export import export_overlay, instances_from_coco_results

    dataset = cfg.test_dataloader.dataset
    coco = load_json(osp.join(dataset.get("data_root", ""), dataset.ann_file))
    classes = list(dataset.get("metainfo", {}).get("classes", [])) or [c["name"] for c in coco["categories"]]
    label_of = {c["id"]: classes.index(c["name"]) for c in coco["categories"] if c["name"] in classes}
    by_image = defaultdict(list)
    for r in load_json(segm_json):
        by_image[r["image_id"]].append(r)
    img_dir = osp.join(dataset.get("data_root", ""), dataset.get("data_prefix", {}).get("img", ""))
    for info in coco["images"]:
        image = read_image(osp.join(img_dir, info["file_name"]))
        instances = instances_from_coco_results(by_image[info["id"]], info["height"], info["width"],
                                                label_of, score_thr)
        name = osp.splitext(osp.basename(info["file_name"]))[0] + ".png"
        export_overlay(osp.join(show_dir, name), image, instances, overwrite=overwrite)
    return len(coco["images"])


def result_paths(prefix: str, metrics) -> List[str]:
    return [f"{prefix}.{m}.json" for m in metrics]


def run_test(config, checkpoint, *, out_prefix: Optional[str] = None, show_dir: Optional[str] = None,
             out_metrics: Optional[str] = None, score_thr: float = 0.5, overwrite: bool = False,
             log=print, **config_overrides) -> Tuple[dict, List[str]]:
    """Test ``checkpoint``: scores (empty for ``format_only``; ``scores['evaluation']`` lists how each
    group was computed) and the paths written.

    ``out_prefix`` keeps ``<prefix>.segm.json`` / ``.bbox.json`` (COCO results), ``show_dir`` gets
    contour overlays (predictions scoring >= ``score_thr``), ``out_metrics`` the scores as JSON.
    Existing outputs are refused before any inference unless ``overwrite``; results are written to a
    temporary folder beside them and moved into place when complete. ``config_overrides`` go to
    :func:`build_test_config`."""
    final_paths, written = [], []
    tmp_dir = tmp_prefix = None
    if out_prefix or show_dir:
        # CocoMetric writes its JSON here first; finished files are moved into place by rename.
        out_dir = osp.dirname(osp.abspath(out_prefix or show_dir))
        os.makedirs(out_dir, exist_ok=True)
        tmp_dir = tempfile.mkdtemp(prefix=".results-", dir=out_dir)
        tmp_prefix = osp.join(tmp_dir, "results")
    try:
        cfg, coco = build_test_config(config, checkpoint, outfile_prefix=tmp_prefix, **config_overrides)
        metrics = list(coco.metric) if isinstance(coco.metric, (list, tuple)) else [coco.metric]
        if show_dir and "segm" not in metrics:
            raise InputError(show_dir, "--show-dir draws masks: evaluate segm too")
        if out_prefix:
            final_paths = result_paths(out_prefix, metrics)
        for path in final_paths + ([out_metrics] if out_metrics else []):
            check_writable(path, overwrite)  # refuse before spending time on inference
        from mmengine.runner import Runner
        runner = Runner.from_cfg(cfg)
        scores = runner.test() or {}
        if scores:
            # how each group of keys was computed (scoring mode, score threshold, AP maxDets), kept
            # with the scores so every printed or saved table says it
            scores = {"evaluation": [m.describe() for m in runner.test_evaluator.metrics
                                     if hasattr(m, "describe")], **scores}
        if show_dir:
            n = write_overlays(cfg, f"{tmp_prefix}.segm.json", show_dir, score_thr, overwrite)
            log(f"wrote {n} overlays to {show_dir}")
        for metric, path in zip(metrics, final_paths):
            produced = f"{tmp_prefix}.{metric}.json"
            if osp.exists(produced):
                os.replace(produced, path)
                written.append(path)
                log(f"wrote {path}")
        if config_overrides.get("format_only"):
            scores = {}
        if scores and out_metrics:
            from .evaluation import json_safe
            atomic_write_json(out_metrics, json_safe(scores), overwrite=overwrite, indent=1)
            written.append(out_metrics)
            log(f"wrote {out_metrics}")
    finally:
        if tmp_dir:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return scores, written


def format_scores(scores: dict) -> str:
    """One score a line, under the lines of ``scores['evaluation']`` that say how they were computed."""
    values = {k: v for k, v in scores.items() if k != "evaluation"}
    width = max(len(k) for k in values)
    return "\n".join(list(scores.get("evaluation", [])) + [
        f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}" for k, v in values.items()])


__all__ = ["COCO_METRIC_TYPES", "default_work_dir", "build_train_config", "train", "build_test_config",
           "write_overlays", "result_paths", "run_test", "format_scores"]
