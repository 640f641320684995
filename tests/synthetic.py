"""Synthetic nucleus datasets for tests: non-overlapping dark discs on a pink background.

Written in the layout the nucleus configs expect (``<root>/train/*.png``,
``<root>/annotations/instance_{train,val,test}.json`` with exact RLE masks), so a config runs on it
with ``--data-root <root>``.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def disc_layout(height: int, width: int, n: int, radius: int, seed: int = 0):
    """Centres of up to ``n`` non-overlapping discs on a jittered grid (deterministic)."""
    rng = np.random.default_rng(seed)
    step = 2 * radius + 2
    centres = [(x, y) for y in range(radius + 1, height - radius, step)
               for x in range(radius + 1, width - radius, step)]
    order = rng.permutation(len(centres))[:n]
    return [centres[i] for i in sorted(order)]


def render_discs(height: int, width: int, centres, radius: int, seed: int = 0):
    """(BGR image, list of bool masks)."""
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.uint8)
    img[:] = (205, 170, 230)  # eosin-pink background (BGR)
    img = np.clip(img.astype(np.int16) + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
    masks = []
    for (x, y) in centres:
        m = np.zeros((height, width), np.uint8)
        cv2.circle(m, (int(x), int(y)), radius, 1, -1)
        img[m > 0] = (140, 60, 70)  # haematoxylin-dark nucleus
        masks.append(m.astype(bool))
    return img, masks


def coco_annotations(masks, image_id: int, start_id: int, category_id: int = 1):
    anns = []
    for k, m in enumerate(masks):
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        ys, xs = np.nonzero(m)
        anns.append(dict(id=start_id + k, image_id=image_id, category_id=category_id,
                         segmentation=rle, area=int(m.sum()), iscrowd=0,
                         bbox=[int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                               int(ys.max() - ys.min() + 1)]))
    return anns


def make_disc_dataset(root, n_images: int = 2, height: int = 96, width: int = 128,
                      n_nuclei: int = 6, radius: int = 6, seed: int = 0,
                      classes=("nucleus",)) -> Path:
    """Write a tiny labelled dataset; every split JSON holds the same images (it is a fixture).

    With several ``classes`` the nuclei take the categories in turn."""
    root = Path(root)
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n_images):
        centres = disc_layout(height, width, n_nuclei, radius, seed + i)
        img, masks = render_discs(height, width, centres, radius, seed + i)
        name = f"img{i:03d}.png"
        cv2.imwrite(str(root / "train" / name), img)
        images.append(dict(id=i + 1, file_name=name, height=height, width=width))
        anns += coco_annotations(masks, i + 1, len(anns) + 1)
    for k, ann in enumerate(anns):
        ann["category_id"] = 1 + k % len(classes)
    coco = dict(images=images, annotations=anns,
                categories=[dict(id=k + 1, name=name, supercategory="nucleus")
                            for k, name in enumerate(classes)])
    for split in ("train", "val", "test"):
        (root / "annotations" / f"instance_{split}.json").write_text(json.dumps(coco))
    return root


TINY_CONFIG = "configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py"


def tiny_train_config(data_root, work_dir):
    """The CPU-sized config on ``data_root`` for in-process training runs: no dataloader workers,
    no validation or test loop, seed 0. Callers set the schedule and hooks they need."""
    from nucleus_seg.config_utils import load_config, replace_data_root
    cfg = load_config(TINY_CONFIG)
    replace_data_root(cfg, str(data_root))
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.randomness = dict(seed=0)
    return cfg
