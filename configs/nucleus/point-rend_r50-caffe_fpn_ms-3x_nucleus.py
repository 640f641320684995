# PointRend R50-caffe FPN fine-tuned from its COCO 3x checkpoint on single-class nuclei.
_base_ = [
    'mmdet::point_rend/point-rend_r50-caffe_fpn_ms-3x_coco.py',
    './_base_/nucleus_dataset.py', './_base_/dense_scene.py', './_base_/schedule_finetune.py'
]

# The dense-tissue pieces of _base_/dense_scene.py are assigned here in every nucleus config, as
# mmengine's rules force: `model` comes from the mmdet:: base and a key may not come from two bases.
model = dict(
    backbone=dict(init_cfg=None),  # the full COCO checkpoint (load_from) replaces ImageNet weights
    roi_head=dict(
        bbox_head=dict(num_classes=1),
        mask_head=dict(num_classes=1),
        # Point targets from per-instance crops: upstream's MaskPointHead rasterises every polygon
        # to a full-image tensor per step (32 GB on a 2000 px tile with 1,000 nuclei).
        point_head=dict(type='CropMaskPointHead', num_classes=1)),
    train_cfg=dict(
        rpn=dict(assigner=_base_.dense_rpn_assigner, sampler=_base_.dense_rpn_sampler),
        rpn_proposal=_base_.dense_rpn_proposal,
        rcnn=dict(assigner=_base_.dense_rcnn_assigner, sampler=_base_.dense_rcnn_sampler)),
    test_cfg=dict(rpn=_base_.dense_rpn_test, rcnn=_base_.dense_rcnn_test))

# Repeated in every nucleus config, as mmengine's rules force: the mmdet:: base defines these keys
# too and a key may not come from two bases, so each config assigns the shared _base_ values.
train_dataloader = _base_.nucleus_train_dataloader
val_dataloader = _base_.nucleus_val_dataloader
test_dataloader = val_dataloader
val_evaluator = _base_.nucleus_val_evaluator
test_evaluator = val_evaluator
train_cfg = _base_.nucleus_train_cfg
param_scheduler = _base_.nucleus_param_scheduler
optim_wrapper = _base_.nucleus_optim_wrapper
auto_scale_lr = _base_.nucleus_auto_scale_lr
# Checkpoint selection: the best validation 'coco/segm_mAP' (segm AP at maxDets=1000; save_best in
# _base_/schedule_finetune.py).
default_hooks = _base_.nucleus_default_hooks
load_from = _base_.nucleus_checkpoint_dir + 'point_rend_r50_caffe_fpn_mstrain_3x_coco-e0ebb6b7.pth'
