#!/usr/bin/env python
"""Slide reading: region throughput per reader and reader memory on 0.25 / 1 / 4 gigapixel slides.

    flock /tmp/nucleus-bench.lock .venv/bin/python benchmarks/bench_slide_read.py \
        [--sizes 0.25 1 4] [--backends openslide tifffile] [--regions 48] [--dir work_dirs/bench_slides]

Slides: Aperio-style JPEG pyramids (q85, 512 px tiles, 0.25 um/px, levels /4 /16 /64...) written
tile by tile by ``tests/slides.py:write_large_slide`` (DSB H&E tiles inside an ellipse, white
glass around), once, into --dir (kept for later runs; delete the folder to rewrite).

Each (slide, backend) runs in a fresh child process, which opens the slide (OpenSlide, or the
tifffile reader forced on the same file: it sees level 0 only, tifffile does not treat Aperio's
reduced pages as levels) and reads ``--regions`` 512 x 512 windows at random tissue positions
(fixed seed; 2 warm-up reads not timed) three ways:

- level 0: ``ResampledView(reader, 0.25)``: no resampling, 512 x 512 level-0 pixels per read;
- 0.5 um/px: 2x area averaging from level 0 (cv2.INTER_AREA path), 1024^2 level-0 px per read;
- 0.37 um/px: 1.48x, the exact window-independent area path, ~758^2 level-0 px per read.

Throughput is model megapixels per second (output pixels) and level-0 megapixels read per second.
RSS: the child's resident memory after opening and its peak (VmHWM) after all reads; it should not
depend on the slide's size.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(path: str, backend: str, regions: int, seed: int = 0) -> dict:
    import numpy as np

    from nucleus_seg.slide import ResampledView, open_slide

    base_rss = _rss_mb("VmRSS")
    t = time.perf_counter()
    reader = open_slide(path, backend=backend)
    open_s = time.perf_counter() - t
    opened_rss = _rss_mb("VmRSS")
    result = {"backend": backend, "format": reader.format, "levels": len(reader.level_dimensions),
              "open_s": open_s, "rss_base_mb": base_rss, "rss_open_mb": opened_rss}
    for name, mpp in (("level0", 0.25), ("0.5", 0.5), ("0.37", 0.37)):
        view = ResampledView(reader, mpp)
        rng = np.random.default_rng(seed)
        # tissue lies in a central ellipse: sample the central 40 % of each side
        lo_x, hi_x = int(view.width * 0.3), int(view.width * 0.7) - 512
        lo_y, hi_y = int(view.height * 0.3), int(view.height * 0.7) - 512
        xs = rng.integers(lo_x, hi_x, regions + 2)
        ys = rng.integers(lo_y, hi_y, regions + 2)
        for x, y in zip(xs[:2], ys[:2]):
            view.read(int(x), int(y), 512, 512)
        t = time.perf_counter()
        for x, y in zip(xs[2:], ys[2:]):
            view.read(int(x), int(y), 512, 512)
        dt = time.perf_counter() - t
        out_mp = regions * 512 * 512 / 1e6
        src_mp = out_mp * view.scale_xy[0] * view.scale_xy[1]
        result[name] = {"s": dt, "model_mp_s": out_mp / dt, "level0_mp_s": src_mp / dt,
                        "ms_per_read": dt / regions * 1e3, "level": view.level}
    result["rss_end_mb"] = _rss_mb("VmRSS")
    result["rss_peak_mb"] = _rss_mb("VmHWM")
    reader.close()
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=float, nargs="+", default=[0.25, 1.0, 4.0],
                   help="slide sizes in gigapixels")
    p.add_argument("--backends", nargs="+", default=["openslide", "tifffile"])
    p.add_argument("--regions", type=int, default=48)
    p.add_argument("--dir", default=str(ROOT / "work_dirs" / "bench_slides"))
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--child", nargs=3, metavar=("PATH", "BACKEND", "REGIONS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], int(args.child[2]))))
        return 0

    import slides

    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for gp in args.sizes:
        path = folder / f"synthetic_{gp:g}gp.svs"
        if not path.exists():
            tmp = path.with_suffix(".partial.svs")
            t = time.perf_counter()
            info = slides.write_large_slide(tmp, gp, kind="aperio")
            tmp.rename(path)
            print(f"wrote {path.name}: {info['width']} x {info['height']} px, "
                  f"{path.stat().st_size / 1e9:.2f} GB, tissue {info['tissue_fraction']:.0%} of "
                  f"the grid, {time.perf_counter() - t:.0f} s", flush=True)
        for backend in args.backends:
            out = subprocess.run([sys.executable, __file__, "--child", str(path), backend,
                                  str(args.regions)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r.update(gigapixels=gp, slide=path.name, bytes=path.stat().st_size)
            rows.append(r)
            print(f"{path.name} {backend}: level0 {r['level0']['model_mp_s']:.1f} MP/s, "
                  f"0.5 um/px {r['0.5']['model_mp_s']:.1f} MP/s, "
                  f"0.37 um/px {r['0.37']['model_mp_s']:.1f} MP/s, "
                  f"peak RSS {r['rss_peak_mb']:.0f} MB", flush=True)

    print("\n| slide | reader | open s | level 0: MP/s (ms/read) | 0.5 um/px: model MP/s "
          "(level-0 MP/s) | 0.37 um/px: model MP/s (level-0 MP/s) | RSS after open | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['gigapixels']:g} GP | {r['backend']} ({r['levels']} levels) | {r['open_s']:.2f} "
              f"| {r['level0']['model_mp_s']:.1f} ({r['level0']['ms_per_read']:.0f}) "
              f"| {r['0.5']['model_mp_s']:.1f} ({r['0.5']['level0_mp_s']:.1f}) "
              f"| {r['0.37']['model_mp_s']:.1f} ({r['0.37']['level0_mp_s']:.1f}) "
              f"| {r['rss_open_mb']:.0f} MB | {r['rss_peak_mb']:.0f} MB |")
    if args.json:
        from nucleus_seg.fileio import atomic_write_json

        atomic_write_json(args.json, rows, overwrite=True, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
