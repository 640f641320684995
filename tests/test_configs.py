"""Every nucleus config builds, trains one step on a dense tile and predicts on CPU; dense-scene
defaults hold."""
from __future__ import annotations

import functools
import glob
import os.path as osp

import numpy as np
import pytest
import torch

import nucleus_seg.register  # noqa: F401
from nucleus_seg.config_utils import evaluators, load_config
from tests.synthetic import make_disc_dataset
from tests.test_stack import _synthetic_batch

CONFIGS = sorted(p for p in glob.glob("configs/nucleus/**/*.py", recursive=True) if "_base_" not in p)
# PanNuke splits 2 and 3 differ from split 1 only in which fold files they read: one model build each.
MODEL_CONFIGS = [p for p in CONFIGS if not p.endswith(("split2.py", "split3.py"))]
DENSE_MIN = 1000
# The training step of each config runs through its own training pipeline (RLE -> polygons, x2
# rescale, random crop, flips) on a tile of 900 nuclei of radius 4 px, about 100-160 of which land in
# the crop. The crop is shrunk from the configs' 1024 px to TEST_CROP so that nine CPU steps stay cheap.
DENSE_TILE = dict(n_images=1, height=320, width=320, n_nuclei=900, radius=4)
TEST_CROP = (256, 256)


@functools.lru_cache(maxsize=None)
def config(path):
    """Each config parsed once per session (about a second each); the tests only read them."""
    return load_config(path)


def test_config_inventory():
    names = {osp.basename(p) for p in CONFIGS}
    for expected in ("mask-rcnn_r50-caffe_fpn_ms-poly-3x_nucleus.py",
                     "mask-rcnn_x101-32x8d_fpn_ms-poly-3x_nucleus.py",
                     "cascade-mask-rcnn_r50-caffe_fpn_ms-3x_nucleus.py",
                     "cascade-mask-rcnn_x101-32x4d_fpn_ms-3x_nucleus.py",
                     "point-rend_r50-caffe_fpn_ms-3x_nucleus.py",
                     "ms-rcnn_x101-32x4d_fpn_1x_nucleus.py",
                     "mask-rcnn_r18_fpn_tiny_nucleus.py"):
        assert expected in names
    for model in ("mask-rcnn_r50-caffe_fpn_ms-poly-3x", "cascade-mask-rcnn_r50-caffe_fpn_ms-3x"):
        for split in (1, 2, 3):
            assert f"{model}_pannuke-split{split}.py" in names


@pytest.mark.parametrize("split", [1, 2, 3])
def test_pannuke_splits_never_select_on_the_test_fold(split):
    cfg = load_config(f"configs/nucleus/pannuke/mask-rcnn_r50-caffe_fpn_ms-poly-3x_pannuke-split{split}.py")
    test_fold = {1: 3, 2: 1, 3: 2}[split]
    assert cfg.train_dataloader.dataset.ann_file == f"split{split}_train.json"
    assert cfg.val_dataloader.dataset.ann_file == f"split{split}_val.json"   # held out from the training folds
    assert cfg.test_dataloader.dataset.ann_file == f"instance_fold{test_fold}.json"
    assert all(e.ann_file.endswith(f"split{split}_val.json") for e in evaluators(cfg.val_evaluator))
    assert all(e.ann_file.endswith(f"instance_fold{test_fold}.json") for e in evaluators(cfg.test_evaluator))
    assert cfg.default_hooks.checkpoint.save_best == "nucleus/mPQ"
    assert cfg.model.roi_head.bbox_head.num_classes == 5 and cfg.model.roi_head.mask_head.num_classes == 5
    assert cfg.train_dataloader.dataset.metainfo.classes == (
        "neoplastic", "inflammatory", "connective", "dead", "epithelial")


# Key prefixes each evaluator type produces (mmengine prefixes metric keys with the evaluator's prefix).
EVALUATOR_PREFIX = {"DenseCocoMetric": "coco/", "CocoMetric": "coco/", "NucleusMetric": "nucleus/"}


@pytest.mark.parametrize("path", CONFIGS, ids=osp.basename)
def test_checkpoint_selection_key_is_stated_and_computed(path):
    """Every config says in a comment what selects its checkpoint, and save_best names a key its own
    validation evaluators produce, with an explicit rule (mmengine cannot infer it for nucleus/*)."""
    with open(path, encoding="utf-8") as f:
        assert "Checkpoint selection" in f.read()
    cfg = config(path)
    hook = cfg.default_hooks.checkpoint
    if hook.get("save_best") is None:
        return
    prefixes = {EVALUATOR_PREFIX[e.type] for e in evaluators(cfg.val_evaluator)}
    assert any(hook.save_best.startswith(p) for p in prefixes), (hook.save_best, prefixes)
    assert hook.rule == "greater"


def _stages(node):
    return list(node) if isinstance(node, (list, tuple)) else [node]


@pytest.mark.parametrize("path", CONFIGS, ids=osp.basename)
def test_dense_scene_settings_admit_1000_instances(path):
    cfg = config(path)
    model = cfg.model
    assert model.test_cfg.rcnn.max_per_img >= DENSE_MIN
    assert model.test_cfg.rpn.max_per_img >= DENSE_MIN and model.test_cfg.rpn.nms_pre >= DENSE_MIN
    assert model.train_cfg.rpn_proposal.max_per_img >= DENSE_MIN
    for stage in _stages(model.train_cfg.rcnn):
        sampler = stage.sampler
        assert sampler.num * sampler.pos_fraction >= DENSE_MIN / 2
        assert sampler.num >= DENSE_MIN
        assert stage.assigner.gpu_assign_thr > 0  # thousands of GT boxes: assign on CPU
    assert model.train_cfg.rpn.assigner.gpu_assign_thr > 0
    _assert_assign_fits_the_gpu_budget(cfg)
    coco = [e for e in evaluators(cfg.val_evaluator) if e.type == "DenseCocoMetric"]
    assert coco and max(coco[0].proposal_nums) >= DENSE_MIN
    if "tiny" not in path:  # fine-tuning configs: lr follows the real batch size, COCO weights local
        assert cfg.auto_scale_lr.enable and cfg.auto_scale_lr.base_batch_size == 16
        assert cfg.load_from.startswith("data/checkpoints/") and cfg.load_from.endswith(".pth")
    # No download at run time: backbone ImageNet init is off (the COCO checkpoint replaces it).
    assert model.backbone.get("init_cfg") is None
    # RLE annotations must not be dropped by LoadAnnotations(poly2mask=False): NucleusCocoDataset.
    train = cfg.train_dataloader.dataset
    datasets = train.datasets if train.type == "ConcatDataset" else [train]
    assert datasets and all(d.type == "NucleusCocoDataset" for d in datasets)
    # One image reader for training, testing and inference (tests/test_image_io.py).
    for d in datasets + [cfg.val_dataloader.dataset, cfg.test_dataloader.dataset]:
        assert d.pipeline[0].type == "LoadNucleusImage"


def _assert_assign_fits_the_gpu_budget(cfg):
    """The IoU matrix an assigner builds on the GPU (4 bytes per (GT, prior) pair with the chunked
    calculator) fits dense_scene.py's budget up to gpu_assign_thr GT boxes, on the training crop."""
    model, budget = cfg.model, cfg.dense_assign_gpu_budget_bytes
    (crop,) = [t.crop_size for t in _train_dataset(cfg).pipeline if t.type == "RandomCrop"]
    anchors = model.rpn_head.anchor_generator
    per_location = len(anchors.ratios) * len(anchors.scales)
    rpn_priors = sum(per_location * -(-crop[0] // s) * -(-crop[1] // s) for s in anchors.strides)
    rpn = model.train_cfg.rpn.assigner
    assert rpn.iou_calculator.type == "ChunkedBboxOverlaps2D"
    assert 4 * rpn_priors * rpn.gpu_assign_thr <= budget
    proposals = model.train_cfg.rpn_proposal.max_per_img
    for stage in _stages(model.train_cfg.rcnn):
        assert stage.assigner.iou_calculator.type == "ChunkedBboxOverlaps2D"
        thr = stage.assigner.gpu_assign_thr
        assert 4 * (proposals + thr) * thr <= budget  # the GT boxes are added as proposals


def _num_classes(cfg):
    heads = _stages(cfg.model.roi_head.bbox_head)
    return heads[0].num_classes


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a busy machine extra threads spin against the neighbours' jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dense_tile(tmp_path_factory):
    """Dense synthetic dataset root per class list (one written per list, shared by the configs)."""
    roots = {}

    def get(classes):
        if classes not in roots:
            roots[classes] = make_disc_dataset(tmp_path_factory.mktemp("dense"), classes=classes,
                                               **DENSE_TILE)
        return roots[classes]
    return get


def _train_dataset(cfg):
    dataset = cfg.train_dataloader.dataset
    return dataset.datasets[0] if dataset.type == "ConcatDataset" else dataset


def _dense_training_batch(cfg, root):
    """One training sample of ``root`` through the config's training pipeline, crop shrunk."""
    from mmengine.dataset import pseudo_collate
    from nucleus_seg.datasets import NucleusCocoDataset
    dataset = _train_dataset(cfg)
    (crop,) = [t for t in dataset.pipeline if t.type == "RandomCrop"]
    assert tuple(crop.crop_size) >= (1024, 1024)
    crop.crop_size = TEST_CROP
    train = NucleusCocoDataset(data_root=str(root), ann_file="annotations/instance_train.json",
                               data_prefix=dict(img="train/"), metainfo=dataset.metainfo,
                               pipeline=dataset.pipeline)
    np.random.seed(0)
    return pseudo_collate([train[0]])


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=osp.basename)
def test_config_builds_trains_one_step_on_a_dense_tile_and_predicts(path, dense_tile):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = load_config(path)
    batch = _dense_training_batch(cfg, dense_tile(tuple(_train_dataset(cfg).metainfo.classes)))
    sample = batch["data_samples"][0]
    assert sample.img_shape == TEST_CROP and len(sample.gt_instances) >= 80  # cropped, dense
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode="loss")
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    if "point" in path:
        assert torch.isfinite(losses["loss_point"])
    loss.backward()
    grads = [p.grad for p in model.roi_head.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)

    model.eval()
    # An untrained model keeps every proposal: 1,000 masks per image cost a minute on CPU for the
    # cascades, so prediction (the code path, not the cap, which test_dense checks) stops at 100.
    for stage in _stages(model.test_cfg.rcnn):
        stage.max_per_img = 100
    with torch.no_grad():
        data = model.data_preprocessor(_synthetic_batch(n_nuclei=3, size=128), training=False)
        (pred,) = model(**data, mode="predict")
    inst = pred.pred_instances
    assert inst.masks.shape[1:] == (128, 128)
    assert len(inst.scores) == len(inst.labels) == len(inst.bboxes) == len(inst.masks)
    if len(inst.labels):
        assert int(inst.labels.max()) < _num_classes(cfg)
