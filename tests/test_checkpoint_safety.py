"""Checkpoints are read with torch's restricted unpickler plus exactly what mmengine and mmdet 2.x
checkpoints need: a checkpoint whose pickle calls anything else is refused with one line naming the
call, by the package's reader and by tools/train.py (load_from, --resume), tools/test.py and
tools/infer.py, and the code it hides never runs; ``--trust-pickle-global NAME`` loads a legacy file
whose extra global the user names, and nothing else.

The mmengine files written by a real training run load in tests/test_compat.py (load_from, resume)
and the mmdet 2.x replica in tests/test_pretrained.py; numpy 1 spellings are tested here.
"""
from __future__ import annotations

import argparse
import builtins
import collections
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import nucleus_seg.register  # noqa: F401  (the mmengine scheme goes through the package's reader)
from nucleus_seg.checkpoints import (TrustedCheckpointWarning, checkpoint_globals, load_checkpoint_file,
                                     read_checkpoint, trusted_checkpoints)
from nucleus_seg.errors import InputError
from tests.checkpoint_files import (NUMPY1_PICKLE, PickledCall, crafted_checkpoint, pickle_globals,
                                    write_marker)
from tests.synthetic import make_disc_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py"
def refusal(path, call):
    return (f"{path}: refused to load: its pickle calls {call}, which a checkpoint does not need "
            f"(checkpoints are pickles; pass --trust-pickle-global {call.split('(')[0]} only if you trust "
            f"this file)")


@pytest.fixture(scope="module")
def tiny_state():
    """The tiny config's weights (random init), so the crafted files are otherwise loadable."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from nucleus_seg.config_utils import load_config
    register_all_modules()
    torch.manual_seed(0)
    return collections.OrderedDict(MODELS.build(load_config(TINY).model).state_dict())


def _calls(marker):
    return {"posix.system" if os.name == "posix" else "nt.system": PickledCall(os.system, f"touch {marker}"),
            "builtins.exec": PickledCall(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
            "tests.checkpoint_files.write_marker": PickledCall(write_marker, str(marker)),
            "builtins.getattr(numpy.ndarray, 'tofile')": PickledCall(getattr, np.ndarray, "tofile")}


def test_the_reader_refuses_every_call_a_checkpoint_does_not_need(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    marker = tmp_path / "marker"
    state = collections.OrderedDict(w=torch.ones(2))
    for k, (call, payload) in enumerate(_calls(marker).items()):
        path = tmp_path / f"crafted{k}.pth"
        crafted_checkpoint(path, payload, state)
        for read in (load_checkpoint_file, read_checkpoint, _load_checkpoint):  # the last: mmengine's
            with pytest.raises(InputError) as err:
                read(str(path))
            assert str(err.value) == refusal(path, call)
        assert not marker.exists(), call


def test_the_allow_list_lasts_one_read_and_leaves_the_users_own_alone(tmp_path):
    path = tmp_path / "np.pth"
    torch.save(dict(meta=dict(seed=np.int64(3)), state_dict=dict(w=torch.ones(1))), path)
    before = set(torch.serialization.get_safe_globals())
    assert load_checkpoint_file(path)["meta"]["seed"] == 3
    assert set(torch.serialization.get_safe_globals()) == before
    with pytest.raises(Exception, match="numpy"):  # outside the reader, torch's default stays strict
        torch.load(path, weights_only=True)
    mine = [np.dtype]  # a user's own decision survives a read that needs the same entry
    with torch.serialization.safe_globals(mine):
        load_checkpoint_file(path)
        assert np.dtype in torch.serialization.get_safe_globals()


def test_numpy1_spelled_mmengine_state_loads(tmp_path):
    """Files written under numpy 1 name numpy.core.multiarray (numpy 2: numpy._core.multiarray)."""
    from mmengine.logging import HistoryBuffer
    hub = dict(log_scalars=collections.OrderedDict(loss=HistoryBuffer([0.5, 0.25], [1, 1])),
               runtime_info=dict(eta=np.float64(3.5), iter=7))
    ckpt = dict(meta=dict(seed=np.int64(5), iter=7), state_dict=collections.OrderedDict(w=torch.ones(2)),
                message_hub=hub, optimizer=dict(state={}, param_groups=[dict(lr=0.01, params=[0])]))
    path = tmp_path / "numpy1.pth"
    torch.save(ckpt, path, pickle_module=NUMPY1_PICKLE)
    names = pickle_globals(path)
    assert {"numpy.core.multiarray._reconstruct", "numpy.core.multiarray.scalar"} <= names
    assert not any(n.startswith("numpy._core") for n in names)
    loaded = load_checkpoint_file(path)
    assert loaded["meta"]["seed"] == 5 and loaded["message_hub"]["runtime_info"]["eta"] == 3.5
    assert loaded["message_hub"]["log_scalars"]["loss"].mean() == pytest.approx(0.375)


def test_allow_list_is_what_checkpoints_need_and_no_more():
    names = {name for _, name in checkpoint_globals()}
    assert {"numpy.ndarray", "numpy.dtype", "mmengine.logging.history_buffer.HistoryBuffer",
            "numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct",
            "numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar", "builtins.getattr"} <= names
    others = names - {"numpy.ndarray", "numpy.dtype", "mmengine.logging.history_buffer.HistoryBuffer",
                      "builtins.getattr"}
    assert all(n.startswith(("numpy._core.multiarray.", "numpy.core.multiarray.", "numpy.dtypes."))
               for n in others), others
    assert "numpy.dtypes.ObjectDType" not in names  # no object arrays


def test_trust_loads_a_legacy_file_and_only_when_asked(tmp_path):
    path = tmp_path / "legacy.pth"  # research code often pickled its argparse namespace
    torch.save(dict(state_dict=dict(w=torch.ones(1)), meta=dict(args=argparse.Namespace(lr=0.1))), path)
    with pytest.raises(InputError, match="its pickle calls argparse.Namespace"):
        load_checkpoint_file(path)
    with pytest.warns(TrustedCheckpointWarning, match="legacy.pth: its pickle calls argparse.Namespace, "
                                                      "allowed by --trust-pickle-global argparse.Namespace"):
        assert read_checkpoint(path, trust=["argparse.Namespace"])["meta"]["args"].lr == 0.1
    with trusted_checkpoints("argparse.Namespace"), pytest.warns(TrustedCheckpointWarning):
        assert load_checkpoint_file(path)["meta"]["args"].lr == 0.1
    with pytest.raises(InputError):  # the trust ended with the block
        load_checkpoint_file(path)
    with trusted_checkpoints("collections.OrderedDict"), pytest.raises(  # trusting another name: still refused
            InputError, match="its pickle calls argparse.Namespace"):
        load_checkpoint_file(path)
    with pytest.raises(InputError, match="--trust-pickle-global no.such_thing: no such importable"):
        load_checkpoint_file(path, trust=["no.such_thing"])
    plain = tmp_path / "plain.pth"
    torch.save(dict(state_dict=dict(w=torch.ones(1))), plain)
    with trusted_checkpoints("argparse.Namespace"), warnings.catch_warnings():
        warnings.simplefilter("error")  # a file the restricted reader takes is read by it, silently
        load_checkpoint_file(plain)


# --- the tools ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tool_runs(tmp_path_factory, tiny_state):
    """Each tool given a crafted checkpoint (run side by side: they spend their time importing)."""
    tmp = tmp_path_factory.mktemp("tools")
    data = make_disc_dataset(tmp / "data", n_images=1)
    marker = tmp / "marker"
    system = PickledCall(os.system, f"touch {marker}")
    run_code = PickledCall(builtins.exec, f"open({str(marker)!r}, 'w').close()")
    crafted = {"system": tmp / "system.pth", "exec": tmp / "exec.pth"}
    crafted_checkpoint(crafted["system"], system, tiny_state)
    crafted_checkpoint(crafted["exec"], run_code, tiny_state)
    legacy = tmp / "legacy.pth"
    torch.save(dict(meta=dict(args=argparse.Namespace(lr=0.1)), state_dict=tiny_state), legacy)
    no_val = ["--no-validate", "--data-root", str(data), "--cfg-options", "train_cfg.max_iters=1",
              "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False"]
    commands = {
        "train load_from": ["tools/train.py", TINY, "--work-dir", str(tmp / "w1"), *no_val,
                            f"load_from={crafted['system']}"],
        "train --resume": ["tools/train.py", TINY, "--work-dir", str(tmp / "w2"),
                           "--resume", str(crafted["exec"]), *no_val],
        "test": ["tools/test.py", TINY, str(crafted["system"]), "--data-root", str(data),
                 "--work-dir", str(tmp / "w3")],
        "infer": ["tools/infer.py", TINY, str(crafted["exec"]), str(data / "train"), "--out", str(tmp / "o1")],
        "infer --trust-pickle-global": ["tools/infer.py", TINY, str(legacy), str(data / "train"), "--out",
                                        str(tmp / "o2"), "--trust-pickle-global", "argparse.Namespace",
                                        "--no-progress"],
    }
    procs = {name: subprocess.Popen([sys.executable, *cmd], cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for name, cmd in commands.items()}
    results = {name: (p.wait(timeout=600), *p.communicate()) for name, p in procs.items()}
    return dict(results=results, marker=marker, crafted=crafted, out=tmp / "o2")


@pytest.mark.parametrize("tool, crafted, call", [
    ("train load_from", "system", "posix.system"), ("train --resume", "exec", "builtins.exec"),
    ("test", "system", "posix.system"), ("infer", "exec", "builtins.exec")])
def test_tools_refuse_a_crafted_checkpoint_in_one_line(tool_runs, tool, crafted, call):
    if os.name != "posix":
        call = call.replace("posix", "nt")
    code, _, stderr = tool_runs["results"][tool]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert code == 2, stderr[-3000:]
    assert errors == [f"error: {refusal(tool_runs['crafted'][crafted], call)}"], stderr[-3000:]
    assert stderr.rstrip().endswith(errors[0])
    assert not tool_runs["marker"].exists()


def test_infer_loads_a_legacy_checkpoint_with_trust(tool_runs):
    code, stdout, stderr = tool_runs["results"]["infer --trust-pickle-global"]
    assert code == 0, stderr[-3000:]
    assert "TrustedCheckpointWarning" in stderr and "its pickle calls argparse.Namespace" in stderr
    assert (tool_runs["out"] / "img000" / "nuclei.geojson").is_file()  # streaming layout: one folder per input
