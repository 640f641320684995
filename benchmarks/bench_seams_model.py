#!/usr/bin/env python
"""Seams with a real model: the tiny Mask R-CNN on real H&E regions, tiled vs. whole image.

    .venv/bin/python benchmarks/bench_seams_model.py --checkpoint work_dirs/.../iter_N.pth \
        [--regions 4] [--tile 256] [--overlaps 48 96] [--data ../shared/data/dsb2018_he] \
        [--score-thr T] [--raw] [--candidate-thr C] [--side 3 --unlabeled]

A region is ``--side`` x ``--side`` DSB H&E tiles stitched (2 x 2: 640 x 512 px), labelled tiles
first (sorted ids, with their per-nucleus masks as ground truth: hold them out of the model's
training), then, with ``--unlabeled``, the unlabeled test tiles (agreement needs no ground truth);
the shared 64-tile set is used where it exists, else the bundled sample. The predictor is the
product's: the checkpoint's calibrated threshold, cleaned output, tiles' candidates down to
``--candidate-thr`` for the seam merger (equal to the threshold: each tile thresholded alone). Each region is
predicted by the same model in one forward pass over the whole region (with the default proposal
budget, and with it scaled to the tiles' proposal density) and tiled (``run_tiled``: the seam
matcher of the slide pipeline) with each overlap. Matched F1 at IoU > 0.5 (one-to-one,
``nucleus_seg.metrics``) between the two says how much tiling changes the result, as is and after
greedy mask NMS on both (the model's own overlapping duplicates make one-to-one matching
arbitrary); F1 of each against the ground truth says whether it changes accuracy. Last, the
whole-image predictions are cut into the tiles and merged again (a model without context effects):
what the seam matcher alone changes on real model output. Not a timing benchmark.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.standins import ClippedPredictions  # noqa: E402

TINY = ROOT / "configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py"


def _stitch(images, side: int):
    h, w = images[0].shape[:2]
    return np.vstack([np.hstack(images[r * side:(r + 1) * side]) for r in range(side)]), h, w


def dsb_regions(data: Path, count: int, side: int = 2, unlabeled: bool = False):
    """(RGB image, list of GT masks or None) for up to ``count`` regions of ``side`` x ``side``
    labelled tiles (sorted ids, the first ones), then, with ``unlabeled``, regions of the unlabeled
    test tiles (tiled vs whole agreement needs no ground truth)."""
    from nucleus_seg.image_io import read_image

    ids = sorted(p.name for p in (data / "train").iterdir())
    n = side * side
    regions = []
    for r in range(count):
        chosen = ids[n * r:n * r + n]
        if len(chosen) < n:
            break
        images, masks = [], []
        for k, name in enumerate(chosen):
            folder = data / "train" / name
            image = read_image(next((folder / "images").glob("*.png")))
            h, w = image.shape[:2]
            dy, dx = (k // side) * h, (k % side) * w
            images.append(image)
            for m in sorted((folder / "masks").glob("*.png")):
                mask = cv2.imread(str(m), cv2.IMREAD_GRAYSCALE) > 0
                masks.append((dy, dx, mask))
        if any(i.shape[:2] != images[0].shape[:2] for i in images):
            continue
        canvas, h, w = _stitch(images, side)
        full = []
        for dy, dx, mask in masks:
            m = np.zeros(canvas.shape[:2], bool)
            m[dy:dy + h, dx:dx + w] = mask
            full.append(m)
        regions.append((canvas, full))
    test = sorted((data / "test").glob("*.png")) if unlabeled and (data / "test").is_dir() else []
    for r in range(len(test) // n):
        images = [read_image(p) for p in test[n * r:n * r + n]]
        if all(i.shape[:2] == images[0].shape[:2] for i in images):
            regions.append((_stitch(images, side)[0], None))
    return regions


def rles_of_instances(instances, height, width):
    from nucleus_seg.geometry import crop_to_rle

    return [crop_to_rle(c, height, width) for c in instances.masks]


def rles_of_masks(masks):
    from pycocotools import mask as mask_utils

    return [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]


def without_duplicates(rles, scores_, iou_thr: float = 0.5):
    """Greedy mask NMS (highest score first): the model's own overlapping duplicates, which box
    NMS lets through, would otherwise make one-to-one matching between two runs arbitrary."""
    from nucleus_seg.metrics.instance import pairwise_overlaps

    order = np.argsort(-np.asarray(scores_), kind="stable")
    rles = [rles[i] for i in order]
    ov = pairwise_overlaps(rles, rles)
    clash = (ov.gt_idx < ov.pred_idx) & (ov.iou > iou_thr)
    drop = set()
    for a, b in sorted(zip(ov.gt_idx[clash].tolist(), ov.pred_idx[clash].tolist())):
        if a not in drop:
            drop.add(b)
    return [r for k, r in enumerate(rles) if k not in drop]


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
    p.add_argument("--score-thr", type=float, default=None,
                   help="default: the checkpoint's calibrated threshold, else 0.5")
    p.add_argument("--raw", action="store_true",
                   help="the model's detections as they are (no per-tile clean-up: overlaps, "
                        "slivers and near-duplicates kept)")
    p.add_argument("--candidate-thr", type=float, default=None,
                   help="lowest score tiles report to the seam merger (default: the predictor's)")
    p.add_argument("--data", default=None)
    p.add_argument("--side", type=int, default=2,
                   help="a region is side x side DSB tiles (320 x 256 each)")
    p.add_argument("--unlabeled", action="store_true",
                   help="also regions of the unlabeled test tiles (agreement only, no F1 vs GT)")
    args = p.parse_args(argv)

    from nucleus_seg.inference import load_predictor, run_tiled

    shared = ROOT.parent / "shared" / "data" / "dsb2018_he"
    data = Path(args.data) if args.data else (shared if shared.is_dir() else
                                              ROOT / "data" / "sample" / "dsb2018_he")
    predictor = load_predictor(args.config, args.checkpoint, "cpu", args.score_thr,
                               clean_up=not args.raw, candidate_thr=args.candidate_thr)
    # The whole-image run gets the tiles' proposal density: RPN keeps a fixed number of proposals
    # per image (2,000), so a region 5x a tile's area would otherwise get 5x fewer per nucleus
    # and miss nuclei that the tiles find.
    whole_predictor = load_predictor(args.config, args.checkpoint, "cpu", args.score_thr,
                                     clean_up=not args.raw)
    print(f"{predictor.threshold.describe()}; "
          f"{'raw detections' if args.raw else 'cleaned (non-overlapping) output'}", flush=True)
    rows = []
    for k, (image, gt_masks) in enumerate(dsb_regions(data, args.regions, args.side,
                                                       args.unlabeled)):
        h, w = image.shape[:2]
        ratio = max(1.0, h * w / float(args.tile * args.tile))
        rpn = whole_predictor.model.rpn_head.test_cfg
        base_rpn = predictor.model.rpn_head.test_cfg
        rpn.nms_pre, rpn.max_per_img = (int(base_rpn.nms_pre * ratio),
                                        int(base_rpn.max_per_img * ratio))
        whole_predictor.model.roi_head.test_cfg.max_per_img = int(
            predictor.model.roi_head.test_cfg.max_per_img * ratio)
        gt = rles_of_masks(gt_masks) if gt_masks is not None else None
        outputs = {"default": predictor(image), "scaled": whole_predictor(image)}
        for overlap in args.overlaps:
            tiled = run_tiled(image, predictor, args.tile, overlap, batch_size=4)
            tiled_rles = rles_of_instances(tiled, h, w)
            tiled_dedup = without_duplicates(tiled_rles, tiled.scores)
            for budget, whole in outputs.items():
                whole_rles = rles_of_instances(whole, h, w)
                oracle = run_tiled(image, ClippedPredictions(image, whole), args.tile, overlap)
                merged = scores(whole_rles, rles_of_instances(oracle, h, w))
                agree = scores(whole_rles, tiled_rles)
                dedup = scores(without_duplicates(whole_rles, whole.scores), tiled_dedup)
                vs_gt = ((scores(gt, whole_rles)["F1"], scores(gt, tiled_rles)["F1"])
                         if gt is not None else (None, None))
                rows.append((k, overlap, budget, len(gt) if gt is not None else None, len(whole),
                             len(tiled), agree["F1"], dedup["F1"], *vs_gt, merged["F1"]))
                print(f"region {k}: overlap {overlap}, whole-image proposals {budget}: tiled vs "
                      f"whole F1 {agree['F1']:.4f} (TP {agree['TP']}, only whole {agree['FN']}, "
                      f"only tiled {agree['FP']}); without duplicates {dedup['F1']:.4f}; the "
                      f"whole-image predictions cut into tiles and merged: F1 {merged['F1']:.4f}",
                      flush=True)
    print(f"\ndata: {data}; model: {args.checkpoint}; tile {args.tile}; score >= "
          f"{predictor.score_thr:g} (tiles' candidates from {predictor.candidate_thr:g}); "
          f"{'raw' if args.raw else 'cleaned'}")
    print("| region | overlap | whole-image proposals | GT nuclei | whole | tiled | F1 tiled vs whole "
          "| the same without duplicates | F1 vs GT (whole / tiled) | whole cut into tiles, merged |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k, ov, budget, n_gt, n_w, n_t, f1, f1d, f1w, f1t, f1m in rows:
        vs_gt = f"{f1w:.3f} / {f1t:.3f}" if n_gt is not None else "- (unlabeled)"
        print(f"| {k} | {ov} | {budget} | {n_gt if n_gt is not None else '-'} | {n_w} | {n_t} "
              f"| {f1:.4f} | {f1d:.4f} | {vs_gt} | {f1m:.4f} |")
    for ov in args.overlaps:
        for budget in ("default", "scaled"):
            sel = [r for r in rows if r[1] == ov and r[2] == budget]
            print(f"overlap {ov}, whole-image proposals {budget}: mean F1 tiled vs whole "
                  f"{np.mean([r[6] for r in sel]):.4f}, without duplicates "
                  f"{np.mean([r[7] for r in sel]):.4f}, whole cut into tiles and merged "
                  f"{np.mean([r[10] for r in sel]):.4f} ({len(sel)} regions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
