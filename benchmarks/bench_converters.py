"""Benchmark mask2coco on ~1-megapixel tiles (not a test).

Stitches the shared DSB tiles (320 x 256) and their masks into a grid (default 4 x 3 = 1280 x 768,
0.98 MP) in a temporary folder in the DSB layout, then times, in one run and on warm file caches:

1. bare decode: ``cv2.imread`` of every mask file (what any OpenCV-based converter pays at least);
2. this converter (``convert_dsb``), RLE and polygons, one process (its 8-bit grey PNG path
   reconstructs only the rows that can be non-zero, so it can beat the bare decode);
3. the old converters' loop: decode + ``imantics.Mask(m).polygons()`` (+ its bbox) per full-size mask.

    python benchmarks/bench_converters.py [--data ../shared/data/dsb2018_he] [--grid 4x3] [--repeat 3]

Prints a Markdown table (best of --repeat interleaved rounds, wall and CPU time).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nucleus_seg.converters import convert_dsb  # noqa: E402
from nucleus_seg.converters.dsb import scan_dsb_folders  # noqa: E402


def stitch_dsb_tiles(source_train: Path, out_root: Path, cols: int, rows: int) -> int:
    """Write stitched samples (cols x rows source tiles each) in the DSB layout; returns how many."""
    samples, _ = scan_dsb_folders([source_train])
    per_tile = cols * rows
    n_out = len(samples) // per_tile
    for t in range(n_out):
        group = samples[t * per_tile:(t + 1) * per_tile]
        first = cv2.imread(str(group[0].image_path), cv2.IMREAD_UNCHANGED)
        th, tw = first.shape[:2]
        image = np.zeros((th * rows, tw * cols) + first.shape[2:], first.dtype)
        sample_id = f"stitched_{t:02d}"
        masks_dir = out_root / sample_id / "masks"
        masks_dir.mkdir(parents=True)
        (out_root / sample_id / "images").mkdir()
        for k, sample in enumerate(group):
            r, c = divmod(k, cols)
            tile = cv2.imread(str(sample.image_path), cv2.IMREAD_UNCHANGED)
            image[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = tile
            for j, mask_path in enumerate(sample.mask_paths):
                big = np.zeros(image.shape[:2], np.uint8)
                big[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = cv2.imread(str(mask_path),
                                                                           cv2.IMREAD_GRAYSCALE)
                cv2.imwrite(str(masks_dir / f"{k:02d}_{j:03d}.png"), big)
        cv2.imwrite(str(out_root / sample_id / "images" / f"{sample_id}.png"), image)
    return n_out


def bare_decode(mask_paths):
    for path in mask_paths:
        cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def imantics_loop(mask_paths):
    """What the old converters did per mask: decode, trace the full-size mask, take its bbox."""
    from imantics import Mask
    for path in mask_paths:
        polygons = Mask(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)).polygons()
        polygons.segmentation, polygons.bbox()


def time_interleaved(steps, repeat: int):
    """Best (wall, CPU) seconds per step over ``repeat`` rounds; the steps alternate within each
    round so that load from other processes on a shared machine hits them all alike. CPU time
    (this process only) is the steadier figure when the machine is shared."""
    best = {name: [float("inf"), float("inf")] for name, _ in steps}
    for _ in range(repeat):
        for name, fn in steps:
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "dsb2018_he")
    p.add_argument("--grid", default="4x3", help="source tiles per stitched tile, COLSxROWS")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-imantics", action="store_true")
    args = p.parse_args(argv)
    cols, rows = (int(v) for v in args.grid.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="bench_converters_") as tmp:
        root = Path(tmp)
        n_tiles = stitch_dsb_tiles(args.data / "train", root, cols, rows)
        samples, _ = scan_dsb_folders([root])
        mask_paths = [m for s in samples for m in s.mask_paths]
        h, w = cv2.imread(str(samples[0].image_path), cv2.IMREAD_UNCHANGED).shape[:2]
        for path in mask_paths:  # warm the page cache so every row reads from memory
            path.read_bytes()

        steps = [("bare decode (cv2.imread of every mask)", lambda: bare_decode(mask_paths)),
                 ("mask2coco, RLE (1 process)", lambda: convert_dsb(root, progress=False)),
                 ("mask2coco, polygons (1 process)",
                  lambda: convert_dsb(root, segmentation="polygon", progress=False))]
        if not args.skip_imantics:
            steps.append(("old loop: decode + imantics Mask(m).polygons() + bbox",
                          lambda: imantics_loop(mask_paths)))
        best = time_interleaved(steps, args.repeat)

    n = len(mask_paths)
    decode_wall, decode_cpu = best[steps[0][0]]
    print(f"{n_tiles} tiles of {w}x{h} ({w * h / 1e6:.2f} MP), {n} masks; best of {args.repeat} "
          f"interleaved rounds\n")
    old_cpu = best[steps[-1][0]][1] if not args.skip_imantics else None
    print("| step | wall s | CPU s | CPU ms / mask | CPU vs bare decode | imantics loop is x slower |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _ in steps:
        wall, cpu = best[name]
        slower = f"{old_cpu / cpu:.2f}" if old_cpu else "-"
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {cpu / n * 1e3:.2f} | {cpu / decode_cpu:.2f}x | "
              f"{slower} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
