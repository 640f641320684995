"""Batch behaviour over files/folders/globs, and tools/infer.py's error handling."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from nucleus_seg.inference.batch import infer_files
from nucleus_seg.image_io import expand_inputs
from tests.standins import DarkBlobPredictor, disc_label_image


def _write_tissue(path, height, width, seed):
    """Pale background with dark discs, as a stand-in for H&E (the DarkBlobPredictor finds them)."""
    rng = np.random.default_rng(seed)
    discs = [(rng.uniform(0, height), rng.uniform(0, width), rng.uniform(5, 12)) for _ in range(30)]
    labels = disc_label_image(height, width, discs)
    image = np.full((height, width, 3), 220, np.uint8)
    image[labels > 0] = (60, 30, 90)
    cv2.imwrite(str(path), image)
    return labels


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    _write_tissue(d / "a.png", 300, 420, 1)
    _write_tissue(d / "c.tif", 200, 200, 2)
    (d / "b.png").write_bytes(b"not an image")
    (d / "notes.txt").write_text("ignored: not an image suffix")
    return d


def test_expand_inputs_takes_files_folders_and_globs_and_reports_misses(folder, tmp_path):
    files, problems = expand_inputs([str(folder), str(folder / "a.png"), str(folder / "*.tif"),
                                     str(tmp_path / "nope.png"), str(tmp_path / "*.jpg")])
    assert [f.name for f in files] == ["a.png", "b.png", "c.tif"]  # no duplicates, no .txt
    assert [p for p, _ in problems] == [str(tmp_path / "nope.png"), str(tmp_path / "*.jpg")]


def test_a_bad_file_in_a_folder_is_reported_and_the_others_are_done(folder, tmp_path):
    files, _ = expand_inputs([str(folder)])
    out = tmp_path / "out"
    report = infer_files(files, DarkBlobPredictor(), out, ["nucleus"],
                         formats=("coco", "geojson", "labels", "overlay"), tile=128, overlap=32,
                         progress=False)
    assert [s.path.name for s in report.done] == ["a.png", "c.tif"]
    assert len(report.failed) == 1 and report.failed[0][0].endswith("b.png")
    for stem in ("a", "c"):
        for suffix in (".geojson", ".labels.png", ".overlay.png"):
            assert (out / f"{stem}{suffix}").is_file()
    assert not list(out.glob("b.*"))
    images = json.loads((out / "coco_images.json").read_text())
    results = json.loads((out / "coco_results.json").read_text())
    assert [i["id"] for i in images["images"]] == [1, 3]  # ids = input positions, b.png (2) failed
    assert images["categories"] == [{"id": 1, "name": "nucleus", "supercategory": "nucleus"}]
    assert {r["image_id"] for r in results} == {1, 3}
    assert sum(s.nuclei for s in report.done) == len(results) > 0
    text = report.format()
    assert "a.png" in text and "error:" in text and "b.png" in text

    # a second run does not clobber: every image fails on its existing outputs
    with pytest.raises(Exception, match="already exists"):
        infer_files(files, DarkBlobPredictor(), out, ["nucleus"], tile=128, overlap=32,
                    progress=False)
    report = infer_files(files, DarkBlobPredictor(), out, ["nucleus"], formats=("geojson",),
                         tile=128, overlap=32, progress=False)
    assert report.done == [] and len(report.failed) == 3
    assert all("already exists" in problem or "cannot be decoded" in problem
               for _, problem in report.failed)


def test_same_stem_in_two_folders_is_refused_not_overwritten(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        _write_tissue(tmp_path / sub / "slide.png", 100, 100, 3)
    files, _ = expand_inputs([str(tmp_path / "x"), str(tmp_path / "y")])
    report = infer_files(files, DarkBlobPredictor(), tmp_path / "out", ["nucleus"],
                         formats=("geojson",), tile=64, overlap=16, progress=False)
    assert len(report.done) == 1 and "same file name stem" in report.failed[0][1]


def test_cli_missing_checkpoint_is_a_one_line_error(folder, tmp_path, repo_root):
    config = tmp_path / "cfg.py"
    config.write_text("model = dict()\n")
    proc = subprocess.run([sys.executable, str(repo_root / "tools/infer.py"), str(config),
                           str(tmp_path / "missing.pth"), str(folder), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'missing.pth'}: checkpoint not found")


def test_cli_no_readable_input_is_an_error(tmp_path, repo_root):
    proc = subprocess.run([sys.executable, str(repo_root / "tools/infer.py"), "c.py", "w.pth",
                           str(tmp_path / "nothing.png"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'nothing.png'}: file not found"
