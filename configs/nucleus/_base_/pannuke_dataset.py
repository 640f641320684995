# PanNuke, 5 nucleus classes, 3-fold protocol (Gamper et al. 2020; as HoVer-Net / CellViT report it):
# train on two folds, test on the third. Convert each fold once into the same folder:
#   python converters/pannuke2coco.py "data/pannuke/Fold 1" --out-dir data/pannuke/coco
# -> data/pannuke/coco/images/fold1_*.png + data/pannuke/coco/instance_fold1.json (same for 2, 3).
# Only `pannuke_*` names here (model configs that inherit this also inherit a nucleus config).
pannuke_data_root = 'data/pannuke/coco/'
pannuke_classes = ('neoplastic', 'inflammatory', 'connective', 'dead', 'epithelial')
# PanNuke patches are 40x, 0.25 um/px (Gamper et al. 2020); PanNuke model configs set
# nucleus_mpp = pannuke_mpp (what nucleus_seg.slide.model_mpp reads).
pannuke_mpp = 0.25
# The same steps as nucleus_train_pipeline, repeated as mmengine's rules force: a base cannot read a
# sibling base's values, and inheriting nucleus_dataset.py here would define its keys twice.
pannuke_train_pipeline = [
    dict(type='LoadNucleusImage'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    # 256 px patches at 40x: 2x brings nuclei to the upstream anchor sizes.
    dict(type='RandomRescale', scale_factor=2.0, ratio_range=(0.8, 1.25)),
    dict(type='RandomFlip', prob=[0.25, 0.25, 0.25],
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='RandomRot90', prob=0.5),
    dict(type='PhotoMetricDistortion', brightness_delta=16, contrast_range=(0.85, 1.15),
         saturation_range=(0.85, 1.15), hue_delta=6),
    dict(type='PackDetInputs'),
]
pannuke_test_pipeline = [
    dict(type='LoadNucleusImage'),
    dict(type='Resize', scale_factor=2.0, keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]


def _fold(k, pipeline, test_mode=False):
    return dict(type='NucleusCocoDataset', data_root=pannuke_data_root,
                metainfo=dict(classes=pannuke_classes), ann_file=f'instance_fold{k}.json',
                data_prefix=dict(img=''), filter_cfg=dict(filter_empty_gt=not test_mode),
                test_mode=test_mode, pipeline=pipeline)


# pannuke_splits[i]: split i+1 of the protocol (split 1 trains on folds 1+2 and tests on fold 3).
pannuke_splits = [
    dict(
        train_folds=train_folds,
        test_fold=test_fold,
        train_dataloader=dict(
            _delete_=True, batch_size=2, num_workers=2, persistent_workers=True,
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_sampler=dict(type='AspectRatioBatchSampler'),
            dataset=dict(type='ConcatDataset',
                         datasets=[_fold(k, pannuke_train_pipeline) for k in train_folds])),
        val_dataloader=dict(
            _delete_=True, batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=_fold(test_fold, pannuke_test_pipeline, test_mode=True)),
        # NucleusMetric reports per-class PQ, mPQ and bPQ (per tissue, then over tissues).
        val_evaluator=[
            dict(type='DenseCocoMetric', ann_file=f'{pannuke_data_root}instance_fold{test_fold}.json',
                 metric=['bbox', 'segm'], proposal_nums=(100, 300, 1000)),
            dict(type='NucleusMetric', ann_file=f'{pannuke_data_root}instance_fold{test_fold}.json'),
        ])
    for train_folds, test_fold in (((1, 2), 3), ((2, 3), 1), ((3, 1), 2))
]
