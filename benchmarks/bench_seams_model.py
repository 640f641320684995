#!/usr/bin/env python
"""Seams with a real model: the tiny Mask R-CNN on real H&E regions, tiled vs. whole image.

    .venv/bin/python benchmarks/bench_seams_model.py --checkpoint work_dirs/.../iter_N.pth \
        [--regions 4] [--tile 256] [--overlaps 48 96] [--data ../shared/data/dsb2018_he]

A region is 2 x 2 DSB H&E tiles stitched (640 x 512 px, with their per-nucleus masks as ground
truth); the shared 64-tile set is used where it exists, else the bundled sample. Each region is
predicted twice by the same model: in one forward pass over the whole region, and tiled
(``run_tiled``: the seam matcher of the slide pipeline) with each overlap. Matched F1 at IoU > 0.5
(one-to-one, ``nucleus_seg.metrics``) between the two says how much tiling changes the result;
F1 and PQ of each against the ground truth say whether it changes accuracy. Not a timing benchmark.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TINY = ROOT / "configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py"


def dsb_regions(data: Path, count: int):
    """(RGB image, list of GT masks) for ``count`` regions of 2 x 2 tiles (sorted ids)."""
    from nucleus_seg.inference.image_io import read_image

    ids = sorted(p.name for p in (data / "train").iterdir())
    regions = []
    for r in range(count):
        chosen = ids[4 * r:4 * r + 4]
        if len(chosen) < 4:
            break
        images, masks = [], []
        for k, name in enumerate(chosen):
            folder = data / "train" / name
            image = read_image(next((folder / "images").glob("*.png")))
            h, w = image.shape[:2]
            dy, dx = (k // 2) * h, (k % 2) * w
            images.append(image)
            for m in sorted((folder / "masks").glob("*.png")):
                mask = cv2.imread(str(m), cv2.IMREAD_GRAYSCALE) > 0
                masks.append((dy, dx, mask))
        h, w = images[0].shape[:2]
        if any(i.shape[:2] != (h, w) for i in images):
            continue
        canvas = np.vstack([np.hstack(images[0:2]), np.hstack(images[2:4])])
        full = []
        for dy, dx, mask in masks:
            m = np.zeros(canvas.shape[:2], bool)
            m[dy:dy + h, dx:dx + w] = mask
            full.append(m)
        regions.append((canvas, full))
    return regions


def rles_of_instances(instances, height, width):
    from nucleus_seg.inference.export import crop_to_rle

    return [crop_to_rle(c, height, width) for c in instances.masks]


def rles_of_masks(masks):
    from pycocotools import mask as mask_utils

    return [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]


def scores(a_rles, b_rles) -> dict:
    from nucleus_seg.metrics.instance import pairwise_overlaps, panoptic_quality

    return panoptic_quality(pairwise_overlaps(a_rles, b_rles))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--config", default=str(TINY))
    p.add_argument("--regions", type=int, default=4)
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlaps", type=int, nargs="+", default=[48, 96])
    p.add_argument("--score-thr", type=float, default=0.5)
    p.add_argument("--data", default=None)
    args = p.parse_args(argv)

    from nucleus_seg.inference import load_predictor, run_tiled

    shared = ROOT.parent / "shared" / "data" / "dsb2018_he"
    data = Path(args.data) if args.data else (shared if shared.is_dir() else
                                              ROOT / "data" / "sample" / "dsb2018_he")
    predictor = load_predictor(args.config, args.checkpoint, "cpu", args.score_thr)
    rows = []
    for k, (image, gt_masks) in enumerate(dsb_regions(data, args.regions)):
        h, w = image.shape[:2]
        gt = rles_of_masks(gt_masks)
        whole = predictor(image)
        whole_rles = rles_of_instances(whole, h, w)
        base = scores(gt, whole_rles)
        for overlap in args.overlaps:
            tiled = run_tiled(image, predictor, args.tile, overlap, batch_size=4)
            tiled_rles = rles_of_instances(tiled, h, w)
            agree = scores(whole_rles, tiled_rles)
            acc = scores(gt, tiled_rles)
            rows.append((k, overlap, len(gt), len(whole), len(tiled), agree["F1"], agree["SQ"],
                         base["F1"], acc["F1"], base["PQ"], acc["PQ"]))
            print(f"region {k}: overlap {overlap}: tiled vs whole F1 {agree['F1']:.4f} "
                  f"(TP {agree['TP']}, only whole {agree['FN']}, only tiled {agree['FP']})",
                  flush=True)
    print(f"\ndata: {data}; model: {args.checkpoint}; tile {args.tile}; score >= {args.score_thr}")
    print("| region | overlap | GT nuclei | whole | tiled | F1 tiled vs whole | SQ | F1 vs GT "
          "(whole / tiled) | PQ vs GT (whole / tiled) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, ov, n_gt, n_w, n_t, f1, sq, f1w, f1t, pqw, pqt in rows:
        print(f"| {k} | {ov} | {n_gt} | {n_w} | {n_t} | {f1:.4f} | {sq:.3f} | {f1w:.3f} / {f1t:.3f} "
              f"| {pqw:.3f} / {pqt:.3f} |")
    for ov in args.overlaps:
        sel = [r for r in rows if r[1] == ov]
        tp_weighted = np.mean([r[5] for r in sel])
        print(f"overlap {ov}: mean F1 tiled vs whole {tp_weighted:.4f} over {len(sel)} regions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
