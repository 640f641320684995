"""Training for a wall-time budget: stop within one iteration, save, anneal the LR over the budget.

- :class:`TrainTimeBudgetHook` stops training after the iteration during which ``max_seconds`` ran
  out, in iteration- and epoch-based loops alike, and saves that checkpoint as ``iter_<n>.pth``,
  recorded in the work dir's ``last_checkpoint`` (where ``CheckpointHook`` records its own), so
  ``--resume`` and the test tool find it.
- :class:`InterruptibleEpochBasedTrainLoop`: mmengine's ``EpochBasedTrainLoop`` checks
  ``stop_training`` only between epochs (a budget on a 24-epoch schedule would overrun by up to one
  epoch); this one also checks it after every iteration.
- :class:`TimeBudgetCosineLR`: cosine annealing over ``T_max`` iterations or over the time budget,
  whichever ends first, so a run cut short by its budget still ends at the low learning rate.
- :func:`apply_time_budget`: what ``tools/train.py --time-budget`` does to a config.
"""
from __future__ import annotations

import math
import os.path as osp
import time
from typing import Callable, Optional

from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mmengine.runner import EpochBasedTrainLoop
from mmdet.registry import HOOKS, LOOPS, PARAM_SCHEDULERS

from .fileio import atomic_write_text

# Runtime-info key (mmengine MessageHub) with the fraction of this run's budget used so far.
BUDGET_FRACTION_KEY = "time_budget_fraction"


@HOOKS.register_module()
class TrainTimeBudgetHook(Hook):
    """Stop training once ``max_seconds`` of wall time have passed, and save that checkpoint.

    The schedule's ``max_iters`` / ``max_epochs`` is an upper bound and the budget decides. The
    stop takes effect after the current iteration; epoch-based training needs
    :class:`InterruptibleEpochBasedTrainLoop` for that (a plain ``EpochBasedTrainLoop`` is refused
    rather than overrun). ``clock`` (seconds, monotonic) is injectable for tests.
    """

    priority = "VERY_LOW"  # after the optimizer and LR-scheduler steps: the checkpoint holds both

    def __init__(self, max_seconds: float, clock: Optional[Callable[[], float]] = None):
        assert max_seconds > 0
        self.max_seconds = float(max_seconds)
        self.clock = clock or time.monotonic
        self._start = None

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop) and not isinstance(
                loop, InterruptibleEpochBasedTrainLoop):
            raise TypeError("TrainTimeBudgetHook: EpochBasedTrainLoop stops only between epochs; "
                            "use train_cfg type='InterruptibleEpochBasedTrainLoop' "
                            "(tools/train.py --time-budget sets it)")
        self._start = self.clock()

    def _fraction_used(self) -> float:
        return (self.clock() - self._start) / self.max_seconds

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        # Not resumed from checkpoints: a resumed run has its own budget.
        runner.message_hub.update_info(BUDGET_FRACTION_KEY, self._fraction_used(), resumed=False)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self._fraction_used() < 1.0 or runner.train_loop.stop_training:
            return
        runner.train_loop.stop_training = True
        n = runner.iter + 1  # runner.iter is incremented after this hook
        filename = f"iter_{n}.pth"
        runner.logger.info(f"time budget of {self.max_seconds:.0f}s reached after {n} iterations; "
                           f"saving {filename}")
        # by_epoch=False: meta records iteration n and the completed epochs, so a resumed
        # epoch-based run repeats the interrupted epoch rather than skipping its rest.
        runner.save_checkpoint(runner.work_dir, filename, save_optimizer=True,
                               save_param_scheduler=True, by_epoch=False)
        atomic_write_text(osp.join(runner.work_dir, "last_checkpoint"),
                          osp.join(runner.work_dir, filename), overwrite=True)


@LOOPS.register_module()
class InterruptibleEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that honours ``stop_training`` after every iteration.

    An interrupted epoch is not complete: it gets no ``after_train_epoch`` (so no epoch
    checkpoint, no epoch-wise LR step) and the epoch counter stays. After a stop nothing more runs
    (no validation either). Without a stop it runs exactly as the upstream loop.
    """

    def run(self):
        self.runner.call_hook("before_train")
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch()
            if self.stop_training:
                break
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._epoch >= self.val_begin
                    and (self._epoch % self.val_interval == 0 or self._epoch == self._max_epochs)):
                self.runner.val_loop.run()
        self.runner.call_hook("after_train")
        return self.runner.model

    def run_epoch(self) -> None:
        self.runner.call_hook("before_train_epoch")
        self.runner.model.train()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
            if self.stop_training and idx + 1 < len(self.dataloader):
                return
        self.runner.call_hook("after_train_epoch")
        self._epoch += 1


def _cosine(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@PARAM_SCHEDULERS.register_module()
class TimeBudgetCosineLR(LRSchedulerMixin, _ParamScheduler):
    """Cosine annealing to ``eta_min`` over ``T_max`` steps or the time budget, whichever ends first.

    Progress is the larger of ``steps / T_max`` and the time progress. Time progress comes from
    :class:`TrainTimeBudgetHook` (fraction ``f`` of this run's budget used) and spreads what is left
    of the curve over what is left of the budget: ``1 - p = (1 - p0)(1 - f)``, where ``p0`` is the
    progress this run started from (0, or where a resumed run had got to). Without a budget hook it
    is a plain cosine over ``T_max``. Chainable like mmengine's ``CosineAnnealingLR`` (each step
    rescales the current value), so a warm-up scheduler can run alongside it.
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, begin: int = 0, end: int = INF,
                 last_step: int = -1, by_epoch: bool = False, verbose: bool = False):
        assert T_max > 0
        self.T_max = T_max
        self.eta_min = eta_min
        self.progress = 0.0  # saved in checkpoints: a resumed run continues the curve
        self._fraction_seen = None  # last budget fraction of *this* run (not saved)
        super().__init__(optimizer, begin=begin, end=end, last_step=last_step, by_epoch=by_epoch,
                         verbose=verbose)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.pop("_fraction_seen", None)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._fraction_seen = None

    def _next_progress(self) -> float:
        progress = max(self.progress, min(1.0, self.last_step / self.T_max))
        fraction = MessageHub.get_current_instance().get_info(BUDGET_FRACTION_KEY)
        if fraction is not None:
            fraction = min(max(float(fraction), 0.0), 1.0)
            before = 0.0 if self._fraction_seen is None else self._fraction_seen
            remaining = 0.0 if before >= 1.0 else (1.0 - self.progress) * (1.0 - fraction) / (1.0 - before)
            progress = max(progress, 1.0 - remaining)
            self._fraction_seen = fraction
        return progress

    def _get_value(self) -> list:
        groups = self.optimizer.param_groups
        if self.last_step == 0:
            return [group[self.param_name] for group in groups]
        old, self.progress = self.progress, self._next_progress()
        if _cosine(old) <= 0.0:
            return [self.eta_min for _ in groups]
        ratio = _cosine(self.progress) / _cosine(old)
        return [self.eta_min + (group[self.param_name] - self.eta_min) * ratio for group in groups]


def apply_time_budget(cfg, seconds: float) -> None:
    """Make ``cfg`` train for at most ``seconds``: the budget hook, and an epoch loop it can stop."""
    cfg.custom_hooks = list(cfg.get("custom_hooks", [])) + [
        dict(type="TrainTimeBudgetHook", max_seconds=seconds)]
    if cfg.train_cfg.get("type") == "EpochBasedTrainLoop":
        cfg.train_cfg.type = "InterruptibleEpochBasedTrainLoop"
