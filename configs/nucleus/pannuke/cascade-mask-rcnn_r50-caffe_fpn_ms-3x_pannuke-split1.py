# Cascade Mask R-CNN R50 on PanNuke's 5 classes, split 1 (train folds 1+2, test fold 3). Splits 2
# and 3 inherit this file and swap the data only.
_base_ = ['../cascade-mask-rcnn_r50-caffe_fpn_ms-3x_nucleus.py', '../_base_/pannuke_dataset.py']

pannuke_split = _base_.pannuke_splits[0]
nucleus_mpp = _base_.pannuke_mpp  # the model's resolution is PanNuke's
model = dict(
    roi_head=dict(
        bbox_head=[dict(head, num_classes=5) for head in _base_.model.roi_head.bbox_head],
        mask_head=dict(num_classes=5)))
# Repeated in every split config, as mmengine's rules force: a base's values are fixed when it is
# loaded, so a child cannot re-select the split; each split file assigns its own dataloaders.
train_dataloader = pannuke_split.train_dataloader
val_dataloader = pannuke_split.val_dataloader
test_dataloader = pannuke_split.test_dataloader
val_evaluator = pannuke_split.val_evaluator
test_evaluator = pannuke_split.test_evaluator
# Checkpoint selection: the best 'nucleus/mPQ' (multi-class PQ, the number PanNuke papers compare, by the
# reference protocol) on the validation images held out from the training folds -- never the test fold.
default_hooks = dict(checkpoint=dict(save_best='nucleus/mPQ', rule='greater'))
