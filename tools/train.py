#!/usr/bin/env python
"""Train a nucleus model: ``python tools/train.py CONFIG [options]``.

CPU or one GPU as is; several GPUs with ``bash tools/dist_train.sh CONFIG NGPUS`` (torchrun).
Outputs go to ``work_dirs/<config name>/`` unless ``--work-dir`` says otherwise. The work is done by
:mod:`nucleus_seg.runner`.
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
    add_trust_argument(p)
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    with trusted_checkpoints(args.trust_checkpoint):  # load_from / --resume are read inside train()
        return run(args)


def run(args) -> int:
    from nucleus_seg.runner import build_train_config, train

    cfg = build_train_config(args.config, work_dir=args.work_dir, data_root=args.data_root,
                             resume=args.resume, amp=args.amp, no_pretrained=args.no_pretrained,
                             time_budget=args.time_budget, no_validate=args.no_validate,
                             seed=args.seed, cfg_options=args.cfg_options, launcher=args.launcher)
    print(f"work dir: {train(cfg)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
