# Fine-tuning schedule from a COCO checkpoint. lr 0.02 is for 16 images per step (8 GPUs x 2);
# auto_scale_lr rescales it to the real batch size (e.g. 0.0025 on one GPU with 2 images).
nucleus_train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=24, val_interval=4)
nucleus_param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=200),
    dict(type='MultiStepLR', begin=0, end=24, by_epoch=True, milestones=[16, 22], gamma=0.1),
]
nucleus_optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))
nucleus_auto_scale_lr = dict(enable=True, base_batch_size=16)
# Keeps the checkpoint with the best validation segm AP at maxDets=1000 ('coco/segm_mAP'; the stock
# maxDets=100 figure is 'coco/segm_mAP@100').
nucleus_default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=4, max_keep_ckpts=3,
                    save_best='coco/segm_mAP', rule='greater'),
    logger=dict(type='LoggerHook', interval=10))
# COCO-pretrained checkpoints are local files (no download at run time); see README "Checkpoints".
nucleus_checkpoint_dir = 'data/checkpoints/'
