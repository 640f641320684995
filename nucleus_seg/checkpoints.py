"""Checkpoint files: the one reader every checkpoint read goes through, the checks with one-line
errors, and the upstream COCO checkpoints the nucleus configs fine-tune from.

:func:`load_checkpoint_file` is the only place a checkpoint is unpickled: mmengine's local-file
scheme (``load_from``, ``--resume``; registered by :mod:`nucleus_seg.compat`) and the inference
predictor (:func:`read_checkpoint`) both call it.

Nothing is downloaded at run time: the user fetches the file once by hand (README "Checkpoints")
and the config's ``load_from`` points at ``data/checkpoints/<file name>``.
"""
from __future__ import annotations

import os.path as osp

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


def load_checkpoint_file(filename, map_location=None):
    """Unpickle the local checkpoint ``filename`` (FileNotFoundError if it is not a file).

    mmengine's checkpoints (and the mmdet 2.x ones of the model zoo) hold numpy arrays, dtypes,
    ``HistoryBuffer`` objects and config text, which ``torch.load``'s default since torch 2.6
    (``weights_only=True``) rejects, so the file is loaded with ``weights_only=False``: it runs the
    pickle's code, load only files you trust (see compat.py, fix 1)."""
    import torch

    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    return torch.load(filename, map_location=map_location, weights_only=False)


def read_checkpoint(path, map_location="cpu") -> dict:
    """A checkpoint as a dict, with one-line InputErrors for a missing, unreadable or non-model file."""
    check_checkpoint(path)
    try:
        ckpt = load_checkpoint_file(path, map_location)
    except Exception as exc:
        raise InputError(path, f"not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict):
        raise InputError(path, "not a model checkpoint (expected a dict with 'state_dict')")
    return ckpt
