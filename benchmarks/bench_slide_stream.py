#!/usr/bin/env python
"""Streaming slide inference: peak memory on 0.25 / 1 / 4 gigapixel slides, and the pipeline's
overhead next to the tiny model's time on the same slide.

    flock /tmp/nucleus-bench.lock .venv/bin/python benchmarks/bench_slide_stream.py \
        [--sizes 0.25 1 4] [--workers 2] [--batch-size 4] [--model-tiles 12] \
        [--checkpoint work_dirs/seam_model/train/iter_N.pth] [--dir work_dirs/bench_slides]

Slides: Aperio-style JPEG pyramids (0.25 um/px, 512 px TIFF tiles, DSB H&E inside an ellipse,
white glass around) written tile by tile by ``tests/slides.py:write_large_slide`` into --dir once
(the same files as benchmarks/bench_slide_read.py).

Each slide runs :func:`nucleus_seg.slide_inference.infer_slide` in a fresh child process at the
tiny config's 0.25 um/px (level 0), tile 512, overlap 96, with a zero-cost stand-in predictor that
returns the same precomputed lattice of 7 px-radius nuclei every 32 px for every tile (256 per full
tile, denser than H&E at 0.25 um/px), so reading, tissue detection, tiling, seam matching and
writing all run at full load while the "model" costs nothing. Reported: peak RSS of the main
process (VmHWM) and of the largest reader process, wall time, tissue megapixels per second
(predicted tiles' area, counting each overlap once: tiles x step^2).

The model's time: the tiny Mask R-CNN (``--checkpoint``, else random weights with the predictor's
bias trick so it returns its full 1,000 detections per tile, the expensive case) predicts
``--model-tiles`` tissue tiles of the 0.25 GP slide in batches; seconds per tile x the slide's
predicted tiles estimates the model's time on that slide (the whole slide on CPU would take hours).
Overhead share = stand-in pipeline time / model time.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_slide_read import _rss_mb as _status_mb  # noqa: E402  (VmRSS / VmHWM of this process)

TILE, OVERLAP, MPP = 512, 96, 0.25
TINY = ROOT / "configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py"


class LatticePredictor:
    """Zero-cost stand-in: the same precomputed nuclei (a lattice) for every tile."""

    class_names = ("nucleus",)

    def __init__(self, spacing: int = 32, radius: int = 7):
        self.spacing, self.radius = spacing, radius
        self._cache = {}

    def describe(self) -> dict:
        return {"predictor": "LatticePredictor", "spacing": self.spacing, "radius": self.radius}

    def _instances(self, h: int, w: int):
        import numpy as np

        from nucleus_seg.geometry import MaskCrop
        from nucleus_seg.inference import Instances

        r = self.radius
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        disc = xx * xx + yy * yy <= r * r
        crops = [MaskCrop(x - r, y - r, disc)
                 for y in range(self.spacing // 2, h - r, self.spacing)
                 for x in range(self.spacing // 2, w - r, self.spacing)]
        scores = np.linspace(0.99, 0.6, len(crops))
        return Instances(scores, np.zeros(len(crops)), crops, None, h, w)

    def __call__(self, tile):
        key = tile.shape[:2]
        if key not in self._cache:
            self._cache[key] = self._instances(*key)
        return self._cache[key]

    def predict_batch(self, tiles):
        return [self(t) for t in tiles]


def child_stream(path: str, workers: int, batch_size: int) -> dict:
    from nucleus_seg.slide_inference import SlideSettings, infer_slide

    with tempfile.TemporaryDirectory(dir=ROOT / "work_dirs") as out:
        rss_start = _status_mb("VmRSS")
        t = time.perf_counter()
        summary = infer_slide(path, LatticePredictor(), Path(out) / "slide",
                              SlideSettings(target_mpp=MPP, tile=TILE, overlap=OVERLAP,
                                            workers=workers, batch_size=batch_size,
                                            progress=False))
        seconds = time.perf_counter() - t
        sizes = {p.name: p.stat().st_size for p in (Path(out) / "slide").iterdir()}
    step = TILE - OVERLAP
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"seconds": seconds,
            "cpu_main_s": own.ru_utime + own.ru_stime, "cpu_readers_s": kids.ru_utime + kids.ru_stime, "tiles": summary.tiles, "tiles_total": summary.tiles_total,
            "nuclei": summary.nuclei, "tissue_mp": summary.tiles * step * step / 1e6,
            "tissue_mm2": summary.tissue_area_mm2, "rss_start_mb": rss_start,
            "rss_peak_mb": _status_mb("VmHWM"),
            "workers_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "output_bytes": sizes}


def random_tiny_checkpoint(folder: Path) -> Path:
    """The tiny config with random weights that still return max_per_img detections per tile
    (the nucleus class's bias raised: the expensive case), saved as ``folder/random.pth``."""
    import torch
    from mmdet.apis import init_detector
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint

    model = init_detector(Config.fromfile(str(TINY)), None, device="cpu")
    with torch.no_grad():
        model.roi_head.bbox_head.fc_cls.bias[:1] = 8.0
    checkpoint = Path(folder) / "random.pth"
    save_checkpoint({"state_dict": model.state_dict()}, str(checkpoint))
    return checkpoint


def child_model(path: str, tiles: int, batch_size: int, checkpoint) -> dict:
    import numpy as np
    import torch

    from nucleus_seg.inference import load_predictor
    from nucleus_seg.inference.engine import planned_tiles
    from nucleus_seg.inference.tiling import TileGrid
    from nucleus_seg.slide import ResampledView, open_slide, tissue_mask

    torch.set_num_threads(2)
    if checkpoint is None:
        checkpoint = random_tiny_checkpoint(Path(tempfile.mkdtemp()))
    predictor = load_predictor(TINY, checkpoint, "cpu")
    reader = open_slide(path)
    view = ResampledView(reader, MPP)
    tissue = tissue_mask(reader)
    grid = TileGrid(view.height, view.width, TILE, OVERLAP)

    def keep(t):
        (x0, y0), (x1, y1) = view.to_slide(np.array([[t.x0, t.y0], [t.x1, t.y1]]))
        return tissue.fraction(x0, y0, x1, y1) >= 0.5  # well inside the tissue

    chosen = []
    for t in planned_tiles(grid, keep):
        chosen.append(t)
        if len(chosen) == tiles + batch_size:
            break
    images = [view.read(t.x0, t.y0, t.x1 - t.x0, t.y1 - t.y0) for t in chosen]
    predictor.predict_batch(images[:batch_size])  # warm-up
    images = images[batch_size:]
    t = time.perf_counter()
    found = 0
    for i in range(0, len(images), batch_size):
        found += sum(len(r) for r in predictor.predict_batch(images[i:i + batch_size]))
    seconds = time.perf_counter() - t
    return {"seconds_per_tile": seconds / len(images), "tiles": len(images),
            "nuclei_per_tile": found / len(images), "checkpoint": str(checkpoint)}


def run_child(script, *args) -> dict:
    """Run ``script`` with ``args`` in a fresh Python; the JSON on its last stdout line."""
    out = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True,
                         text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child(*args) -> dict:
    return run_child(__file__, *args)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=float, nargs="+", default=[0.25, 1.0, 4.0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--model-tiles", type=int, default=12, help="0: skip the model timing")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--dir", default=str(ROOT / "work_dirs" / "bench_slides"))
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--child-stream", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--child-model", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_stream:
        path, workers, batch = args.child_stream
        print(json.dumps(child_stream(path, int(workers), int(batch))))
        return 0
    if args.child_model:
        path, tiles, batch, ckpt = args.child_model
        print(json.dumps(child_model(path, int(tiles), int(batch), None if ckpt == "-" else ckpt)))
        return 0

    import slides

    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    (ROOT / "work_dirs").mkdir(exist_ok=True)
    rows = []
    for gp in args.sizes:
        path = folder / f"synthetic_{gp:g}gp.svs"
        if not path.exists():
            tmp = path.with_suffix(".partial.svs")
            slides.write_large_slide(tmp, gp, kind="aperio")
            tmp.rename(path)
        r = _child("--child-stream", path, args.workers, args.batch_size)
        r.update(gigapixels=gp, slide=path.name)
        rows.append(r)
        print(f"{path.name}: {r['tiles']}/{r['tiles_total']} tiles, {r['nuclei']} nuclei, "
              f"{r['seconds']:.1f} s (CPU: main {r['cpu_main_s']:.1f} s, readers "
              f"{r['cpu_readers_s']:.1f} s), {r['tissue_mp'] / r['seconds']:.1f} tissue MP/s, peak RSS "
              f"{r['rss_peak_mb']:.0f} MB (+ reader {r['workers_peak_mb']:.0f} MB)", flush=True)
    model = None
    if args.model_tiles:
        model = _child("--child-model", folder / f"synthetic_{args.sizes[0]:g}gp.svs",
                       args.model_tiles, args.batch_size, args.checkpoint or "-")
        print(f"tiny model: {model['seconds_per_tile']:.2f} s per {TILE}px tile "
              f"({model['nuclei_per_tile']:.0f} nuclei per tile)", flush=True)

    print(f"\n| slide | tissue tiles / grid | nuclei | seconds | tissue MP/s | peak RSS main | "
          f"peak RSS reader | model s (est.) | overhead share |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        est = model["seconds_per_tile"] * r["tiles"] if model else None
        share = f"{r['seconds'] / est:.1%}" if est else "-"
        print(f"| {r['gigapixels']:g} GP | {r['tiles']} / {r['tiles_total']} | {r['nuclei']} | "
              f"{r['seconds']:.1f} | {r['tissue_mp'] / r['seconds']:.1f} | "
              f"{r['rss_peak_mb']:.0f} MB | {r['workers_peak_mb']:.0f} MB | "
              f"{f'{est:.0f}' if est else '-'} | {share} |")
    peaks = [r["rss_peak_mb"] for r in rows]
    print(f"\npeak RSS spread: {max(peaks) / min(peaks) - 1:.1%} (main process)")
    if args.json:
        from nucleus_seg.fileio import atomic_write_json

        atomic_write_json(args.json, {"streams": rows, "model": model}, overwrite=True, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
