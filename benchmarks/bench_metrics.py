"""Benchmark (not a test): nucleus metrics for 1,000 predicted vs 1,000 GT nuclei on a 1-megapixel tile.

Builds a 1024x1024 tile with 1,000 elliptical GT nuclei (neighbours may touch or overlap) on a jittered grid, and
predictions that are the GT shifted by a few pixels (so most pairs overlap and a few split/miss), encodes
both as RLE, then times ``score_image`` (PQ/DQ/SQ/F1, AJI, AJI+, Dice) on one core, in both scoring modes:
label maps (the default: predictions rasterised by score first) and overlap-aware.

    python benchmarks/bench_metrics.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# One core, as the target says; must be set before numpy/scipy load their BLAS.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pycocotools.mask as mask_utils  # noqa: E402

from nucleus_seg.metrics.dataset import evaluate_instances  # noqa: E402
from nucleus_seg.metrics.instance import pairwise_overlaps, score_image  # noqa: E402
from nucleus_seg.overlaps import label_map_from_rles  # noqa: E402

SIZE = 1024
GRID = 32  # 32 x 32 cells of 32 px -> 1,024 slots, the first 1,000 used


def ellipse_rle(cy, cx, ry, rx, shape) -> dict:
    y0, y1 = max(int(cy - ry) - 1, 0), min(int(cy + ry) + 2, shape[0])
    x0, x1 = max(int(cx - rx) - 1, 0), min(int(cx + rx) + 2, shape[1])
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    full = np.zeros(shape, dtype=np.uint8, order="F")  # encode needs the full frame; built once per nucleus
    full[y0:y1, x0:x1] = inside
    return mask_utils.encode(full)


def make_tile(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    cell = SIZE // GRID
    gts, preds = [], []
    for k in range(n):
        cy = (k // GRID) * cell + cell / 2 + rng.uniform(-2, 2)
        cx = (k % GRID) * cell + cell / 2 + rng.uniform(-2, 2)
        ry, rx = rng.uniform(8, 15), rng.uniform(8, 15)  # large enough that neighbours touch
        gts.append(ellipse_rle(cy, cx, ry, rx, (SIZE, SIZE)))
        dy, dx = rng.normal(0, 2, 2)
        preds.append(ellipse_rle(cy + dy, cx + dx, ry * rng.uniform(0.8, 1.2), rx * rng.uniform(0.8, 1.2),
                                 (SIZE, SIZE)))
    return gts, preds


def best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    gts, preds = make_tile()
    scores = np.random.default_rng(1).random(len(preds))
    ov = pairwise_overlaps(gts, preds)
    print(f"tile {SIZE}x{SIZE}, {len(gts)} GT, {len(preds)} predictions, {len(ov.inter)} overlapping pairs")
    t0 = time.perf_counter()
    score_image(gts, preds, pred_scores=scores)
    t_first = time.perf_counter() - t0  # includes the one-off scipy import used by AJI+
    for scoring in ("label_map", "overlap_aware"):
        out, times = best_of(args.repeats, lambda: score_image(gts, preds, pred_scores=scores, scoring=scoring))
        print(f"score_image, {scoring}: best {min(times) * 1e3:.1f} ms, median {np.median(times) * 1e3:.1f} ms "
              f"over {args.repeats} runs")
        print("  PQ {PQ:.4f}  DQ {DQ:.4f}  SQ {SQ:.4f}  AJI {AJI:.4f}  AJI+ {AJI_plus:.4f}  Dice {Dice:.4f}  "
              "n_pred {n_pred}".format(**out))
    _, t_labels = best_of(args.repeats, lambda: label_map_from_rles(preds, scores=scores))
    _, t_overlap = best_of(args.repeats, lambda: pairwise_overlaps(gts, preds))
    print(f"first call {t_first * 1e3:.1f} ms; rasterising the predictions alone {min(t_labels) * 1e3:.1f} ms; "
          f"pairwise RLE overlaps alone {min(t_overlap) * 1e3:.1f} ms")
    # the same tile through the COCO-dict path (str RLE counts in JSON form, grouping, threshold)
    as_json = [{"size": r["size"], "counts": r["counts"].decode()} for r in gts]
    gt = {"images": [{"id": 1, "height": SIZE, "width": SIZE}], "categories": [{"id": 1, "name": "nucleus"}],
          "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "segmentation": s}
                          for i, s in enumerate(as_json)]}
    results = [{"image_id": 1, "category_id": 1, "score": float(0.5 + sc / 2), "segmentation": {
                "size": r["size"], "counts": r["counts"].decode()}} for r, sc in zip(preds, scores)]
    _, t_dataset = best_of(1, lambda: evaluate_instances(gt, results))
    print(f"evaluate_instances on the same tile as COCO dicts (label maps): {t_dataset[0] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
