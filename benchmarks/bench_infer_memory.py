#!/usr/bin/env python
"""Peak memory of tiled inference vs. image size: it should grow with the image, not per nucleus.

    python benchmarks/bench_infer_memory.py [--sizes 2048 4096 8192] [--tile 512] [--overlap 96]
    python benchmarks/bench_infer_memory.py --sizes 1024 --config CFG --checkpoint PTH   # real model

Each size runs in a fresh child process (peak RSS only ever grows within a process). The child makes
a synthetic H&E-like RGB image (pale background, dark nuclei of 10-24 px every ~32 px, so the
nucleus count grows with the area), records its peak RSS once the image exists (``base``: Python +
libraries + the image), then runs ``run_tiled`` and the exports (COCO RLE, GeoJSON, 16-bit label
image) and records the peak again. Predictor: the classic-CV stand-in ``DarkBlobPredictor`` by
default (no model, runs anywhere), or a real model with --config/--checkpoint.

Columns: image MB (the RGB array), nuclei, crops MB (all masks as crops: the output itself),
peak RSS after the image, peak RSS after tiling (+ delta), peak after exports (+ delta). The label
export allocates one uint16 image-sized array (2 bytes/px), the COCO/GeoJSON exports hold their
text in memory until written.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _synthetic_tissue(size: int, spacing: int = 32, seed: int = 0):
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), (235, 215, 230), np.uint8)  # pale eosin-ish background
    if spacing <= 0:  # background only: isolates the per-pixel cost
        return image
    step = spacing
    for y in range(step // 2, size, step):
        for x in range(step // 2, size, step):
            r = int(rng.integers(5, 12))
            c = (int(x + rng.integers(-6, 7)), int(y + rng.integers(-6, 7)))
            cv2.circle(image, c, r, (70, 40, 110), -1)  # dark haematoxylin nucleus
    return image


def child(size: int, tile: int, overlap: int, config, checkpoint, spacing: int) -> dict:
    import gc

    from nucleus_seg.inference import export_geojson, export_label_image, run_tiled
    from nucleus_seg.inference.export import coco_results_json, export_coco_parts
    from tests.standins import DarkBlobPredictor

    if config:
        from nucleus_seg.inference import load_predictor
        predictor = load_predictor(config, checkpoint, "cpu")
        names = predictor.class_names
    else:
        predictor, names = DarkBlobPredictor(), ["nucleus"]
    image = _synthetic_tissue(size, spacing)
    gc.collect()
    base = _peak_rss_mb()
    start = time.perf_counter()
    instances = run_tiled(image, predictor, tile, overlap)
    tiled_s = time.perf_counter() - start
    after_tiling = _peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        export_coco_parts(Path(tmp) / "coco.json", [coco_results_json(instances, 1)])
        export_geojson(Path(tmp) / "x.geojson", instances, names)
        export_label_image(Path(tmp) / "x", instances)
    after_exports = _peak_rss_mb()
    return {"size": size, "image_mb": image.nbytes / 2**20, "nuclei": len(instances),
            "crops_mb": instances.crop_bytes() / 2**20, "base_mb": base,
            "tiled_mb": after_tiling, "exports_mb": after_exports, "tiled_s": tiled_s}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=96)
    p.add_argument("--spacing", type=int, default=32,
                   help="one nucleus per SPACING x SPACING pixels; 0 = no nuclei (per-pixel cost only)")
    p.add_argument("--config")
    p.add_argument("--checkpoint")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.tile, args.overlap, args.config, args.checkpoint,
                               args.spacing)))
        return 0
    rows = []
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(size), "--tile", str(args.tile),
               "--overlap", str(args.overlap), "--spacing", str(args.spacing)]
        if args.config:
            cmd += ["--config", args.config, "--checkpoint", args.checkpoint]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    density = (f"one nucleus per {args.spacing} px square" if args.spacing > 0 else "no nuclei")
    predictor = f"model {args.config}" if args.config else "DarkBlobPredictor (stand-in)"
    print(f"predictor: {predictor}, tile {args.tile}, overlap {args.overlap}, {density}")
    print("| image | image MB | nuclei | crops MB | peak RSS with image | peak after tiling (delta) "
          "| peak after exports (delta) | tiling s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']}x{r['size']} | {r['image_mb']:.0f} | {r['nuclei']} | {r['crops_mb']:.1f} "
              f"| {r['base_mb']:.0f} MB | {r['tiled_mb']:.0f} MB (+{r['tiled_mb'] - r['base_mb']:.0f}) "
              f"| {r['exports_mb']:.0f} MB (+{r['exports_mb'] - r['base_mb']:.0f}) "
              f"| {r['tiled_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
