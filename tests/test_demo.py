"""The README's first command: the demo runs end to end on the bundled sample and is idempotent."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_demo_runs_end_to_end_then_skips_everything_on_a_second_run(sample_root, tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "tools/demo.py", "--out", str(out), "--time-budget", "10"]
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for name in ("val_metrics.json", "val.segm.json", "test.segm.json", "test.bbox.json", "answer.zip"):
        assert (out / name).is_file(), name
    ids = {e["id"] for e in json.loads((sample_root / "test_img_ids.json").read_text())}
    with zipfile.ZipFile(out / "answer.zip") as z:
        answer = json.loads(z.read("answer.json"))
    assert {r["image_id"] for r in answer} <= ids
    assert len(list((out / "overlays_val").glob("*.png"))) == 4  # 16 tiles, 25 % validation
    assert len(list((out / "infer").glob("*/nuclei.geojson"))) == len(ids)
    assert "segm AP (maxDets 1000)" in first.stdout and "segm AP (maxDets 100)" in first.stdout
    assert "instance metrics: label maps" in first.stdout and "answer.zip" in first.stdout

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "   $ " not in second.stdout  # no step ran again
    assert second.stdout.count("done already") == 7
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
