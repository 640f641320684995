"""Cohorts (issue 11): the manifest, shards, and the Ray engine end to end on a real local Ray.

One module-scoped Ray (2 CPUs) serves every Ray test; the other tests here never start it. Three
small synthetic Aperio slides with colour-coded nuclei (the ColourCodedPredictor stand-in reads
them back exactly), one slide with a corrupt tile (its Ray reading task fails mid-slide) and bad
manifest rows; one model worker is SIGKILLed
mid-slide. Outputs must equal the single-slide path's, and two shards must equal the full run.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from nucleus_seg.cohort import Shard, read_manifest, run_cohort, slide_jobs
from nucleus_seg.cohort.runner import CohortProgress, summary_csv_name
from nucleus_seg.errors import InputError
from nucleus_seg.slide_inference import SlideSettings, infer_slide
from slides import write_aperio, write_corrupt_tile
from tests.standins import ColourCodedPredictor, PausingColourPredictor, colour_slide

REPO = Path(__file__).resolve().parents[1]
SETTINGS = SlideSettings(tile=256, overlap=64, target_mpp=0.25, batch_size=2, workers=0,
                         progress=False)
W, H = 1152, 896
TISSUE = (220, 200, 720, 500)
PAUSE_AFTER = 9  # the first worker waits to be killed on its 9th tile: in row 1 (rows of 6 tiles)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Three slides, one whose level 0 is corrupt two thirds down, and a manifest with bad rows (missing file, duplicate slide,
    bad MPP)."""
    folder = tmp_path_factory.mktemp("cohort")
    slides = []
    for k in range(3):
        image, _, _ = colour_slide(W, H, TISSUE, seed=k)
        slides.append(write_aperio(folder / f"s{k}.svs", image, mpp=0.25))
    write_corrupt_tile(slides[0], folder / "broken.svs")
    shutil.copy(slides[1], folder / "copy.svs")
    manifest = folder / "manifest.csv"
    manifest.write_text("slide,mpp\n"          # line 1
                        "s0.svs,\n"            # 2
                        "s1.svs,0.25\n"        # 3
                        "broken.svs,\n"        # 4 (after two good slides: the killed worker has one)
                        "missing.svs,\n"       # 5
                        "s0.svs,\n"            # 6 duplicate of line 2
                        "copy.svs,-0.5\n"      # 7 bad MPP
                        "s2.svs,\n")           # 8
    return dict(folder=folder, slides=slides, manifest=manifest)


# -- no Ray ------------------------------------------------------------------------------------

def test_manifest_rows_are_checked_one_line_each(cohort):
    slides, problems, rows = read_manifest(cohort["manifest"])
    assert rows == 7
    assert [(s.line, s.path.name, s.name, s.mpp) for s in slides] == [
        (2, "s0.svs", "s0", None), (3, "s1.svs", "s1", 0.25), (4, "broken.svs", "broken", None),
        (8, "s2.svs", "s2", None)]
    assert [(line, Path(path).name) for line, path, _ in problems] == [
        (5, "missing.svs"), (6, "s0.svs"), (7, "copy.svs")]
    missing, duplicate, mpp = (problem for _, _, problem in problems)
    where = f"{cohort['manifest']}:"
    assert missing == f"{where}5: no such file"
    assert duplicate.startswith(f"{where}6: duplicate of line 2")
    assert mpp.startswith(f"{where}7: mpp '-0.5' is not a positive number")


def test_shards_split_the_manifest_rows_and_agree_on_duplicates(cohort):
    a, pa, _ = read_manifest(cohort["manifest"], Shard(0, 2))
    b, pb, _ = read_manifest(cohort["manifest"], Shard(1, 2))
    assert [s.line for s in a] == [2, 4, 8] and [s.line for s in b] == [3]
    assert [line for line, _, _ in pa] == [6] and [line for line, _, _ in pb] == [5, 7]
    assert Shard.parse("1/4") == Shard(1, 4)
    for bad in ("4/4", "1", "a/b", "0/0", "-1/2"):
        with pytest.raises(ValueError):
            Shard.parse(bad)


def test_a_manifest_without_a_slide_column_or_with_an_unknown_one_is_an_error(tmp_path):
    m = tmp_path / "m.csv"
    for text, words in (("path\na.svs\n", "header with a 'slide' column"),
                        ("slide,tisue\na.svs,x\n", "unknown column(s) ['tisue']"),
                        ("# nothing\n\n", "empty")):
        m.write_text(text)
        with pytest.raises(InputError) as info:
            read_manifest(m)
        assert info.value.path == str(m) and words in info.value.problem
    with pytest.raises(InputError, match="manifest not found"):
        read_manifest(tmp_path / "none.csv")


def test_progress_line_counts_and_eta():
    out = io.StringIO()
    bar = CohortProgress(4, out)
    bar.running = 2
    bar.finished({"status": "done", "nuclei": 1200})
    bar.finished({"status": "failed", "nuclei": None})
    bar.finished({"status": "skipped", "nuclei": 30})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("cohort: 1/4 done, 0 failed, 2 running, 1,200 nuclei")
    assert lines[-1].startswith("cohort: 2/4 done, 1 failed, 2 running, 1,230 nuclei")
    assert "ETA 0:00:0" in lines[-1]  # one slide processed, one left


def test_cli_bad_arguments_and_missing_checkpoint_fail_before_ray_starts(cohort, tmp_path):
    tool = [sys.executable, str(REPO / "tools/infer_cohort.py")]
    config = REPO / "configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py"
    proc = subprocess.run(tool + [str(config), str(tmp_path / "w.pth"), str(cohort["manifest"]),
                                  "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'w.pth'}: checkpoint not found"
    assert not (tmp_path / "o").exists()
    proc = subprocess.run(tool + ["c.py", "w.pth", "m.csv", "--out", "o", "--shard", "2/2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--shard i/N needs 0 <= i < N" in proc.stderr


def test_the_plain_loop_engine_writes_the_single_slide_folders(cohort, tmp_path):
    out = tmp_path / "local"
    report = run_cohort(cohort["manifest"], out, SETTINGS, ColourCodedPredictor,
                        shard=Shard(0, 2), engine="local", progress=False)
    assert [(r["line"], r["status"]) for r in report.rows] == [
        (2, "done"), (4, "failed"), (6, "failed"), (8, "done")]
    assert sorted(p.name for p in out.iterdir()) == [
        "broken", "cohort_summary.shard-0-of-2.csv", "s0", "s2"]
    job = slide_jobs(read_manifest(cohort["manifest"])[0], tmp_path / "ref", SETTINGS)[-1]
    infer_slide(job.slide.path, ColourCodedPredictor(), job.out_dir, job.settings)
    _assert_same_slide_outputs(job.out_dir, out / "s2")


# -- helpers ------------------------------------------------------------------------------------

def _content(folder: Path) -> dict:
    """Every file of a slide folder; summary.json without timings and the run history."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            if p.name == "summary.json":
                doc = json.loads(p.read_text())
                doc.pop("seconds"), doc.pop("runs")
                out[p.name] = doc
            else:
                out[str(p.relative_to(folder))] = p.read_bytes()
    return out


def _assert_same_slide_outputs(a: Path, b: Path):
    ca, cb = _content(a), _content(b)
    assert sorted(ca) == sorted(cb)
    for name in ca:
        assert ca[name] == cb[name], name


# -- one local Ray for the rest -----------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_local():
    """Ray on this machine, 2 CPUs, started once for this module; workers import tests.standins."""
    pytest.importorskip("ray")
    from nucleus_seg.cohort.ray_engine import start_ray

    old = os.environ.get("PYTHONPATH")
    # the raylet's worker processes inherit this: they unpickle the stand-in from tests.standins
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests")] +
                                               ([old] if old else []))
    stop = start_ray(None, num_cpus=2)
    yield
    stop()
    if old is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = old


def _kill_when_paused(marker: Path, killed: list, timeout: float = 120.0):
    """SIGKILL the worker process whose predictor wrote its pid to ``marker``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = marker.read_text() if marker.exists() else ""
        if text.isdigit():
            os.kill(int(text), 9)
            killed.append(int(text))
            return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def full_run(ray_local, cohort, tmp_path_factory):
    """The whole manifest on Ray with two model workers; the first one to reach its 7th tile is
    killed mid-slide (after it committed the first tile row)."""
    base = tmp_path_factory.mktemp("ray")
    marker = base / "paused.pid"
    killed = []
    killer = threading.Thread(target=_kill_when_paused, args=(marker, killed), daemon=True)
    killer.start()
    stream = io.StringIO()
    report = run_cohort(cohort["manifest"], base / "out", SETTINGS,
                        partial(PausingColourPredictor, marker, PAUSE_AFTER), workers=2,
                        stream=stream)
    killer.join(5)
    return dict(report=report, out=base / "out", killed=killed, progress=stream.getvalue())


def test_ray_cohort_survives_a_killed_worker_and_a_corrupt_slide(full_run, cohort, tmp_path):
    report, out = full_run["report"], full_run["out"]
    assert full_run["killed"], "no worker paused to be killed"
    rows = {r["line"]: r for r in report.rows}
    assert [r["line"] for r in report.rows] == [2, 3, 4, 5, 6, 7, 8]
    assert {line: r["status"] for line, r in rows.items()} == {
        2: "done", 3: "done", 4: "failed", 5: "failed", 6: "failed", 7: "failed", 8: "done"}
    assert rows[4]["error"].startswith("cannot read level 0 at (576, 384)"), rows[4]["error"]
    assert rows[4]["attempts"] == 1  # bad input is not retried
    # the killed worker's slide was tried again and resumed after its committed regions
    retried = [r for r in report.rows if r["status"] == "done" and r["attempts"] == 2]
    assert len(retried) == 1 and retried[0]["resumed_at_row"] == 1
    summary = json.loads((Path(retried[0]["folder"]) / "summary.json").read_text())
    runs = summary["runs"]
    assert len(runs) == 2 and runs[0]["tiles"] + runs[1]["tiles"] == summary["tiles"]["predicted"]
    assert PAUSE_AFTER - 1 - runs[0]["tiles"] <= summary["tiles"]["columns"]  # at most one region
    # each slide's folder is what the single-slide path writes
    for job in slide_jobs(read_manifest(cohort["manifest"])[0], tmp_path, SETTINGS):
        if job.slide.name == "broken":
            continue
        infer_slide(job.slide.path, ColourCodedPredictor(), job.out_dir, job.settings)
        _assert_same_slide_outputs(job.out_dir, out / job.slide.name)
    assert sorted(p.name for p in out.iterdir()) == ["broken", "cohort_summary.csv", "s0", "s1",
                                                     "s2"]
    assert [p.name for p in (out / "broken").iterdir()] == [".partial"]  # nothing half-written
    csv_lines = (out / "cohort_summary.csv").read_text().splitlines()
    assert csv_lines[0].startswith("line,slide,folder,status,nuclei") and len(csv_lines) == 8
    table = report.table()
    assert "3 slide(s) done, 0 finished before (skipped), 4 failed" in table
    assert sum(line.startswith("error: ") for line in table.splitlines()) == 4
    last = full_run["progress"].splitlines()[-1]
    nuclei = sum(r["nuclei"] for r in report.rows if r["nuclei"])
    assert last.startswith(f"cohort: 3/7 done, 4 failed, 0 running, {nuclei:,} nuclei")


def test_rerunning_the_cohort_skips_finished_slides(full_run, cohort):
    out = full_run["out"]
    finished = [p for name in ("s0", "s1", "s2") for p in (out / name).rglob("*")]
    before = {p: p.stat().st_mtime_ns for p in finished}
    report = run_cohort(cohort["manifest"], out, SETTINGS, ColourCodedPredictor, workers=2,
                        progress=False)
    assert [r["status"] for r in report.rows] == ["skipped", "skipped", "failed", "failed",
                                                  "failed", "failed", "skipped"]
    first = {r["line"]: r for r in full_run["report"].rows}
    assert all(r["nuclei"] == first[r["line"]]["nuclei"] for r in report.rows)
    assert {p: p.stat().st_mtime_ns for p in finished} == before  # the failed one is tried again


def test_two_shards_together_equal_the_full_run(full_run, cohort, tmp_path):
    out = tmp_path / "sharded"
    for i in range(2):
        report = run_cohort(cohort["manifest"], out, SETTINGS, ColourCodedPredictor,
                            shard=Shard(i, 2), workers=2, progress=False)
        assert all(r["line"] % 2 == i for r in report.rows)  # lines 2.. are rows 0..
    full = full_run["out"]
    for name in ("s0", "s1", "s2"):
        _assert_same_slide_outputs(full / name, out / name)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["broken", "s0", "s1", "s2", summary_csv_name(Shard(0, 2)), summary_csv_name(Shard(1, 2))])


def test_a_model_that_cannot_load_stops_the_run_with_one_line(ray_local, cohort, tmp_path):
    with pytest.raises(InputError, match="the model workers could not start: ValueError: invalid "):
        run_cohort(cohort["manifest"], tmp_path / "o", SETTINGS, partial(int, "no model"),
                   workers=1, progress=False)
