"""Batch behaviour over files/folders/globs (one output folder per input), and tools/infer.py's
error handling."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from nucleus_seg.inference.batch import SLIDE_SUFFIXES, infer_inputs, slide_name
from nucleus_seg.image_io import IMAGE_EXTENSIONS, expand_inputs
from nucleus_seg.slide_inference import SlideSettings
from tests.standins import DarkBlobPredictor, disc_label_image

QUICK = SlideSettings(tile=128, overlap=32, workers=0, progress=False)


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
    (folder / "s.svs").write_bytes(b"")
    files, problems = expand_inputs([str(folder), str(folder / "a.png"), str(folder / "*.tif"),
                                     str(tmp_path / "nope.png"), str(tmp_path / "*.jpg")],
                                    IMAGE_EXTENSIONS + SLIDE_SUFFIXES)
    assert [f.name for f in files] == ["a.png", "b.png", "c.tif", "s.svs"]  # no duplicates, no .txt
    assert [p for p, _ in problems] == [str(tmp_path / "nope.png"), str(tmp_path / "*.jpg")]
    assert slide_name(folder / "x.ome.tiff") == "x" and slide_name(folder / "x.svs") == "x"


def test_a_bad_file_in_a_folder_is_reported_and_the_others_are_done(folder, tmp_path):
    files, _ = expand_inputs([str(folder)])
    out = tmp_path / "out"
    settings = SlideSettings(tile=128, overlap=32, workers=0, progress=False,
                             extras=("labels", "overlay", "coco"))
    report = infer_inputs(files, DarkBlobPredictor(), out, settings)
    assert [s.slide for s in report.done] == [str(folder / "a.png"), str(folder / "c.tif")]
    assert len(report.failed) == 1 and report.failed[0][0].endswith("b.png")
    for name, (h, w) in (("a", (300, 420)), ("c", (200, 200))):
        for f in ("nuclei.geojson", "nuclei.parquet", "summary.json", "qc.png", "overlay.png"):
            assert (out / name / f).is_file(), f
        labels = cv2.imread(str(out / name / "nuclei.labels.png"), cv2.IMREAD_UNCHANGED)
        assert labels.dtype == np.uint16 and labels.shape == (h, w)
        assert not (out / name / ".partial").exists()
    assert not (out / "b").exists()
    summary = json.loads((out / "a" / "summary.json").read_text())
    results = json.loads((out / "c" / "coco_results.json").read_text())
    assert {r["image_id"] for r in results} == {3}  # ids = input positions, b.png (2) failed
    assert summary["nuclei"] == len(json.loads((out / "a" / "nuclei.geojson").read_text())["features"])
    assert summary["view"]["mpp"] is None and summary["view"]["resampling"] == "none"
    text = report.format()
    assert "a.png" in text and "error:" in text and "b.png" in text and "2 input(s) done" in text

    # a second run skips what is finished and writes nothing
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    report = infer_inputs(files, DarkBlobPredictor(), out, settings)
    assert [s.skipped for s in report.done] == [True, True] and len(report.failed) == 1
    assert "finished before: skipped" in report.format()
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_outputs_in_the_way_are_not_replaced_without_overwrite(tmp_path):
    _write_tissue(tmp_path / "s.png", 100, 100, 3)
    out = tmp_path / "out"
    (out / "s").mkdir(parents=True)
    (out / "s" / "nuclei.geojson").write_text("the user's own file")
    report = infer_inputs([tmp_path / "s.png"], DarkBlobPredictor(), out, QUICK)
    assert report.done == [] and "already exists; pass --overwrite" in report.failed[0][1]
    assert (out / "s" / "nuclei.geojson").read_text() == "the user's own file"
    report = infer_inputs([tmp_path / "s.png"], DarkBlobPredictor(), out,
                          SlideSettings(tile=128, overlap=32, workers=0, progress=False,
                                        overwrite=True))
    assert len(report.done) == 1
    assert json.loads((out / "s" / "nuclei.geojson").read_text())["type"] == "FeatureCollection"


def test_same_name_in_two_folders_is_refused_not_overwritten(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        _write_tissue(tmp_path / sub / "slide.png", 100, 100, 3)
    files, _ = expand_inputs([str(tmp_path / "x"), str(tmp_path / "y")])
    report = infer_inputs(files, DarkBlobPredictor(), tmp_path / "out", QUICK)
    assert len(report.done) == 1 and "same name as" in report.failed[0][1]


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


def test_a_run_stopped_while_assembling_image_extras_predicts_the_image_again(tmp_path,
                                                                            monkeypatch):
    """The label image, overlay and COCO results are built from nuclei held in memory, which a
    new run does not have: it predicts the (single) region again instead of writing them empty."""
    import nucleus_seg.slide_inference as si

    _write_tissue(tmp_path / "s.png", 200, 260, 4)
    settings = SlideSettings(tile=128, overlap=32, workers=0, progress=False,
                             extras=("labels", "coco"))
    fresh = si.infer_slide(tmp_path / "s.png", DarkBlobPredictor(), tmp_path / "fresh", settings)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(si, "_assemble", crash)
        with pytest.raises(KeyboardInterrupt):
            si.infer_slide(tmp_path / "s.png", DarkBlobPredictor(), tmp_path / "o", settings)
    journal = json.loads((tmp_path / "o" / ".partial" / "journal.json").read_text())
    assert journal["stage"] == "assemble"
    again = si.infer_slide(tmp_path / "s.png", DarkBlobPredictor(), tmp_path / "o", settings)
    assert again.nuclei == fresh.nuclei > 0
    for name in ("nuclei.labels.png", "coco_results.json", "nuclei.parquet", "nuclei.geojson"):
        assert (tmp_path / "o" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes()
