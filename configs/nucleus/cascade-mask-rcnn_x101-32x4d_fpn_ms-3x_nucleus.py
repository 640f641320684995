# Cascade Mask R-CNN X101-32x4d FPN fine-tuned from its COCO 3x checkpoint on single-class nuclei.
_base_ = [
    'mmdet::cascade_rcnn/cascade-mask-rcnn_x101-32x4d_fpn_ms-3x_coco.py',
    './_base_/nucleus_dataset.py', './_base_/dense_scene.py', './_base_/schedule_finetune.py'
]

# Cascade heads and their train settings are per-stage lists; lists replace rather than merge, so
# each stage is rebuilt from upstream's with only the class count / dense sampling changed.
# The dense-tissue pieces of _base_/dense_scene.py are assigned here in every nucleus config, as
# mmengine's rules force: `model` comes from the mmdet:: base and a key may not come from two bases.
model = dict(
    backbone=dict(init_cfg=None),  # the full COCO checkpoint (load_from) replaces ImageNet weights
    roi_head=dict(
        bbox_head=[dict(head, num_classes=1) for head in _base_.model.roi_head.bbox_head],
        mask_head=dict(num_classes=1)),
    train_cfg=dict(
        rpn=dict(assigner=_base_.dense_rpn_assigner, sampler=_base_.dense_rpn_sampler),
        rpn_proposal=_base_.dense_rpn_proposal,
        rcnn=[
            dict(stage,
                 assigner=dict(stage.assigner, **_base_.dense_rcnn_assigner),
                 sampler=dict(stage.sampler, **_base_.dense_rcnn_sampler))
            for stage in _base_.model.train_cfg.rcnn
        ]),
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
load_from = _base_.nucleus_checkpoint_dir + 'cascade_mask_rcnn_x101_32x4d_fpn_mstrain_3x_coco_20210706_225234-40773067.pth'
