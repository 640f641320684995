"""The CLIs as users run them: `python converters/x.py` from the repo root, exit codes, messages."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest


def run(repo_root, script, *args):
    return subprocess.run([sys.executable, f"converters/{script}", *map(str, args)], cwd=repo_root,
                          capture_output=True, text=True, timeout=120)


def test_mask2coco_split_validate_and_no_clobber(repo_root, sample_root, tmp_path):
    out = tmp_path / "coco"
    result = run(repo_root, "mask2coco.py", sample_root / "train", "--out-dir", out,
                 "--val-ratio", "0.25", "--seed", "0", "--validate", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "16 images, 730 annotations" in result.stdout
    before = (out / "instance_train.json").read_bytes()
    again = run(repo_root, "mask2coco.py", sample_root / "train", "--out-dir", out, "--val-ratio",
                "0.25", "--quiet")
    assert again.returncode == 2
    assert again.stderr == f"error: {out / 'instance_train.json'}: already exists; pass --overwrite to replace it\n"
    assert (out / "instance_train.json").read_bytes() == before

    valid = run(repo_root, "validate_coco.py", out / "instance_val.json", "--image-root", sample_root / "train")
    assert valid.returncode == 0 and valid.stdout.startswith("ok: ")


def test_validate_coco_reports_per_file_problems(repo_root, sample_root, tmp_path):
    out = tmp_path / "coco"
    assert run(repo_root, "mask2coco.py", sample_root / "train", "--out-dir", out, "--quiet").returncode == 0
    coco = json.loads((out / "instance_all.json").read_text())
    coco["annotations"] = coco["annotations"][1:]  # drop the first mask's annotation
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(coco))
    result = run(repo_root, "validate_coco.py", bad, "--image-root", sample_root / "train")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    first_mask = sorted((sample_root / "train" / coco["images"][0]["file_name"].split("/")[0] / "masks").iterdir())[0]
    assert lines[0] == f"problem: {first_mask}: no annotation in {bad} reproduces this mask"
    assert lines[-1] == f"error: {bad}: validation failed: {first_mask}: no annotation in {bad} reproduces this mask"


def test_images2coco_cli_and_size_error(repo_root, dsb_root, tmp_path):
    out = tmp_path / "test.json"
    ok = run(repo_root, "images2coco.py", dsb_root / "test", "--ids", dsb_root / "test_img_ids.json",
             "--out", out)
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads(out.read_text())["images"]) == 30
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((4, 5, 3), np.uint8))
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps([{"file_name": "a.png", "id": 3, "height": 5, "width": 4}]))
    bad = run(repo_root, "images2coco.py", folder, "--ids", ids, "--out", tmp_path / "x.json")
    assert bad.returncode == 2
    assert bad.stderr == f"error: {folder / 'a.png'}: image is 5x4 but {ids} lists it as 4x5\n"
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("script, args, problem", [
    ("mask2coco.py", ["--out-dir", "{tmp}/o"], "{missing}: not a folder"),
    ("pannuke2coco.py", ["--out-dir", "{tmp}/o"], "{missing}: not a folder"),
    ("validate_coco.py", [], "{missing}: file not found"),
])
def test_missing_inputs_exit_2_with_one_line(repo_root, tmp_path, script, args, problem):
    missing = tmp_path / "nope"
    result = run(repo_root, script, missing, *[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 2
    assert result.stderr == "error: " + problem.format(missing=missing) + "\n"
