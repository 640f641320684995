# PanNuke, 5 nucleus classes, 3-fold protocol (Gamper et al. 2020; as HoVer-Net / CellViT report it):
# train on two folds, test on the third. Convert each fold once into the same folder, then write the
# training / validation files of the three splits:
#   python converters/pannuke2coco.py "data/pannuke/Fold 1" --out-dir data/pannuke/coco   (also 2, 3)
#   python converters/pannuke_splits.py data/pannuke/coco
# -> data/pannuke/coco/images/fold1_*.png, instance_fold{1,2,3}.json, split{1,2,3}_{train,val}.json.
# Validation (and so checkpoint selection) uses 10 % of the training folds' images, held out per tissue
# with a fixed seed; the test fold is evaluated once, at the end: tools/test.py CONFIG CHECKPOINT.
# Only `pannuke_*` names here (model configs that inherit this also inherit a nucleus config).
pannuke_data_root = 'data/pannuke/coco/'
pannuke_classes = ('neoplastic', 'inflammatory', 'connective', 'dead', 'epithelial')
# PanNuke patches are 40x, 0.25 um/px (Gamper et al. 2020); PanNuke model configs set
# nucleus_mpp = pannuke_mpp (what nucleus_seg.slide.model_mpp reads).
pannuke_mpp = 0.25
# The same steps as nucleus_train_pipeline, repeated as mmengine's rules force: a base cannot read a
# sibling base's values, and inheriting nucleus_dataset.py here would define its keys twice.
# As nucleus_train_crop: bounds memory per step; a 256 px patch rescaled x2 (<= 640 px) passes whole.
pannuke_train_crop = (1024, 1024)
pannuke_train_pipeline = [
    dict(type='LoadNucleusImage'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    # 256 px patches at 40x: 2x brings nuclei to the upstream anchor sizes.
    dict(type='RandomRescale', scale_factor=2.0, ratio_range=(0.8, 1.25)),
    dict(type='RandomCrop', crop_size=pannuke_train_crop, crop_type='absolute',
         allow_negative_crop=False, recompute_bbox=False, bbox_clip_border=True),
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


def _dataset(ann_file, pipeline, test_mode=False):
    return dict(type='NucleusCocoDataset', data_root=pannuke_data_root,
                metainfo=dict(classes=pannuke_classes), ann_file=ann_file,
                data_prefix=dict(img=''), filter_cfg=dict(filter_empty_gt=not test_mode),
                test_mode=test_mode, pipeline=pipeline)


def _eval_loader(ann_file):
    return dict(_delete_=True, batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
                sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=_dataset(ann_file, pannuke_test_pipeline, test_mode=True))


def _evaluators(ann_file):
    # COCO AP (all detections, maxDets 1000 and 100) + NucleusMetric on label maps: per-class PQ, mPQ
    # and bPQ as the PanNuke reference evaluation (mean per tissue, then over tissues), and *_strict.
    return [dict(type='DenseCocoMetric', ann_file=pannuke_data_root + ann_file, metric=['bbox', 'segm'],
                 proposal_nums=(100, 300, 1000)),
            dict(type='NucleusMetric', ann_file=pannuke_data_root + ann_file)]


# pannuke_splits[i]: split i+1 of the protocol (split 1 trains on folds 1+2 and tests on fold 3).
pannuke_splits = [
    dict(
        train_folds=train_folds,
        test_fold=test_fold,
        train_dataloader=dict(
            _delete_=True, batch_size=2, num_workers=2, persistent_workers=True,
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_sampler=dict(type='AspectRatioBatchSampler'),
            dataset=_dataset(f'split{split}_train.json', pannuke_train_pipeline)),
        val_dataloader=_eval_loader(f'split{split}_val.json'),
        val_evaluator=_evaluators(f'split{split}_val.json'),
        test_dataloader=_eval_loader(f'instance_fold{test_fold}.json'),
        test_evaluator=_evaluators(f'instance_fold{test_fold}.json'))
    for split, (train_folds, test_fold) in ((1, ((1, 2), 3)), (2, ((2, 3), 1)), (3, ((3, 1), 2)))
]
