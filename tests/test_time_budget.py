"""--time-budget stops within one iteration in iteration- and epoch-based loops, saves a checkpoint
--resume continues from, and the demo's cosine anneals over the budget. No wall clock: the budget
hook's clock is a counter that a test hook advances by 10 s per iteration."""
from __future__ import annotations

import math
import os.path as osp

import pytest
import torch

import nucleus_seg.register  # noqa: F401
from mmengine.hooks import Hook
from mmengine.logging import MessageHub

from nucleus_seg.time_budget import (BUDGET_FRACTION_KEY, TimeBudgetCosineLR, TrainTimeBudgetHook,
                                     apply_time_budget)
from tests.synthetic import make_disc_dataset, tiny_train_config

SECONDS_PER_ITER = 10.0
BUDGET = 25.0  # runs out during the third iteration (t = 30 s at its end)
IMAGES = 8  # one epoch = 8 iterations of batch 1


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Tick(Hook):
    """Advances the fake clock at the end of every iteration, before the budget hook looks."""
    priority = "NORMAL"

    def __init__(self, clock):
        self.clock = clock

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.clock.now += SECONDS_PER_ITER


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_disc_dataset(tmp_path_factory.mktemp("budget"), n_images=IMAGES, n_nuclei=4)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Steps on 96 x 128 px images gain nothing from more threads, and on a busy machine extra
    threads spin against the neighbours' (4x slower here under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def plain_config_text(monkeypatch):
    """mmengine's Runner logs and dumps its config through yapf (~4 s per runner here); the config
    text is not under test."""
    from mmengine.config import Config
    monkeypatch.setattr(Config, "pretty_text", property(lambda cfg: cfg.text))


def _budget_runner(data, work_dir, epoch_based: bool, budget=BUDGET, resume_from=None):
    from mmengine.runner import Runner
    cfg = tiny_train_config(data, work_dir)
    # The loop and the hook are under test, not the model: few proposals and RoIs keep steps cheap.
    cfg.model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    cfg.model.train_cfg.rcnn.sampler.num = 64
    if epoch_based:
        cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=3, val_interval=1)
        cfg.train_dataloader.sampler = dict(type="DefaultSampler", shuffle=True)
        cfg.train_dataloader.batch_size = 1
        cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=1, by_epoch=True)
        cfg.log_processor = dict(by_epoch=True)
    else:
        cfg.train_cfg.max_iters = 100
        cfg.default_hooks.checkpoint.interval = 1000  # the budget hook writes the only checkpoint
    apply_time_budget(cfg, budget)
    cfg.custom_hooks = []  # the hook is registered below with the fake clock
    if resume_from:
        cfg.resume, cfg.load_from = True, str(resume_from)
    runner = Runner.from_cfg(cfg)
    clock = FakeClock()
    runner.register_hook(Tick(clock))
    runner.register_hook(TrainTimeBudgetHook(budget, clock=clock))
    return runner


def _last_checkpoint(work_dir):
    return open(osp.join(work_dir, "last_checkpoint")).read().strip()


@pytest.mark.parametrize("epoch_based", [False, True], ids=["iter-loop", "epoch-loop"])
def test_budget_stops_after_the_iteration_it_ran_out_in_and_resume_continues(data, tmp_path,
                                                                              epoch_based):
    runner = _budget_runner(data, tmp_path / "run", epoch_based)
    if epoch_based:
        assert type(runner.train_loop).__name__ == "InterruptibleEpochBasedTrainLoop"
        assert len(runner.train_loop.dataloader) == IMAGES
    runner.train()
    assert runner.iter == 3 and runner.epoch == 0  # 3 of 8 (epoch) or 100 (iter) iterations
    saved = sorted(p.name for p in (tmp_path / "run").glob("*.pth"))
    assert saved == ["iter_3.pth"]  # no epoch_1.pth for the interrupted epoch
    assert _last_checkpoint(tmp_path / "run") == str(tmp_path / "run" / "iter_3.pth")
    assert MessageHub.get_current_instance().get_info(BUDGET_FRACTION_KEY) == pytest.approx(0.8)

    # --resume (what tools/train.py does with `last_checkpoint`): iteration 3 onwards, new budget.
    resumed = _budget_runner(data, tmp_path / "run", epoch_based, budget=15.0,
                             resume_from=_last_checkpoint(tmp_path / "run"))
    resumed.train()
    assert resumed.iter == 5 and resumed.epoch == 0
    assert _last_checkpoint(tmp_path / "run") == str(tmp_path / "run" / "iter_5.pth")


def test_plain_epoch_loop_is_refused_rather_than_overrun(data, tmp_path):
    from mmengine.runner import Runner
    cfg = tiny_train_config(data, tmp_path)
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=1)
    cfg.train_dataloader.sampler = dict(type="DefaultSampler", shuffle=True)
    cfg.custom_hooks = [dict(type="TrainTimeBudgetHook", max_seconds=5)]
    runner = Runner.from_cfg(cfg)
    with pytest.raises(TypeError, match="InterruptibleEpochBasedTrainLoop"):
        runner.train()


def test_train_time_budget_makes_epoch_schedules_interruptible(data, tmp_path):
    # What tools/train.py --time-budget builds (runner.build_train_config -> apply_time_budget).
    from nucleus_seg.runner import build_train_config
    for path, loop in (("configs/nucleus/mask-rcnn_r50-caffe_fpn_ms-poly-3x_nucleus.py",
                        "InterruptibleEpochBasedTrainLoop"),
                       ("configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py", "IterBasedTrainLoop")):
        cfg = build_train_config(path, work_dir=str(tmp_path), data_root=str(data), no_pretrained=True,
                                 time_budget=60)
        assert cfg.train_cfg.type == loop
        assert cfg.custom_hooks[-1] == dict(type="TrainTimeBudgetHook", max_seconds=60)


# ------------------------------------------------------------------------- TimeBudgetCosineLR
def _lr_curve(fractions, t_max=100, eta_min=0.0, state=None):
    """LR after each step with the budget fraction set before it (None: no budget hook)."""
    hub = MessageHub.get_instance("test_time_budget_lr")
    hub.runtime_info.pop(BUDGET_FRACTION_KEY, None)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = TimeBudgetCosineLR(opt, T_max=t_max, eta_min=eta_min)
    if state is not None:
        opt.param_groups[0]["lr"] = state["lr"]
        sched.load_state_dict(state["sched"])
    lrs = []
    for f in fractions:
        if f is not None:
            hub.update_info(BUDGET_FRACTION_KEY, f)
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs, dict(lr=opt.param_groups[0]["lr"], sched=sched.state_dict())


def test_without_a_budget_it_is_mmengines_cosine():
    from mmengine.optim.scheduler import CosineAnnealingLR
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    ref = CosineAnnealingLR(opt, T_max=100, eta_min=0.01)
    expected = []
    for _ in range(100):
        opt.step()
        ref.step()
        expected.append(opt.param_groups[0]["lr"])
    got, _ = _lr_curve([None] * 100, eta_min=0.01)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_budget_shorter_than_t_max_anneals_over_the_budget():
    # 10 steps use the whole budget while T_max is 100 steps: time decides.
    lrs, _ = _lr_curve([k / 10 for k in range(1, 11)], t_max=100)
    assert lrs == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 10)) for k in range(1, 11)],
                                abs=1e-9)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_resumed_run_spreads_the_rest_of_the_curve_over_its_own_budget():
    first, state = _lr_curve([0.1, 0.2, 0.3, 0.4, 0.5], t_max=1000)  # stopped at progress 0.5
    assert first[-1] == pytest.approx(0.5)
    # The resumed run has a budget of its own: progress 0.5 + 0.5 f.
    second, _ = _lr_curve([0.0, 0.5, 1.0], t_max=1000, state=state)
    assert second == pytest.approx([0.5 * (1 + math.cos(math.pi * p)) for p in (0.5, 0.75, 1.0)],
                                   abs=1e-9)
