"""The real predictor path: the tiny Mask R-CNN config built by mmdet, a local checkpoint, tiling.

Weights are random except two biases set so that the output is predictable (every detection scores
~1 and its mask fills its box): this checks plumbing (BGR conversion, pipeline, tile coordinates,
merging, exports), not accuracy. Nothing is downloaded.
"""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from nucleus_seg.errors import InputError
from nucleus_seg.inference import load_predictor, run_tiled, tile_grid
from slides import make_mosaic, write_aperio
from tests.standins import ClippedPredictions

TINY_CONFIG = "configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py"


def _save_checkpoint(repo_root, path, num_classes=1):
    import torch
    from mmdet.apis import init_detector
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint

    cfg = Config.fromfile(str(repo_root / TINY_CONFIG))
    if num_classes != 1:
        cfg.model.roi_head.bbox_head.num_classes = num_classes
        cfg.model.roi_head.mask_head.num_classes = num_classes
    torch.manual_seed(0)
    model = init_detector(cfg, None, device="cpu")
    with torch.no_grad():
        model.roi_head.bbox_head.fc_cls.bias[:num_classes] = 8.0  # foreground wins the softmax
        model.roi_head.mask_head.conv_logits.bias[:] = 8.0        # masks fill their boxes
    classes = ["nucleus"] + [f"other{i}" for i in range(num_classes - 1)]
    save_checkpoint({"state_dict": model.state_dict(),
                     "meta": {"dataset_meta": {"classes": classes}}}, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_checkpoint(repo_root, tmp_path_factory):
    return _save_checkpoint(repo_root, tmp_path_factory.mktemp("ckpt") / "tiny.pth")


@pytest.fixture(scope="module")
def predictor(repo_root, tiny_checkpoint):
    # a fixed zoom (not the config's resize to 640) that still exercises rescaling to tile coords
    pred = load_predictor(repo_root / TINY_CONFIG, tiny_checkpoint, "cpu", score_thr=0.3,
                          max_per_img=30, scale_factor=1.5)  # 30: keep the CPU test quick
    assert pred.model.roi_head.test_cfg.max_per_img == 30
    return pred


def _tissue_image(sample_root, height, width):
    """Sample DSB tiles stitched side by side, cropped to the requested size."""
    paths = sorted(sample_root.glob("train/*/images/*.png"))
    tiles = [cv2.imread(str(p))[:, :, ::-1] for p in paths[:6]]
    grid = np.vstack([np.hstack(tiles[0:3]), np.hstack(tiles[3:6])])
    return np.ascontiguousarray(grid[:height, :width])


def test_real_model_on_a_tiled_image(predictor, sample_root):
    image = _tissue_image(sample_root, 500, 600)
    seen = []
    original_pipeline = predictor.pipeline

    def spy(data):
        seen.append(data["img"].copy())
        return original_pipeline(data)

    tile_calls = []

    def counting(tile):
        tile_calls.append(tile.shape)
        out = predictor(tile)
        for crop in out.masks:  # tile coordinates
            assert 0 <= crop.x0 and crop.x1 <= tile.shape[1] and 0 <= crop.y0 and crop.y1 <= tile.shape[0]
        return out

    predictor.pipeline = spy
    try:
        result = run_tiled(image, counting, tile=256, overlap=64)
    finally:
        predictor.pipeline = original_pipeline
    tiles = tile_grid(500, 600, 256, 64)
    assert tile_calls == [(256, 256, 3)] * len(tiles) == [(256, 256, 3)] * 9
    # the model receives BGR, like cv2.imread output, from our RGB tiles
    assert np.array_equal(seen[0], image[:256, :256, ::-1])
    assert len(result) > 0 and (result.height, result.width) == (500, 600)
    assert set(result.labels.tolist()) == {0} and (result.scores >= 0.3).all()
    for crop in result.masks:
        assert crop.mask.any() and crop.x1 <= 600 and crop.y1 <= 500
        assert crop.mask.shape[0] <= 256 and crop.mask.shape[1] <= 256
    assert predictor.class_names == ("nucleus",)
    resizes = [t for t in predictor.pipeline.transforms if type(t).__name__ == "Resize"]
    assert len(resizes) == 1 and tuple(resizes[0].scale_factor) == (1.5, 1.5)


def test_the_package_level_loader_uses_the_calibrated_threshold(repo_root, tiny_checkpoint, tmp_path):
    """``nucleus_seg.inference.load_predictor`` (the lazy import) has the loader's defaults: no
    score_thr means the checkpoint's calibrated threshold, not a fixed 0.5."""
    import shutil

    from nucleus_seg.calibration import write_calibration

    ckpt = tmp_path / "calibrated.pth"
    shutil.copyfile(tiny_checkpoint, ckpt)
    write_calibration(ckpt, {"score_thr": 0.65, "n_images": 2})
    pred = load_predictor(repo_root / TINY_CONFIG, ckpt, "cpu", clean_up=False)
    assert pred.score_thr == 0.65 and "calibrated" in pred.threshold.source
    assert pred.clean_up is False


def test_class_count_mismatch_is_refused(repo_root, tmp_path):
    ckpt = _save_checkpoint(repo_root, tmp_path / "two_classes.pth", num_classes=2)
    with pytest.raises(InputError, match="class count does not match"):
        load_predictor(repo_root / TINY_CONFIG, ckpt, "cpu")


def test_missing_checkpoint_names_path_and_where_to_get_one(repo_root, tmp_path):
    with pytest.raises(InputError, match="checkpoint not found; train one with tools/train.py"):
        load_predictor(repo_root / TINY_CONFIG, tmp_path / "nope.pth", "cpu")


def test_cli_real_model_folder_with_a_bad_file(repo_root, sample_root, tiny_checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in sorted(sample_root.glob("test/*.png"))[:2]:
        (folder / p.name).write_bytes(p.read_bytes())  # 320 x 256 RGBA: 2 tiles each at tile 256
    (folder / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    # and a small Aperio-style slide: tissue in the middle of white glass, 0.25 um/px
    write_aperio(folder / "zz_slide.svs", make_mosaic(1024, 960, specks=0), mpp=0.25)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(repo_root / "tools/infer.py"), str(repo_root / TINY_CONFIG),
         str(tiny_checkpoint), str(folder), "--out", str(out), "--tile", "256", "--overlap", "64",
         "--format", "coco", "geojson", "labels", "overlay", "--no-progress", "--device", "cpu",
         "--max-per-img", "30", "--scale-factor", "1.0"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"error: {folder / 'zz_corrupt.png'}: cannot be decoded as an image" in proc.stdout
    assert "3 input(s) done, 1 failed" in proc.stdout
    names = sorted(p.name for p in folder.glob("*.png") if p.name != "zz_corrupt.png")
    for position, name in enumerate(names, start=1):
        result = out / name[:-4]
        labels = cv2.imread(str(result / "nuclei.labels.png"), cv2.IMREAD_UNCHANGED)
        assert labels.dtype == np.uint16 and labels.shape == (256, 320)
        doc = json.loads((result / "nuclei.geojson").read_text())
        assert doc["type"] == "FeatureCollection"
        assert (result / "overlay.png").is_file() and (result / "nuclei.parquet").is_file()
        summary = json.loads((result / "summary.json").read_text())
        assert summary["nuclei"] == len(doc["features"]) >= labels.max()  # masks may hide others
        assert summary["model"]["checkpoint"] == str(tiny_checkpoint.resolve())
        assert summary["settings"]["target_mpp"] == 0.25  # the config's nucleus_mpp
        results = json.loads((result / "coco_results.json").read_text())
        assert {r["image_id"] for r in results} <= {position}
        assert all(isinstance(r["segmentation"]["counts"], str) for r in results)
    summary = json.loads((out / "zz_slide" / "summary.json").read_text())
    assert summary["view"]["format"] == "aperio" and summary["view"]["mpp"] == 0.25
    assert summary["tiles"]["background"] > 0 and (out / "zz_slide" / "tissue.png").is_file()


def test_checkpoint_check_names_the_class_layer_and_unreadable_files(tmp_path):
    """The shape check itself, on a plain torch module (no mmdet needed)."""
    import torch

    from nucleus_seg.checkpoints import read_checkpoint
    from nucleus_seg.inference.predictor import _raise_for_mismatch

    class Head(torch.nn.Module):
        def __init__(self, classes):
            super().__init__()
            self.fc_cls = torch.nn.Linear(8, classes + 1)
            self.fc_reg = torch.nn.Linear(8, 4)

    model = Head(1)
    _raise_for_mismatch(model, Head(1).state_dict(), tmp_path / "c.pth", "cfg.py", 1)  # matches
    with pytest.raises(InputError, match=r"class count does not match the config cfg.py: layer "
                                         r"fc_cls.weight has 4 outputs in the checkpoint but 2"):
        _raise_for_mismatch(model, Head(3).state_dict(), tmp_path / "c.pth", "cfg.py", 1)
    partial = {k: v for k, v in Head(1).state_dict().items() if not k.startswith("fc_reg")}
    with pytest.raises(InputError, match="2 model parameters are missing from it"):
        _raise_for_mismatch(model, partial, tmp_path / "c.pth", "cfg.py", 1)

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"definitely not a pickle")
    with pytest.raises(InputError, match="junk.pth: not a readable PyTorch checkpoint"):
        read_checkpoint(junk)


def test_real_model_output_cut_into_tiles_and_merged_gives_the_whole_image_result(predictor,
                                                                                   sample_root):
    """The seam matcher on real, messy model output: ~400 overlapping, box-shaped predictions of
    the whole image, many wider than the overlap, answered per tile (cut to it) and merged,
    come back exactly."""
    image = _tissue_image(sample_root, 512, 640)
    rcnn = predictor.model.roi_head.test_cfg
    rcnn.max_per_img = 400  # more predictions for the one whole-image call
    predictor.clean_up = False  # the raw, overlapping output (the output clean-up would thin it)
    try:
        whole = predictor(image)
    finally:
        rcnn.max_per_img = 30
        predictor.clean_up = True
    assert len(whole) > 300
    for overlap in (48, 96):
        merged = run_tiled(image, ClippedPredictions(image, whole), tile=256, overlap=overlap)
        assert sorted((c.box, c.mask.tobytes()) for c in merged.masks) == \
            sorted((c.box, c.mask.tobytes()) for c in whole.masks)
