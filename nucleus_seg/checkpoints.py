"""Checkpoint files: the one reader every checkpoint read goes through, the checks with one-line
errors, and the upstream COCO checkpoints the nucleus configs fine-tune from.

:func:`load_checkpoint_file` is the only place a checkpoint is unpickled: mmengine's local-file
scheme (``load_from``, ``--resume``, ``init_cfg`` checkpoints; registered by :mod:`nucleus_seg.compat`),
the inference predictor and checkpoint ``meta`` reads (:func:`read_checkpoint`) all call it.

Checkpoints are pickles, and unpickling can call anything the file names. So the file is read with
torch's restricted unpickler (``weights_only=True``) plus exactly what mmengine and mmdet 2.x
checkpoints need beyond torch's own allow-list (:func:`checkpoint_globals`: numpy arrays, scalars
and dtypes under the numpy 1 and numpy 2 names, mmengine's ``HistoryBuffer``). The allow-list is
added only for the duration of each read (:func:`torch.serialization.safe_globals`), so the
package's trust decisions do not leak into other ``torch.load`` calls of the same process. A file
whose pickle calls anything else is refused with one line naming the call. A legacy file that needs
more loads only when the user names each extra global it calls (:func:`trusted_checkpoints`,
``--trust-pickle-global MODULE.NAME`` of the tools): the restricted reader stays on, with exactly those
added, so the file can call nothing the user did not name.

Nothing is downloaded at run time: the user fetches the file once by hand (README "Checkpoints")
and the config's ``load_from`` points at ``data/checkpoints/<file name>``.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import os.path as osp
import pickle
import re
import threading
import warnings

from .errors import InputError

_BASE = "https://download.openmmlab.com/mmdetection/v2.0/"
UPSTREAM_CHECKPOINTS = {
    name: _BASE + folder + name
    for folder, name in [
        ("mask_rcnn/mask_rcnn_r50_caffe_fpn_mstrain-poly_3x_coco/",
         "mask_rcnn_r50_caffe_fpn_mstrain-poly_3x_coco_bbox_mAP-0.408__segm_mAP-0.37_20200504_163245-42aa3d00.pth"),
        ("mask_rcnn/mask_rcnn_x101_32x8d_fpn_mstrain-poly_3x_coco/",
         "mask_rcnn_x101_32x8d_fpn_mstrain-poly_3x_coco_20210607_161042-8bd2c639.pth"),
        ("cascade_rcnn/cascade_mask_rcnn_r50_caffe_fpn_mstrain_3x_coco/",
         "cascade_mask_rcnn_r50_caffe_fpn_mstrain_3x_coco_20210707_002651-6e29b3a6.pth"),
        ("cascade_rcnn/cascade_mask_rcnn_x101_32x4d_fpn_mstrain_3x_coco/",
         "cascade_mask_rcnn_x101_32x4d_fpn_mstrain_3x_coco_20210706_225234-40773067.pth"),
        ("point_rend/point_rend_r50_caffe_fpn_mstrain_3x_coco/",
         "point_rend_r50_caffe_fpn_mstrain_3x_coco-e0ebb6b7.pth"),
        ("ms_rcnn/ms_rcnn_x101_32x4d_fpn_1x_coco/",
         "ms_rcnn_x101_32x4d_fpn_1x_coco_20200206-81fd1740.pth"),
    ]
}


def check_pretrained(load_from) -> None:
    """Raise a one-line InputError when the config's pretrained checkpoint is not on disk."""
    if not load_from or osp.isfile(load_from):
        return
    url = UPSTREAM_CHECKPOINTS.get(osp.basename(load_from))
    where = f"download it by hand from {url}" if url else "put the checkpoint there"
    raise InputError(load_from, f"pretrained checkpoint not found; {where} "
                                f"(README, 'Checkpoints'), or pass --no-pretrained to train from scratch")


CHECKPOINT_HINT = ("train one with tools/train.py (it writes work_dirs/<config>/*.pth) "
                   "or copy a trained .pth here")


def check_checkpoint(path) -> None:
    """Raise a one-line InputError when a checkpoint to test/infer with is missing."""
    if not osp.isfile(path):
        raise InputError(path, f"checkpoint not found; {CHECKPOINT_HINT}")


TRUST_FLAG = "--trust-pickle-global"
_trusted = contextvars.ContextVar("nucleus_seg_trusted_checkpoints", default=())
_allow_list_lock = threading.RLock()

# mmengine's HistoryBuffer pickles its statistics table, whose values are its own methods; under
# pickle protocol 2 a method is written as getattr(HistoryBuffer, 'mean'). Only these lookups pass.
HISTORY_BUFFER_STATISTICS = ("min", "max", "current", "mean")


def _history_buffer_statistic(owner, name):
    """Stands in for ``builtins.getattr`` while a checkpoint is read: HistoryBuffer's own
    statistics methods only, so a pickle cannot reach any other attribute of an allowed object."""
    from mmengine.logging import HistoryBuffer

    if owner is HistoryBuffer and name in HISTORY_BUFFER_STATISTICS:
        return getattr(owner, name)
    owner_name = f"{getattr(owner, '__module__', '?')}.{getattr(owner, '__qualname__', type(owner).__name__)}"
    raise pickle.UnpicklingError(f"refused call: builtins.getattr({owner_name}, {name!r})")


@functools.lru_cache(maxsize=1)
def checkpoint_globals() -> tuple:
    """What mmengine and mmdet 2.x checkpoints need beyond torch's own ``weights_only`` allow-list,
    as (object, name in the pickle) pairs; found by saving real ones (tests/test_checkpoint_safety.py).

    numpy arrays and scalars (HistoryBuffer logs, ``eta``, seeds) are rebuilt by
    ``numpy._core.multiarray`` functions, spelled ``numpy.core.multiarray`` in files written under
    numpy 1, so both names map to the installed functions. numpy 2 dtypes are instances of
    per-type classes (``numpy.dtypes.Float64DType``) whose state unpickling sets; only numeric and
    bool dtypes are allowed (no object arrays)."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray
    allowed = [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype"),
               (HistoryBuffer, "mmengine.logging.history_buffer.HistoryBuffer"),
               (_history_buffer_statistic, "builtins.getattr")]
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2 / numpy 1 files
        allowed += [(multiarray._reconstruct, f"{module}._reconstruct"),
                    (multiarray.scalar, f"{module}.scalar")]
    for code in np.typecodes["AllInteger"] + np.typecodes["AllFloat"] + "?":
        cls = type(np.dtype(code))
        if cls is not np.dtype:
            allowed.append((cls, f"{cls.__module__}.{cls.__qualname__}"))
    return tuple(dict.fromkeys(allowed))


@contextlib.contextmanager
def _checkpoint_globals_allowed(extra=()):
    """:func:`checkpoint_globals` (and ``extra`` (object, name) pairs) allowed for this block only.
    Entries the user had already allowed are left alone (safe_globals would remove them on exit); the
    lock keeps two threads' blocks from removing each other's entries."""
    import torch

    with _allow_list_lock:
        present = set(torch.serialization.get_safe_globals())
        wanted = [g for g in (*checkpoint_globals(), *extra) if g not in present]
        with torch.serialization.safe_globals(wanted):
            yield


def _import_global(filename, name: str):
    """(object, name) for a ``MODULE.NAME`` the user allowed: the longest importable module prefix,
    then attributes (nested qualnames)."""
    import importlib

    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj, name
    raise InputError(filename, f"{TRUST_FLAG} {name}: no such importable MODULE.NAME")


@contextlib.contextmanager
def trusted_checkpoints(names=()):
    """Within this block (in this thread / context), a checkpoint that the restricted reader refuses
    is read again by it with the globals ``names`` (``MODULE.NAME`` as the refusal spells them) also
    allowed: the file may call those, and nothing else. Only for files you trust
    (``--trust-pickle-global``); files that pass the restricted reader are read by it all the same."""
    if isinstance(names, str):
        names = (names,)
    token = _trusted.set(tuple(dict.fromkeys((*_trusted.get(), *names))))
    try:
        yield
    finally:
        _trusted.reset(token)


def add_trust_argument(parser) -> None:
    """The tools' ``--trust-pickle-global`` option (train, test, infer, infer_cohort)."""
    parser.add_argument(TRUST_FLAG, dest="trust_checkpoint", action="append", default=[],
                        metavar="MODULE.NAME",
                        help="also allow this global (as a refusal names it, e.g. argparse.Namespace) "
                             "when a checkpoint's pickle calls more than weights, numpy values and "
                             "mmengine's logs need (a legacy file); repeat for several. The file can "
                             "then call it, so name only what you trust")


class TrustedCheckpointWarning(UserWarning):
    """A checkpoint needed globals the user allowed beyond what checkpoints need."""


# torch's weights_only refusals: a global outside the allow-list (its message drops "builtins."),
# our getattr stand-in, or an object of a type it may not build.
_REFUSAL_PATTERNS = (re.compile(r"GLOBAL (\S+) (?:was not an allowed global|whose module)"),
                     re.compile(r"refused call: (\S+\(.*?\))"),
                     re.compile(r"but got <class '([^']+)'>"))


def _refused_call(message: str):
    """The call a weights_only refusal names, or None for other unpickling errors (a corrupt file)."""
    for pattern in _REFUSAL_PATTERNS:
        match = pattern.search(message)
        if match:
            name = match.group(1)
            return name if "." in name else f"builtins.{name}"
    return None


def load_checkpoint_file(filename, map_location=None, *, trust=None):
    """Unpickle the local checkpoint ``filename`` with the restricted reader (FileNotFoundError if it
    is not a file). A pickle that calls anything :func:`checkpoint_globals` and torch do not allow is
    refused with an :class:`InputError` naming the call, unless the globals named in ``trust``
    (``MODULE.NAME`` strings; default: those of :func:`trusted_checkpoints`) cover it: then it is read
    again, still restricted, with those allowed too, and a :class:`TrustedCheckpointWarning`."""
    import torch

    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    try:
        with _checkpoint_globals_allowed():
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        call = _refused_call(str(exc))
        if call is None:
            raise
    names = _trusted.get() if trust is None else ((trust,) if isinstance(trust, str) else tuple(trust))
    if names:
        extra = [_import_global(filename, name) for name in names]
        try:
            with _checkpoint_globals_allowed(extra):
                ckpt = torch.load(filename, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            call = _refused_call(str(exc))
            if call is None:
                raise
        else:
            warnings.warn(TrustedCheckpointWarning(f"{filename}: its pickle calls {call}, allowed by "
                                                   f"{TRUST_FLAG} {' '.join(names)}"), stacklevel=2)
            return ckpt
    raise InputError(filename, f"refused to load: its pickle calls {call}, which a checkpoint does not "
                               f"need (checkpoints are pickles; pass {TRUST_FLAG} {call.split('(')[0]} "
                               f"only if you trust this file)")


def read_checkpoint(path, map_location="cpu", *, trust=None) -> dict:
    """A checkpoint as a dict, with one-line InputErrors for a missing, unreadable, refused (see
    :func:`load_checkpoint_file`, ``trust``) or non-model file."""
    check_checkpoint(path)
    try:
        ckpt = load_checkpoint_file(path, map_location, trust=trust)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict):
        raise InputError(path, "not a model checkpoint (expected a dict with 'state_dict')")
    return ckpt


def write_checkpoint_meta(path, key: str, value) -> None:
    """Set ``meta[key]`` of the checkpoint ``path`` and rewrite the file atomically (weights and
    everything else unchanged). The file is read through :func:`read_checkpoint`, like every read."""
    import torch

    from .fileio import atomic_output_path

    ckpt = read_checkpoint(path)
    meta = ckpt.get("meta")
    ckpt["meta"] = {**(meta if isinstance(meta, dict) else {}), key: value}
    with atomic_output_path(path, overwrite=True) as tmp:
        torch.save(ckpt, tmp)
