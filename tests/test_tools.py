"""The command-line tools end to end: convert -> train -> save -> test -> format-only -> submission."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = "configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py"
R50 = "configs/nucleus/mask-rcnn_r50-caffe_fpn_ms-poly-3x_nucleus.py"
# Few, cheap iterations; no validation during training (tested on its own below).
QUICK = ["--cfg-options", "train_cfg.max_iters=2", "default_hooks.checkpoint.interval=2",
         "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False"]


def run(*args, ok=True, timeout=600):
    res = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                         timeout=timeout)
    if ok:
        assert res.returncode == 0, f"{args}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def dsb_project(dsb_root, tmp_path_factory):
    """4 shared DSB tiles converted and split, 3 test tiles with their fixed ids, a 2-iteration model."""
    tmp = tmp_path_factory.mktemp("dsb")
    data = tmp / "data"
    (data / "train").mkdir(parents=True)
    train_ids = sorted(p.name for p in (dsb_root / "train").iterdir())[:4]
    for name in train_ids:
        (data / "train" / name).symlink_to(dsb_root / "train" / name)
    run("converters/mask2coco.py", data / "train", "--out-dir", data / "annotations",
        "--val-ratio", "0.5", "--seed", "0", "--quiet")
    ids = json.loads((dsb_root / "test_img_ids.json").read_text())[:3]
    (data / "test").mkdir()
    for entry in ids:
        (data / "test" / entry["file_name"]).symlink_to(dsb_root / "test" / entry["file_name"])
    (tmp / "ids.json").write_text(json.dumps(ids))
    run("converters/images2coco.py", data / "test", "--ids", tmp / "ids.json",
        "--out", data / "annotations" / "instance_test.json")
    work = tmp / "work"
    res = run("tools/train.py", TINY, "--data-root", data, "--work-dir", work, "--no-validate", *QUICK)
    assert (work / "iter_2.pth").is_file(), res.stdout[-2000:]
    return dict(tmp=tmp, data=data, work=work, ids=ids, ckpt=work / "iter_2.pth")


def test_test_tool_evaluates_with_mmdet2_style_eval_flag(dsb_project):
    p = dsb_project
    metrics = p["tmp"] / "val_metrics.json"
    res = run("tools/test.py", TINY, p["ckpt"], "--data-root", p["data"], "--eval", "segm", "bbox",
              "--work-dir", p["tmp"] / "eval", "--out-metrics", metrics, "--show-dir", p["tmp"] / "show",
              "--score-thr", "0", "--cfg-options", "model.test_cfg.rcnn.score_thr=0.0")
    out = res.stdout
    keys = ("coco/segm_mAP", "coco/segm_mAP@100", "coco/bbox_mAP", "coco/bbox_mAP@100", "nucleus/PQ",
            "nucleus/AJI", "nucleus/Dice")
    for key in keys:
        assert key in out, out[-2000:]
    # the printed table says how each group of scores was computed
    assert "nucleus/*: instance metrics: label maps" in out and "score >= 0.5" in out
    assert "coco/*: COCO AP: all predictions ranked by score; mAP* at maxDets 1000" in out
    scores = json.loads(metrics.read_text())
    assert all(0.0 <= scores[k] <= 1.0 for k in keys if scores[k] is not None)
    assert any(line.startswith("nucleus/*: instance metrics: label maps") for line in scores["evaluation"])
    val = json.loads((p["data"] / "annotations" / "instance_val.json").read_text())["images"]
    overlays = sorted(x.name for x in (p["tmp"] / "show").glob("*.png"))
    assert overlays == sorted(Path(i["file_name"]).stem + ".png" for i in val)


def test_format_only_then_submission_round_trip(dsb_project):
    p = dsb_project
    prefix = p["tmp"] / "results" / "test"
    args = ["tools/test.py", TINY, p["ckpt"], "--format-only",
            "--ann-file", p["data"] / "annotations" / "instance_test.json", "--img-dir", p["data"] / "test",
            "--out-prefix", prefix, "--work-dir", p["tmp"] / "fmt",
            "--cfg-options", "model.test_cfg.rcnn.score_thr=0.0"]
    run(*args)
    segm = json.loads(Path(f"{prefix}.segm.json").read_text())
    bbox = json.loads(Path(f"{prefix}.bbox.json").read_text())
    known = {e["id"] for e in p["ids"]}
    assert segm and bbox
    assert {r["image_id"] for r in segm} == known  # score_thr 0: every image has detections
    assert all(r["category_id"] == 1 and isinstance(r["segmentation"]["counts"], str) for r in segm)
    sizes = {e["id"]: [e["height"], e["width"]] for e in p["ids"]}
    assert all(r["segmentation"]["size"] == sizes[r["image_id"]] for r in segm)
    assert not list(prefix.parent.glob(".results-*"))  # temp output cleaned up

    # Existing results are never silently replaced.
    again = run(*args, ok=False)
    assert again.returncode == 2 and "already exists" in again.stderr

    answer = p["tmp"] / "answer.zip"
    run("tools/make_submission.py", "--results", f"{prefix}.segm.json", "--images", p["tmp"] / "ids.json",
        "--out", answer)
    with zipfile.ZipFile(answer) as z:
        assert z.namelist() == ["answer.json"]
        assert json.loads(z.read("answer.json")) == segm


def test_resume_from_the_work_dir(dsb_project):
    p = dsb_project
    work = p["tmp"] / "resumed"
    run("tools/train.py", TINY, "--data-root", p["data"], "--work-dir", work, "--no-validate",
        "--resume", p["ckpt"], "--cfg-options", "train_cfg.max_iters=3",
        "default_hooks.checkpoint.interval=1", "train_dataloader.num_workers=0",
        "train_dataloader.persistent_workers=False")
    assert sorted(x.name for x in work.glob("iter_*.pth")) == ["iter_3.pth"]


def test_missing_pretrained_checkpoint_is_a_one_line_error(tmp_path):
    from tests.synthetic import make_disc_dataset
    data = make_disc_dataset(tmp_path / "data", n_images=1)
    res = run("tools/train.py", R50, "--data-root", data, "--work-dir", tmp_path / "w", ok=False)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: data/checkpoints/mask_rcnn_r50_caffe_fpn_mstrain-poly_3x_coco")
    assert "pretrained checkpoint not found" in lines[0]
    assert "https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/" in lines[0]
    assert "--no-pretrained" in lines[0]


def test_missing_checkpoint_for_testing_is_a_one_line_error(tmp_path):
    res = run("tools/test.py", TINY, tmp_path / "nope.pth", "--eval", "segm", ok=False)
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {tmp_path / 'nope.pth'}: checkpoint not found; train one " \
                                 "with tools/train.py (it writes work_dirs/<config>/*.pth) or copy a trained .pth here"


def test_missing_annotation_file_is_a_one_line_error(tmp_path):
    res = run("tools/train.py", TINY, "--data-root", tmp_path / "empty", ok=False)
    assert res.returncode == 2
    assert "instance_train.json: train_dataloader annotation file not found" in res.stderr


def test_amp_on_a_cpu_only_machine_is_a_one_line_error(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: --amp is valid here")
    from tests.synthetic import make_disc_dataset
    data = make_disc_dataset(tmp_path / "data", n_images=1)
    res = run("tools/train.py", TINY, "--data-root", data, "--amp", ok=False)
    assert res.returncode == 2
    assert res.stderr.strip() == "error: --amp needs a CUDA GPU; train without it on the CPU"
