"""Training hooks registered into mmdet's HOOKS."""
from __future__ import annotations

import os.path as osp
import time

from mmengine.hooks import Hook
from mmdet.registry import HOOKS


@HOOKS.register_module()
class TrainTimeBudgetHook(Hook):
    """Stop training once ``max_seconds`` of wall time have passed, and save that checkpoint.

    For bounded runs (the CPU demo, smoke tests): the schedule's ``max_iters`` is an upper bound and
    the budget decides. The checkpoint is written as ``iter_<n>.pth`` and recorded in the work dir's
    ``last_checkpoint`` file, exactly where ``CheckpointHook`` puts its own, so ``--resume`` and the
    test tool find it.
    """

    priority = "VERY_LOW"  # after the optimizer step and the logger

    def __init__(self, max_seconds: float):
        assert max_seconds > 0
        self.max_seconds = float(max_seconds)
        self._start = None

    def before_train(self, runner) -> None:
        self._start = time.monotonic()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if time.monotonic() - self._start < self.max_seconds:
            return
        if runner.train_loop.stop_training:
            return
        runner.train_loop.stop_training = True
        n = runner.iter + 1  # runner.iter is incremented after this hook
        filename = f"iter_{n}.pth"
        runner.logger.info(f"time budget of {self.max_seconds:.0f}s reached after {n} iterations; "
                           f"saving {filename}")
        runner.save_checkpoint(runner.work_dir, filename, save_optimizer=True, save_param_scheduler=True)
        with open(osp.join(runner.work_dir, "last_checkpoint"), "w") as f:
            f.write(osp.join(runner.work_dir, filename))
