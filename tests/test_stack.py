"""The OpenMMLab stack really works on CPU: compiled mmcv ops, a Mask R-CNN train step, checkpoints."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import nucleus_seg.register  # noqa: F401  (compat fixes + registrations)


def test_roi_align_matches_hand_computed_bilinear_averages():
    from mmcv.ops import RoIAlign
    feat = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0.0, 0.0, 0.0, 4.0, 4.0]])  # (batch, x1, y1, x2, y2): the whole map
    # 2x2 bins of 2x2 pixels, one sample at each bin centre; with aligned=True the centre of bin
    # (0, 0) is pixel-index (0.5, 0.5): the mean of pixels 0, 1, 4, 5 = 2.5, and so on.
    out = RoIAlign(output_size=2, spatial_scale=1.0, sampling_ratio=1, aligned=True)(feat, rois)
    assert out.shape == (1, 1, 2, 2)
    assert torch.allclose(out[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))


def test_nms_suppresses_the_overlapping_box_only():
    from mmcv.ops import nms
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    # IoU(box0, box1) = 81 / 119 = 0.68 > 0.5: box1 goes; box2 does not overlap.
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert torch.allclose(dets[:, 4], torch.tensor([0.9, 0.7]))


def upstream_config(relative: str) -> str:
    """Path of an mmdet 3.3 COCO config (what ``mmdet::<relative>`` names in a ``_base_``)."""
    import os.path as osp
    import mmdet
    return osp.join(osp.dirname(mmdet.__file__), ".mim", "configs", relative)


def _tiny_mask_rcnn_from_upstream():
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(upstream_config("mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py"))
    cfg.model.backbone.init_cfg = None  # no download
    cfg.model.roi_head.bbox_head.num_classes = 1
    cfg.model.roi_head.mask_head.num_classes = 1
    return MODELS.build(cfg.model)


def _synthetic_batch(n_nuclei=4, size=96):
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    rng = np.random.default_rng(0)
    img = torch.from_numpy(rng.integers(0, 255, (3, size, size), dtype=np.uint8))
    masks = np.zeros((n_nuclei, size, size), np.uint8)
    boxes = []
    for k in range(n_nuclei):
        x, y = 10 + 20 * k, 30
        masks[k, y:y + 12, x:x + 12] = 1
        boxes.append([x, y, x + 12, y + 12])
    sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                         pad_shape=(size, size), scale_factor=(1.0, 1.0),
                                         batch_input_shape=(size, size)))
    sample.gt_instances = InstanceData(
        bboxes=HorizontalBoxes(torch.tensor(boxes, dtype=torch.float32)),
        labels=torch.zeros(n_nuclei, dtype=torch.long),
        masks=BitmapMasks(masks, size, size))
    return dict(inputs=[img], data_samples=[sample])


def test_mask_rcnn_from_mmdet_base_trains_one_step_with_finite_loss():
    torch.manual_seed(0)
    model = _tiny_mask_rcnn_from_upstream()
    model.train()
    data = model.data_preprocessor(_synthetic_batch(), training=True)
    losses = model(**data, mode="loss")
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                for k, v in losses.items() if "loss" in k)
    assert torch.isfinite(total)
    for key in ("loss_rpn_cls", "loss_cls", "loss_bbox", "loss_mask"):
        assert key in losses
    before = copy.deepcopy(model.roi_head.mask_head.conv_logits.weight.detach())
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    total.backward()
    opt.step()
    assert not torch.equal(before, model.roi_head.mask_head.conv_logits.weight.detach())
