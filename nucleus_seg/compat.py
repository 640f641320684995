"""Compatibility fixes for mmdet 3.3 / mmengine 0.10.7 / mmcv 2.1 on today's torch, numpy and Python.

Importing this module applies every fix once (idempotent). It is imported by ``nucleus_seg/__init__.py``'s
consumers: the configs' ``custom_imports``, ``tools/*.py`` and the tests, so a plain
``python tools/train.py`` and a config run by someone else's mmengine entry point behave alike.
Nothing in site-packages is edited; each fix is applied at the narrowest public hook that mmengine
offers, and each has a test in ``tests/test_compat.py``.

Fixes
-----
1. ``torch.load`` defaults to ``weights_only=True`` since torch 2.6. mmengine's checkpoints (and the
   mmdet 2.x checkpoints of the model zoo) pickle numpy arrays/scalars/dtypes and ``HistoryBuffer``
   objects in ``meta``/``message_hub``, so ``load_from`` and ``--resume`` fail with
   ``UnpicklingError``. mmengine resolves every local path through ``CheckpointLoader``'s scheme table;
   we re-register the local-file scheme (prefix ``''``) with the package's one checkpoint reader,
   :func:`nucleus_seg.checkpoints.load_checkpoint_file`, which stays on torch's restricted unpickler
   and allows exactly those types for the duration of each read; a pickle that calls anything else
   is refused with one line naming the call (``--trust-pickle-global MODULE.NAME`` allows a named extra global for legacy files).
   Remote schemes are untouched (nothing here downloads; torch's default restricted load applies).
2. mmengine 0.10.7 imports ``pkg_resources``, which setuptools deprecates loudly (and removed in 81,
   hence the ``setuptools<81`` pin). The warning is filtered in ``nucleus_seg/__init__.py`` (it must be in
   place before mmengine is first imported), so tools keep their one-line errors.
3. pycocotools 2.0.11 under numpy 2: ``mask.area()`` on a list of more than 255 RLEs raises
   ``OverflowError``; :func:`nucleus_seg.metrics.instance._areas` calls it in chunks.
"""
from __future__ import annotations

from .checkpoints import load_checkpoint_file

_APPLIED = False


def _fix_checkpoint_loading() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes="", force=True)(load_checkpoint_file)


def apply() -> None:
    """Apply all fixes (safe to call many times)."""
    global _APPLIED
    if _APPLIED:
        return
    _fix_checkpoint_loading()
    _APPLIED = True


apply()
