# Split 3 of the PanNuke protocol: train folds 3+1, test fold 2.
_base_ = './mask-rcnn_r50-caffe_fpn_ms-poly-3x_pannuke-split1.py'

pannuke_split = _base_.pannuke_splits[2]
# Repeated in every split config, as mmengine's rules force: a base's values are fixed when it is
# loaded, so a child cannot re-select the split; each split file assigns its own dataloaders.
train_dataloader = pannuke_split.train_dataloader
val_dataloader = pannuke_split.val_dataloader
test_dataloader = pannuke_split.test_dataloader
val_evaluator = pannuke_split.val_evaluator
test_evaluator = pannuke_split.test_evaluator
# Checkpoint selection (from split 1's config): the best 'nucleus/mPQ' on this split's validation images,
# held out from its training folds; the test fold is evaluated once, with tools/test.py.
