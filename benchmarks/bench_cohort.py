#!/usr/bin/env python
"""Cohort throughput on Ray vs the single-slide path in a plain loop (same slides, same model).

    flock /tmp/nucleus-bench.lock .venv/bin/python benchmarks/bench_cohort.py \
        [--slides 6] [--width 1536 --height 1152] [--checkpoint PATH] [--dir work_dirs/bench_cohort]

Cohort: ``--slides`` synthetic Aperio slides (0.25 um/px, DSB H&E tiles from the bundled sample in
the middle, white glass and dust around; tests/slides.py), written once into --dir. Model: the tiny
Mask R-CNN config with ``--checkpoint``, else random weights whose nucleus bias returns the full
1,000 detections per tile (the expensive case; bench_slide_stream.random_tiny_checkpoint). Settings
as tools/infer.py's defaults except tile 512 / overlap 96 / batch 2.

Three runs, each in a fresh child process on the machine's 2 CPUs:

- loop: the model loaded once, :func:`infer_slide` on each slide in turn (one reader process);
- ray-1: :func:`run_cohort` on an embedded Ray, one model actor holding both CPUs: the same work
  as the loop, so (ray-1 - loop) / slides is Ray's overhead per slide (actor start, the model
  loaded in the actor, tile reads through Ray tasks and its object store, scheduling);
- ray-2: two actors of one CPU each (the default on 2 CPUs): slides per hour.

Ray's own start-up (``ray.init``) is timed apart: it is paid once per cohort, not per slide.
Outputs of every run are compared with the loop's (nuclei.parquet bytes).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_slide_stream import TINY, random_tiny_checkpoint, run_child  # noqa: E402

TILE, OVERLAP, MPP = 512, 96, 0.25


def settings():
    from nucleus_seg.slide_inference import SlideSettings

    return SlideSettings(target_mpp=MPP, tile=TILE, overlap=OVERLAP, batch_size=2, workers=1,
                         progress=False)


def write_cohort(folder: Path, count: int, width: int, height: int) -> Path:
    import slides

    folder.mkdir(parents=True, exist_ok=True)
    tiles = slides.dsb_tiles()
    names = []
    for k in range(count):
        path = folder / f"slide{k:03d}.svs"
        if not path.exists():
            shift = k % len(tiles)  # each slide starts its mosaic at another DSB tile
            image = slides.make_mosaic(width, height, tiles=tiles[shift:] + tiles[:shift], seed=k)
            tmp = path.with_name(path.stem + ".partial.svs")
            slides.write_aperio(tmp, image, mpp=MPP)
            tmp.rename(path)
        names.append(path.name)
    manifest = folder / f"manifest_{count}.csv"
    manifest.write_text("slide\n" + "".join(n + "\n" for n in names))
    return manifest


def _digests(out: Path) -> dict:
    return {p.parent.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            for p in sorted(out.glob("*/nuclei.parquet"))}


def child_loop(manifest: str, checkpoint: str, out: str) -> dict:
    import torch

    from nucleus_seg.cohort import read_manifest
    from nucleus_seg.cohort.runner import ModelLoader
    from nucleus_seg.slide_inference import infer_slide

    torch.set_num_threads(2)
    started = time.perf_counter()
    predictor = ModelLoader(str(TINY), checkpoint, "cpu")()
    load = time.perf_counter() - started
    per_slide, nuclei, tiles = [], 0, 0
    for s in read_manifest(manifest)[0]:
        t = time.perf_counter()
        summary = infer_slide(s.path, predictor, Path(out) / s.name, settings())
        per_slide.append(time.perf_counter() - t)
        nuclei += summary.nuclei
        tiles += summary.tiles
    return {"model_load_s": load, "total_s": time.perf_counter() - started,
            "per_slide_s": per_slide, "nuclei": nuclei, "tiles": tiles, "digests": _digests(Path(out))}


def child_ray(manifest: str, checkpoint: str, out: str, actors: int) -> dict:
    from nucleus_seg.cohort import run_cohort
    from nucleus_seg.cohort.ray_engine import start_ray
    from nucleus_seg.cohort.runner import ModelLoader

    t = time.perf_counter()
    stop = start_ray(None, num_cpus=2)
    init = time.perf_counter() - t
    try:
        started = time.perf_counter()
        report = run_cohort(manifest, out, settings(), ModelLoader(str(TINY), checkpoint, "cpu"),
                            workers=actors, cpus_per_worker=2 / actors, progress=False)
        total = time.perf_counter() - started
    finally:
        stop()
    rows = report.rows
    return {"ray_init_s": init, "total_s": total, "per_slide_s": [r["seconds"] for r in rows],
            "failed": [r["error"] for r in rows if r["status"] == "failed"],
            "nuclei": sum(r["nuclei"] or 0 for r in rows), "digests": _digests(Path(out))}


def _child(*args) -> dict:
    return run_child(__file__, *args)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--slides", type=int, default=6)
    p.add_argument("--width", type=int, default=1536)
    p.add_argument("--height", type=int, default=1152)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--dir", default=str(ROOT / "work_dirs" / "bench_cohort"))
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--child-loop", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--child-ray", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_loop:
        print(json.dumps(child_loop(*args.child_loop)))
        return 0
    if args.child_ray:
        *rest, actors = args.child_ray
        print(json.dumps(child_ray(*rest, int(actors))))
        return 0

    folder = Path(args.dir)
    manifest = write_cohort(folder / "slides", args.slides, args.width, args.height)
    checkpoint = args.checkpoint or str(random_tiny_checkpoint(Path(tempfile.mkdtemp())))
    runs = folder / "runs"
    import shutil

    shutil.rmtree(runs, ignore_errors=True)  # a fresh run each time: nothing skipped
    n = args.slides
    loop = _child("--child-loop", manifest, checkpoint, runs / "loop")
    print(f"loop: {loop['total_s']:.1f} s for {n} slides ({loop['tiles']} tiles, {loop['nuclei']} "
          f"nuclei; model load {loop['model_load_s']:.1f} s)", flush=True)
    ray1 = _child("--child-ray", manifest, checkpoint, runs / "ray1", 1)
    print(f"ray-1: {ray1['total_s']:.1f} s (+ ray.init {ray1['ray_init_s']:.1f} s)", flush=True)
    ray2 = _child("--child-ray", manifest, checkpoint, runs / "ray2", 2)
    print(f"ray-2: {ray2['total_s']:.1f} s (+ ray.init {ray2['ray_init_s']:.1f} s)", flush=True)

    per_loop = loop["total_s"] / n
    overhead = (ray1["total_s"] - loop["total_s"]) / n
    print("\n| run | actors | seconds (excl. ray.init) | slides/hour | same outputs as loop |")
    print("|---|---|---|---|---|")
    for name, r, actors in (("loop", loop, "-"), ("ray-1", ray1, 1), ("ray-2", ray2, 2)):
        same = "yes" if r["digests"] == loop["digests"] else "NO"
        print(f"| {name} | {actors} | {r['total_s']:.1f} | {3600 * n / r['total_s']:.0f} | {same} |")
    print(f"\nRay overhead per slide (ray-1 - loop): {overhead:+.2f} s = {overhead / per_loop:+.1%} of "
          f"the loop's {per_loop:.1f} s per slide; ray.init {ray1['ray_init_s']:.1f} s once per run")
    if ray1["failed"] or ray2["failed"]:
        print(f"failed slides: {ray1['failed'] + ray2['failed']}")
    if args.json:
        from nucleus_seg.fileio import atomic_write_json

        atomic_write_json(args.json, {"slides": n, "size": [args.width, args.height],
                                      "loop": loop, "ray1": ray1, "ray2": ray2,
                                      "overhead_per_slide_s": overhead}, overwrite=True, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
