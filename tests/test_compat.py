"""One test per compatibility fix in nucleus_seg/compat.py, plus checkpoint save / load_from / resume."""
from __future__ import annotations

import collections
import os.path as osp
import pickle

import numpy as np
import pytest
import torch

import nucleus_seg.register  # noqa: F401
from tests.synthetic import make_disc_dataset, tiny_train_config

TINY = "configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py"


def _mmengine_style_checkpoint(path):
    """A checkpoint holding what mmengine's own checkpoints hold: numpy values and objects in meta."""
    from mmengine.logging import HistoryBuffer
    ckpt = dict(meta=dict(epoch=1, iter=7, seed=np.int64(3), dataset_meta=dict(classes=("nucleus",)),
                          message_hub=dict(log_scalars={"train/loss": HistoryBuffer([0.5, 0.4], [1, 1])})),
                state_dict=collections.OrderedDict(w=torch.ones(2)))
    torch.save(ckpt, path)
    return ckpt


def test_plain_torch_load_rejects_mmengine_checkpoints(tmp_path):
    # Documents *why* fix 1 exists: torch >= 2.6 loads weights_only=True by default.
    path = tmp_path / "ckpt.pth"
    _mmengine_style_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_mmengine_checkpoint_loader_reads_local_checkpoints(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / "ckpt.pth"
    _mmengine_style_checkpoint(path)
    ckpt = _load_checkpoint(str(path), map_location="cpu")
    assert ckpt["meta"]["iter"] == 7
    assert float(ckpt["meta"]["message_hub"]["log_scalars"]["train/loss"].current()) == 0.4
    assert torch.equal(ckpt["state_dict"]["w"], torch.ones(2))


def test_missing_local_checkpoint_is_still_file_not_found(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    with pytest.raises(FileNotFoundError):
        _load_checkpoint(str(tmp_path / "nope.pth"))


def test_mmengine_and_the_predictor_read_checkpoints_through_one_function(tmp_path, monkeypatch):
    from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
    from nucleus_seg import checkpoints
    assert CheckpointLoader._schemes[""] is checkpoints.load_checkpoint_file
    path = tmp_path / "ckpt.pth"
    _mmengine_style_checkpoint(path)
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: loads.append(kw) or real_load(*a, **kw))
    assert _load_checkpoint(str(path))["meta"]["iter"] == checkpoints.read_checkpoint(path)["meta"]["iter"]
    assert [kw["weights_only"] for kw in loads] == [True, True]  # the one place, restricted (compat fix 1)


def _runner(tmp_path, data_root, work_dir, max_iters, **overrides):
    from mmengine.runner import Runner
    cfg = tiny_train_config(data_root, work_dir)
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = 10_000
    cfg.default_hooks.checkpoint.interval = 1
    cfg.default_hooks.checkpoint.max_keep_ckpts = -1
    cfg.param_scheduler = [dict(type="ConstantLR", factor=1.0, by_epoch=False)]
    cfg.update(overrides)
    return Runner.from_cfg(cfg)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    data = make_disc_dataset(tmp / "data", n_images=2)
    runner = _runner(tmp, data, tmp / "run1", max_iters=2)
    runner.train()
    return tmp, data, runner


def test_training_saves_checkpoints_with_mmengine_state(trained):
    from nucleus_seg.checkpoints import load_checkpoint_file
    tmp, _, runner = trained
    ckpt_path = tmp / "run1" / "iter_2.pth"
    assert ckpt_path.is_file()
    ckpt = load_checkpoint_file(ckpt_path)  # a real run's file passes the restricted reader
    assert ckpt["meta"]["iter"] == 2
    assert {"optimizer", "param_schedulers", "message_hub"} <= ckpt.keys()
    assert (tmp / "run1" / "last_checkpoint").read_text().strip().endswith("iter_2.pth")


def test_load_from_restores_the_saved_weights(trained):
    from nucleus_seg.checkpoints import load_checkpoint_file
    tmp, data, _ = trained
    ckpt_path = tmp / "run1" / "iter_2.pth"
    runner = _runner(tmp, data, tmp / "run2", max_iters=2, load_from=str(ckpt_path))
    runner.load_or_resume()
    saved = load_checkpoint_file(ckpt_path)["state_dict"]
    current = runner.model.state_dict()
    assert saved.keys() == current.keys()
    for key, value in saved.items():
        assert torch.equal(value, current[key]), key


def test_resume_continues_from_the_saved_iteration(trained):
    from nucleus_seg.checkpoints import load_checkpoint_file
    tmp, data, _ = trained
    ckpt_path = tmp / "run1" / "iter_2.pth"
    runner = _runner(tmp, data, tmp / "run3", max_iters=3, load_from=str(ckpt_path), resume=True)
    runner.train()
    assert runner.iter == 3
    # Only one more iteration ran: the resumed run wrote iter_3 and no iter_1 / iter_2 of its own.
    assert sorted(p.name for p in (tmp / "run3").glob("iter_*.pth")) == ["iter_3.pth"]
    ckpt = load_checkpoint_file(tmp / "run3" / "iter_3.pth")
    assert ckpt["meta"]["iter"] == 3


def test_tools_print_nothing_but_the_one_line_error(tmp_path):
    # Fix 2: without the filter, mmengine's pkg_resources import adds 4 lines of warnings to stderr.
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "tools/test.py", TINY, str(tmp_path / "x.pth")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: "), res.stderr


def test_pycocotools_area_of_many_rles_is_chunked():
    # Fix 3: pycocotools 2.0.11 + numpy 2 overflows in mask.area() on > 255 RLEs at once.
    from pycocotools import mask as mask_utils
    from nucleus_seg.metrics.instance import _areas
    masks = np.zeros((4, 5, 300), np.uint8, order="F")
    masks[:2, :3] = 1  # 6 pixels in each of 300 masks
    rles = mask_utils.encode(masks)
    assert _areas(rles).tolist() == [6] * 300
