"""Checkpoint files for the loader tests: replicas of what mmdet 2.x (mmcv 1.x) wrote, files spelled
the way numpy 1 pickled numpy's functions, and crafted checkpoints whose pickle calls something.

The real mmdet 2.x zoo files cannot be downloaded here, so :func:`mmdet2_meta` rebuilds their
``meta`` from how mmcv 1.x ``save_checkpoint`` (mmcv_version, time, CLASSES), mmdet 2.x
``train_detector`` (env_info, config text, seed, exp_name, mmdet_version) and the runner's hooks
(epoch, iter, hook_msgs) filled it, and :func:`save_mmdet2_style` writes it the way mmdet's
``publish_model.py`` did: the legacy (non-zip) format, here with numpy 1's spelling.
"""
from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

NUMPY2_MODULE, NUMPY1_MODULE = "numpy._core.", "numpy.core."


def respell_numpy1(data: bytes) -> bytes:
    """A protocol-2 pickle with every ``numpy._core.*`` global renamed ``numpy.core.*``, as numpy 1
    wrote them. GLOBAL opcodes are the only place names appear (newline-terminated text)."""
    out, last = [], 0
    for op, arg, pos in pickletools.genops(data):
        if op.name == "GLOBAL" and arg.startswith(NUMPY2_MODULE):
            module, name = arg.split(" ")
            end = pos + 1 + len(module) + 1 + len(name) + 1
            out += [data[last:pos], b"c", (NUMPY1_MODULE + module[len(NUMPY2_MODULE):]).encode(), b"\n",
                    name.encode(), b"\n"]
            last = end
    out.append(data[last:])
    return b"".join(out)


class _Numpy1Pickler(pickle.Pickler):
    """torch.save's pickler, writing numpy 1 names (see :func:`respell_numpy1`)."""

    def __init__(self, file, protocol=None):
        self._target, self._buffer = file, io.BytesIO()
        super().__init__(self._buffer, protocol)

    def dump(self, obj):
        super().dump(obj)
        self._target.write(respell_numpy1(self._buffer.getvalue()))


NUMPY1_PICKLE = SimpleNamespace(__name__="numpy1_pickle", Pickler=_Numpy1Pickler, dump=pickle.dump)  # torch.save(pickle_module=)


def pickle_globals(path) -> set:
    """The ``module.name`` globals a checkpoint's pickle names (read, never run)."""
    path = Path(path)
    import zipfile
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            data = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
        return {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}
    found, stream = set(), io.BytesIO(path.read_bytes())
    for _ in range(4):  # legacy format: magic number, protocol, sys info, then the object
        found |= {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(stream) if op.name == "GLOBAL"}
    return found


def mmdet2_meta(classes, config_text: str) -> dict:
    """``meta`` as an mmdet 2.x training run saved it (values shaped like the zoo's)."""
    return dict(
        env_info="sys.platform: linux\nPython: 3.7.7\nCUDA available: True\nPyTorch: 1.5.0\n"
                 "TorchVision: 0.6.0a0+82fd1c8\nOpenCV: 4.2.0\nMMCV: 0.5.1\nMMDetection: 2.0.0+42aa3d0",
        config=config_text, seed=np.int64(1405846721), exp_name="mask_rcnn_r50_caffe_fpn_mstrain-poly_3x_coco.py",
        mmdet_version="2.0.0+42aa3d0", CLASSES=tuple(classes),
        hook_msgs=dict(last_ckpt="./work_dirs/mask_rcnn_r50_caffe_fpn_mstrain-poly_3x_coco/epoch_36.pth",
                       best_score=np.float64(0.408), best_ckpt="epoch_36.pth"),
        epoch=36, iter=263988, mmcv_version="0.5.1", time="Mon May  4 16:32:45 2020")


def save_mmdet2_style(path, state_dict, meta) -> None:
    """A published mmdet 2.x checkpoint: meta + state_dict, legacy format, numpy 1 spelling."""
    torch.save(dict(meta=meta, state_dict=state_dict), path, pickle_module=NUMPY1_PICKLE,
               _use_new_zipfile_serialization=False)


class PickledCall:
    """Pickles as the call ``func(*args)``: what a crafted checkpoint runs when unpickled in full."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def write_marker(path) -> None:
    """Harmless, but nothing a checkpoint needs: the loader must refuse to call it."""
    Path(path).write_text("the checkpoint's pickle ran code\n")


def crafted_checkpoint(path, call: PickledCall, state_dict) -> None:
    """A checkpoint that loads into the model, with ``call`` hidden in its meta."""
    torch.save(dict(meta=dict(epoch=1, iter=1, note=call), state_dict=state_dict), path)
