"""The 5-class PanNuke configs run on converter output: 3 folds -> split files -> train on two folds,
selecting the checkpoint on images held out from them -> mPQ on the third fold, once."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nucleus_seg.categories import PANNUKE_CHANNELS

REPO = Path(__file__).resolve().parents[1]
SPLIT1 = "configs/nucleus/pannuke/mask-rcnn_r50-caffe_fpn_ms-poly-3x_pannuke-split1.py"


def _write_fold(fold_dir: Path, seed: int):
    """2 patches in the released format: float64 images/masks, 6 channels (background last),
    per-channel instance ids (id 1 reused across channels), tissue names."""
    rng = np.random.default_rng(seed)
    images = rng.integers(150, 230, (2, 256, 256, 3)).astype(np.float64)
    masks = np.zeros((2, 256, 256, 6), np.float64)
    yy, xx = np.mgrid[:256, :256]
    for p in range(2):
        for k, name in enumerate(PANNUKE_CHANNELS[:5]):
            cx, cy = 30 + 45 * k, 60 + 90 * p
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= 64
            masks[p, disc, PANNUKE_CHANNELS.index(name)] = 1  # id 1 in every channel
            images[p, disc] = (90, 40, 120)
    masks[..., 5] = masks[..., :5].sum(-1) == 0
    fold_dir.mkdir(parents=True)
    np.save(fold_dir / "images.npy", images)
    np.save(fold_dir / "masks.npy", masks)
    np.save(fold_dir / "types.npy", np.array(["Breast", "Colon"]))


def run(*args):
    res = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, f"{args}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def test_pannuke_split_config_selects_on_held_out_images_and_tests_on_the_third_fold(tmp_path):
    coco = tmp_path / "coco"
    for k in (1, 2, 3):
        _write_fold(tmp_path / "raw" / f"Fold {k}", seed=k)
        run("converters/pannuke2coco.py", tmp_path / "raw" / f"Fold {k}", "--out-dir", coco, "--quiet")
    run("converters/pannuke_splits.py", coco)
    assert sorted(p.name for p in coco.glob("*.json")) == sorted(
        [f"instance_fold{k}.json" for k in (1, 2, 3)] + [f"split{k}_{p}.json" for k in (1, 2, 3) for p in ("train", "val")])
    work = tmp_path / "work"
    loaders = [f"{dl}.{k}" for dl in ("train_dataloader", "val_dataloader")
               for k in ("num_workers=0", "persistent_workers=False")]
    res = run("tools/train.py", SPLIT1, "--data-root", coco, "--work-dir", work, "--no-pretrained",
              "--cfg-options", "train_cfg.max_epochs=1", "train_cfg.val_interval=1",
              "default_hooks.checkpoint.interval=1", *loaders)
    # validated on split1_val.json (2 held-out patches of folds 1+2), best checkpoint kept by its mPQ
    assert list(work.glob("best_nucleus_mPQ_epoch_1.pth")), sorted(p.name for p in work.iterdir())
    res = run("tools/test.py", SPLIT1, work / "best_nucleus_mPQ_epoch_1.pth", "--data-root", coco,
              "--work-dir", tmp_path / "test", "--cfg-options", "test_dataloader.num_workers=0",
              "test_dataloader.persistent_workers=False", "model.test_cfg.rcnn.score_thr=0.0")
    for key in ("nucleus/mPQ", "nucleus/bPQ", "nucleus/mPQ_strict", "coco/segm_mAP", "coco/segm_mAP@100"):
        assert key in res.stdout, res.stdout[-3000:]
