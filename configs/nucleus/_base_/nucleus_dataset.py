# Single-class nucleus data: COCO JSON written by converters/mask2coco.py (layout: data/README.md).
# Names are prefixed `nucleus_` because every upstream mmdet config already defines the plain names
# (mmengine forbids duplicate keys across bases); each model config assigns them explicitly.
custom_imports = dict(imports=['nucleus_seg.register'], allow_failed_imports=False)

nucleus_data_root = 'data/nucleus/'
nucleus_classes = ('nucleus', )
# Images are rescaled by a fixed factor, not to a fixed size: nucleus size in pixels depends on the
# magnification, not on the tile size, so training tiles and inference tiles of any size are seen
# at the same zoom. 2.0 brings 10-20 px nuclei (20x-40x H&E) to the upstream anchor sizes (32 px
# at the finest level); lower it for large-nucleus data or when GPU memory is short.
nucleus_scale_factor = 2.0
# Microns per pixel of the training tiles, i.e. of what the model expects before the rescale above
# (whole slides are resampled to it, then the test pipeline applies the same Resize; see
# docs/slides.md). DSB 2018 H&E / TCGA tiles record no resolution; 0.25 um/px (40x) is assumed: their
# nuclei (median equivalent diameter 19.6 px over the 2,855 shared masks, IQR 14-25 px) have the
# pixel size of nuclei in 40x sets such as PanNuke (0.25 um/px) -- 4.9 um at 0.25 um/px, where 20x
# would make them ~10 um. Trained on other data? Set this to its resolution (0.5 for 20x scans),
# e.g. `--cfg-options nucleus_mpp=0.5`.
nucleus_mpp = 0.25
# Training sees one random crop of at most this size (width, height) per image after the rescale, so
# memory per step is bounded whatever the tile size (a 1000 px tile becomes 1600-2500 px after the
# rescale; see README "Training memory"). Smaller images pass through whole.
nucleus_train_crop = (1024, 1024)

# Training works on outline polygons (NucleusCocoDataset converts the exact RLE once at load), so
# poly2mask=False: memory grows with outline length, not with tile area x nucleus count.
nucleus_train_pipeline = [
    # the package's one image reader (grey, RGBA, 16-bit -> 8-bit BGR, as infer.py sees them)
    dict(type='LoadNucleusImage'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    dict(type='RandomRescale', scale_factor=nucleus_scale_factor, ratio_range=(0.8, 1.25)),
    # mmdet's crop: boxes are clipped to the crop, polygons intersected with it; a nucleus cut by the
    # crop keeps its visible part (recompute_bbox=False keeps the exact pixel boxes of whole nuclei,
    # a cut one's box is clipped). A crop without any nucleus is not used: the sample is redrawn.
    dict(type='RandomCrop', crop_size=nucleus_train_crop, crop_type='absolute',
         allow_negative_crop=False, recompute_bbox=False, bbox_clip_border=True),
    # Tissue has no orientation: flips on both axes + one 90-degree turn = all 8 dihedral poses.
    dict(type='RandomFlip', prob=[0.25, 0.25, 0.25],
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='RandomRot90', prob=0.5),
    # Mild stain variation only: strong hue shifts turn H&E into a different stain.
    dict(type='PhotoMetricDistortion', brightness_delta=16, contrast_range=(0.85, 1.15),
         saturation_range=(0.85, 1.15), hue_delta=6),
    dict(type='PackDetInputs'),
]
nucleus_test_pipeline = [
    dict(type='LoadNucleusImage'),
    dict(type='Resize', scale_factor=nucleus_scale_factor, keep_ratio=True),
    # No LoadAnnotations: metrics read the annotation file, so unlabeled test sets work too.
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]

nucleus_train_dataloader = dict(
    _delete_=True,  # drop upstream's RepeatDataset wrapper and COCO paths
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='NucleusCocoDataset',
        data_root=nucleus_data_root,
        metainfo=dict(classes=nucleus_classes),
        ann_file='annotations/instance_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=nucleus_train_pipeline))
nucleus_val_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='NucleusCocoDataset',
        data_root=nucleus_data_root,
        metainfo=dict(classes=nucleus_classes),
        ann_file='annotations/instance_val.json',
        data_prefix=dict(img='train/'),
        test_mode=True,
        pipeline=nucleus_test_pipeline))

# COCO AP with the headline figure at 1,000 detections (DenseCocoMetric), plus AJI / PQ / Dice.
nucleus_val_evaluator = [
    dict(type='DenseCocoMetric',
         ann_file=nucleus_data_root + 'annotations/instance_val.json',
         metric=['bbox', 'segm'],
         proposal_nums=(100, 300, 1000)),
    dict(type='NucleusMetric', ann_file=nucleus_data_root + 'annotations/instance_val.json'),
]
