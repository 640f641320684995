# Mask R-CNN X101-32x8d FPN fine-tuned from its COCO 3x checkpoint on single-class nuclei.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_x101-32x8d_fpn_ms-poly-3x_coco.py',
    './_base_/nucleus_dataset.py', './_base_/dense_scene.py', './_base_/schedule_finetune.py'
]

# The dense-tissue pieces of _base_/dense_scene.py are assigned here in every nucleus config, as
# mmengine's rules force: `model` comes from the mmdet:: base and a key may not come from two bases.
model = dict(
    backbone=dict(init_cfg=None),
    roi_head=dict(bbox_head=dict(num_classes=1), mask_head=dict(num_classes=1)),
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
load_from = _base_.nucleus_checkpoint_dir + (
    'mask_rcnn_x101_32x8d_fpn_mstrain-poly_3x_coco_20210607_161042-8bd2c639.pth')
