# CPU-sized Mask R-CNN for the demo and the tests: the same code paths as the R50 nucleus config
# (dataset, polygons, augmentations, dense-scene settings, metrics), with a thin ResNet-18 backbone,
# narrow heads, trained from random initialisation.
_base_ = './mask-rcnn_r50-caffe_fpn_ms-poly-3x_nucleus.py'

model = dict(
    # Random init: plain ImageNet-style normalisation, trainable BN (frozen BN would stay identity).
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True),
    backbone=dict(depth=18, base_channels=32, frozen_stages=-1, style='pytorch',
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    # Fixed 2x2 samples per RoIAlign bin: the adaptive default samples large (untrained) proposals
    # densely and made mmcv's single-threaded CPU RoIAlign half of every step.
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64, roi_layer=dict(sampling_ratio=2)),
        bbox_head=dict(in_channels=64, fc_out_channels=256),
        mask_roi_extractor=dict(out_channels=64, roi_layer=dict(sampling_ratio=2)),
        mask_head=dict(num_convs=2, in_channels=64, conv_out_channels=64)),
    # Still >= 1,000 RoIs and up to 512 positives per image: enough for the bundled tiles (<= 117
    # nuclei) at half the CPU cost of the full configs' 2048.
    train_cfg=dict(rcnn=dict(sampler=dict(num=1024, pos_fraction=0.5))))

train_dataloader = dict(num_workers=1, sampler=dict(type='InfiniteSampler', shuffle=True))
val_dataloader = dict(num_workers=1)
test_dataloader = val_dataloader

# Iteration-based so a time budget can stop it mid-epoch; the demo adds TrainTimeBudgetHook.
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2000, val_interval=500)
# Cosine to eta_min over 2,000 iterations, or over the time budget when one stops training sooner
# (the demo's 600 s are ~150 iterations on 2 CPU cores): the run always ends at the low LR.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='TimeBudgetCosineLR', T_max=2000, eta_min=1e-5, by_epoch=False, begin=0, end=2000),
]
# AdamW converges faster than SGD from random initialisation on a dozen tiles.
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=0.05))
auto_scale_lr = dict(enable=False)  # tuned for its own batch of 2
# Checkpoint selection: none (save_best=None); the demo trains without validation and tests the last
# checkpoint on its validation tiles.
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=500, max_keep_ckpts=2, save_best=None),
    logger=dict(interval=20))
log_processor = dict(by_epoch=False)
load_from = None  # trained from scratch: no checkpoint exists for this size
