#!/usr/bin/env python
"""Train a nucleus model: ``python tools/train.py CONFIG [options]``.

CPU or one GPU as is; several GPUs with ``bash tools/dist_train.sh CONFIG NGPUS`` (torchrun).
Outputs go to ``work_dirs/<config name>/`` unless ``--work-dir`` says otherwise.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from nucleus_seg.errors import InputError, run_cli  # noqa: E402  (first: it quiets mmengine's import)

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="config file, e.g. configs/nucleus/mask-rcnn_r50-caffe_fpn_ms-poly-3x_nucleus.py")
    p.add_argument("--work-dir", help="where logs and checkpoints go (default work_dirs/<config name>)")
    p.add_argument("--resume", nargs="?", type=str, const="auto",
                   help="resume from a checkpoint; without a path, from the work dir's latest")
    p.add_argument("--amp", action="store_true", help="automatic mixed precision (GPU)")
    p.add_argument("--no-pretrained", action="store_true",
                   help="train from random initialisation instead of the config's load_from checkpoint")
    p.add_argument("--data-root", help="dataset root replacing the config's (data/nucleus/ by default)")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="stop after the iteration in which this much training wall time ran out, "
                        "and save a checkpoint (epoch-based schedules too)")
    p.add_argument("--no-validate", action="store_true", help="skip validation during training")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: config or random)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction,
                   help="override config settings, e.g. train_cfg.max_epochs=12")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def build_train_config(args):
    """The config after every command-line override (importable for tests)."""
    import nucleus_seg.register  # noqa: F401  (compat fixes + registrations)
    from nucleus_seg.checkpoints import check_pretrained
    from nucleus_seg.config_utils import load_config, replace_data_root
    from nucleus_seg.time_budget import apply_time_budget

    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.data_root:
        replace_data_root(cfg, args.data_root)
    cfg.work_dir = args.work_dir or osp.join("work_dirs", osp.splitext(osp.basename(args.config))[0])
    if args.no_pretrained:
        cfg.load_from = None
    elif not args.resume:
        check_pretrained(cfg.get("load_from"))
    if args.amp:
        import torch
        if not torch.cuda.is_available():  # mmengine's AmpOptimWrapper asserts on a CUDA device
            raise InputError(None, "--amp needs a CUDA GPU; train without it on the CPU")
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.loss_scale = "dynamic"
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        if not osp.isfile(args.resume):
            raise InputError(args.resume, "checkpoint to resume from not found")
        cfg.resume, cfg.load_from = True, args.resume
    if args.time_budget:
        apply_time_budget(cfg, args.time_budget)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.seed is not None:
        cfg.randomness = dict(seed=args.seed)
    for split in ("train_dataloader", "val_dataloader"):
        dl = cfg.get(split)
        if dl and dl.get("dataset") and dl.dataset.get("ann_file"):
            ann = osp.join(dl.dataset.get("data_root", ""), dl.dataset.ann_file)
            if not osp.isfile(ann):
                raise InputError(ann, f"{split} annotation file not found (convert your data with "
                                      f"converters/mask2coco.py, or pass --data-root)")
    return cfg


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = build_train_config(args)
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    print(f"work dir: {osp.abspath(cfg.work_dir)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
