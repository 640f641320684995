"""Fine-tuning from a COCO checkpoint made by mmdet 2.x (as the model zoo publishes them)."""
from __future__ import annotations

import collections
import zipfile

import torch

import nucleus_seg.register  # noqa: F401
from nucleus_seg.config_utils import load_config
from tests.checkpoint_files import mmdet2_meta, pickle_globals, save_mmdet2_style

R50 = "configs/nucleus/mask-rcnn_r50-caffe_fpn_ms-poly-3x_nucleus.py"


def _build(cfg_model):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    return MODELS.build(cfg_model)


def _mmdet2_coco_checkpoint(path):
    """An 80-class COCO model saved the way mmdet 2.x published it (tests/checkpoint_files.py: meta
    with CLASSES, mmcv 1.x version, config text, numpy seed; legacy format, numpy 1 names)."""
    cfg = load_config(R50)
    cfg.model.roi_head.bbox_head.num_classes = 80
    cfg.model.roi_head.mask_head.num_classes = 80
    torch.manual_seed(1)
    coco_model = _build(cfg.model)
    coco_model.init_weights()
    state = collections.OrderedDict((k, v.clone()) for k, v in coco_model.state_dict().items())
    meta = mmdet2_meta([f"class{i}" for i in range(80)], config_text="model = dict(type='MaskRCNN')")
    save_mmdet2_style(path, state, meta)
    return state


def test_mmdet2_checkpoint_loads_into_the_single_class_model(tmp_path):
    from mmengine.runner import load_checkpoint
    path = tmp_path / "mask_rcnn_coco_mmdet2.pth"
    coco_state = _mmdet2_coco_checkpoint(path)
    assert not zipfile.is_zipfile(path)  # the legacy format, with numpy 1's names for numpy values
    assert "numpy.core.multiarray.scalar" in pickle_globals(path)

    model = _build(load_config(R50).model)
    # what load_from does, through the package's restricted reader (nucleus_seg.compat fix 1)
    ckpt = load_checkpoint(model, str(path), map_location="cpu", strict=False)
    assert len(ckpt["meta"]["CLASSES"]) == 80 and ckpt["meta"]["seed"] == 1405846721
    state = model.state_dict()
    shared = [k for k in state if k in coco_state and state[k].shape == coco_state[k].shape]
    # Backbone, neck, RPN and the class-agnostic head layers come from the checkpoint ...
    for key in ("backbone.conv1.weight", "neck.fpn_convs.0.conv.weight", "rpn_head.rpn_conv.weight",
                "roi_head.bbox_head.shared_fcs.0.weight", "roi_head.mask_head.convs.0.conv.weight"):
        assert key in shared and torch.equal(state[key], coco_state[key]), key
    # ... while the 80-class layers are skipped (shape mismatch) and keep their fresh 1-class shape.
    assert state["roi_head.bbox_head.fc_cls.weight"].shape[0] == 2
    assert coco_state["roi_head.bbox_head.fc_cls.weight"].shape[0] == 81
    assert state["roi_head.mask_head.conv_logits.weight"].shape[0] == 1
    skipped = {k for k in state if k not in shared}
    assert skipped == {f"roi_head.{layer}.{p}" for p in ("weight", "bias") for layer in
                       ("bbox_head.fc_cls", "bbox_head.fc_reg", "mask_head.conv_logits")}
