"""Dataset-level scoring of COCO dicts: averaging, score threshold, PanNuke mPQ/bPQ per tissue, dense AP."""
from __future__ import annotations

import math

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from nucleus_seg.metrics.dataset import coco_ap, evaluate_instances


def rle_json(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode("ascii")}


def box(h, w, y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def grid_masks(h, w, n, size=6, step=10):
    """``n`` disjoint size x size squares on a grid."""
    per_row = w // step
    return [box(h, w, (k // per_row) * step, (k // per_row) * step + size, (k % per_row) * step,
                (k % per_row) * step + size) for k in range(n)]


def make_gt(images, categories=((1, "nucleus"),)):
    """images: list of (id, h, w, [(mask, category_id)], tissue or None)."""
    gt = {"images": [], "annotations": [], "categories": [{"id": c, "name": n} for c, n in categories]}
    for img_id, h, w, anns, tissue in images:
        im = {"id": img_id, "file_name": f"{img_id}.png", "height": h, "width": w}
        if tissue is not None:
            im["tissue"] = tissue
        gt["images"].append(im)
        for mask, cat in anns:
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": img_id, "category_id": cat,
                                      "segmentation": rle_json(mask), "iscrowd": 0, "area": int(mask.sum()),
                                      "bbox": mask_utils.toBbox(mask_utils.encode(
                                          np.asfortranarray(mask.astype(np.uint8)))).tolist()})
    return gt


def perfect_results(gt, score=0.9):
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": a["segmentation"],
             "score": score} for a in gt["annotations"]]


@pytest.fixture(scope="module")
def dense_gt():
    # image 1 holds 150 nuclei (more than COCO's default 100 detections), image 2 holds 3
    return make_gt([(1, 160, 100, [(m, 1) for m in grid_masks(160, 100, 150)], None),
                    (2, 40, 40, [(m, 1) for m in grid_masks(40, 40, 3)], None)])


def test_perfect_results_score_one_everywhere(dense_gt):
    ev = evaluate_instances(dense_gt, perfect_results(dense_gt))
    for key in ("AJI", "AJI_plus", "PQ", "DQ", "SQ", "F1", "precision", "recall", "Dice"):
        assert ev.summary[key] == 1.0, key
    assert ev.summary["n_images"] == 2 and ev.summary["TP"] == 153
    assert "mPQ" not in ev.summary  # single class: no PanNuke scores


def test_dense_ap_is_one_for_a_perfect_result_with_more_than_100_nuclei(dense_gt):
    stats = coco_ap(dense_gt, perfect_results(dense_gt), "segm")
    for key in ("mAP", "mAP_50", "mAP_75"):
        assert stats[key] == 1.0, key
    assert stats["AR@1000"] == 1.0
    # the same result capped at 100 detections per image misses 50 of image 1's nuclei: AP < 1
    capped = coco_ap(dense_gt, perfect_results(dense_gt), "segm", max_dets=(100,))
    assert capped["mAP"] < 0.9
    bbox = coco_ap(dense_gt, [dict(r, bbox=a["bbox"]) for r, a in
                              zip(perfect_results(dense_gt), dense_gt["annotations"])], "bbox")
    assert bbox["mAP"] == 1.0


def test_empty_results_score_zero(dense_gt):
    ev = evaluate_instances(dense_gt, [])
    assert ev.summary["PQ"] == 0.0 and ev.summary["AJI"] == 0.0 and ev.summary["Dice"] == 0.0
    assert coco_ap(dense_gt, [], "segm")["mAP"] == 0.0


def test_score_threshold_drops_low_scores_for_instance_metrics_only():
    masks = grid_masks(40, 40, 2)
    gt = make_gt([(1, 40, 40, [(m, 1) for m in masks], None)])
    res = perfect_results(gt)
    res[1]["score"] = 0.3
    # at the default 0.5 the second nucleus is not predicted: TP=1, FN=1 -> DQ = 1/1.5, PQ = 2/3
    assert evaluate_instances(gt, res).summary["PQ"] == pytest.approx(2 / 3)
    assert evaluate_instances(gt, res, score_thr=0.2).summary["PQ"] == 1.0
    assert coco_ap(gt, res, "segm")["mAP"] == 1.0  # AP ranks by score, it uses all predictions


def test_polygon_ground_truth_and_mean_over_images():
    # image 1: a polygon square 10x10 (pycocotools rasterises [0,10] x [0,10] to 10x10 = 100 px)
    # predicted exactly; image 2: one nucleus, no prediction. PQ per image: 1 and 0 -> mean 0.5.
    gt = make_gt([(2, 20, 20, [(box(20, 20, 2, 6, 2, 6), 1)], None)])
    gt["images"].insert(0, {"id": 1, "file_name": "1.png", "height": 20, "width": 20})
    gt["annotations"].append({"id": 99, "image_id": 1, "category_id": 1, "iscrowd": 0,
                              "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]], "area": 100, "bbox": [0, 0, 10, 10]})
    res = [{"image_id": 1, "category_id": 1, "segmentation": rle_json(box(20, 20, 0, 10, 0, 10)), "score": 1.0}]
    ev = evaluate_instances(gt, res)
    rows = {r["image_id"]: r for r in ev.per_image}
    assert rows[1]["PQ"] == 1.0 and rows[2]["PQ"] == 0.0
    assert ev.summary["PQ"] == 0.5


def test_pannuke_mpq_bpq_average_per_tissue_then_over_tissues():
    h = w = 30
    n1, n2, n3 = box(h, w, 0, 5, 0, 5), box(h, w, 10, 15, 10, 15), box(h, w, 20, 25, 20, 25)
    gt = make_gt([
        # tissue A, image 1: class 1 nucleus predicted exactly; class 2 absent from both (skipped)
        #   -> mPQ 1, bPQ 1
        (1, h, w, [(n1, 1)], "A"),
        # tissue A, image 2: class 1 nucleus predicted as class 2: class 1 PQ 0 (FN); class 2 has no GT,
        #   so the reference skips it (strict: PQ 0, FP) -> mPQ 0, mPQ_strict 0; bPQ 1 (class-agnostic match)
        (2, h, w, [(n1, 1)], "A"),
        # tissue B, image 3: two class-2 nuclei, one predicted: DQ = 1/1.5, SQ 1 -> PQ 2/3; class 1 skipped
        #   -> mPQ 2/3, bPQ 2/3
        (3, h, w, [(n2, 2), (n3, 2)], "B"),
    ], categories=((1, "neoplastic"), (2, "inflammatory")))
    res = [{"image_id": 1, "category_id": 1, "segmentation": rle_json(n1), "score": 0.9},
           {"image_id": 2, "category_id": 2, "segmentation": rle_json(n1), "score": 0.9},
           {"image_id": 3, "category_id": 2, "segmentation": rle_json(n2), "score": 0.9}]
    ev = evaluate_instances(gt, res)
    assert ev.settings["pannuke"] and ev.settings["scoring"] == "label_map"
    # tissue A: mPQ (1 + 0)/2 = 0.5, bPQ (1 + 1)/2 = 1; tissue B: mPQ 2/3, bPQ 2/3
    assert ev.per_tissue["A"]["mPQ"] == pytest.approx(0.5) and ev.per_tissue["A"]["bPQ"] == pytest.approx(1.0)
    assert ev.per_tissue["B"]["mPQ"] == pytest.approx(2 / 3) and ev.per_tissue["B"]["bPQ"] == pytest.approx(2 / 3)
    # over tissues: mPQ (0.5 + 2/3)/2 = 7/12 (the plain image mean would be 5/9), bPQ (1 + 2/3)/2 = 5/6
    assert ev.summary["mPQ"] == pytest.approx(7 / 12)
    assert ev.summary["bPQ"] == pytest.approx(5 / 6)
    # per class, the mean over all images (not per tissue): neoplastic: images 1, 2 -> (1 + 0)/2;
    # inflammatory: only image 3 has its GT -> 2/3 (image 2's false positive is skipped; per tissue
    # then over tissues it would have been (0 + 2/3)/2 with the FP counted)
    assert ev.summary["PQ_neoplastic"] == pytest.approx(0.5)
    assert ev.summary["PQ_inflammatory"] == pytest.approx(2 / 3)
    assert math.isnan(ev.per_tissue["B"]["PQ_neoplastic"])


def test_results_for_unknown_images_are_refused(dense_gt):
    with pytest.raises(ValueError, match="unknown image_id"):
        evaluate_instances(dense_gt, [{"image_id": 77, "category_id": 1, "score": 1.0,
                                       "segmentation": dense_gt["annotations"][0]["segmentation"]}])


def test_bundled_sample_scored_against_itself(sample_root):
    # real DSB nuclei (some images hold more than 100): GT as its own prediction is perfect everywhere,
    # including COCO AP at maxDets=1000; polygon and RLE forms of the same GT agree.
    dsb = pytest.importorskip("nucleus_seg.converters.dsb")
    gt, _, _ = dsb.convert_dsb([sample_root / "train"], progress=False)
    gt_poly, _, _ = dsb.convert_dsb([sample_root / "train"], segmentation="polygon", progress=False)
    res = perfect_results(gt, score=1.0)
    for ground_truth in (gt, gt_poly):
        ev = evaluate_instances(ground_truth, res)
        assert all(ev.summary[k] == 1.0 for k in ("AJI", "AJI_plus", "PQ", "Dice")), ev.summary
    stats = coco_ap(gt, res, "segm")
    assert stats["mAP"] == 1.0 and stats["AR@100"] < 1.0  # more than 100 nuclei in some image


def test_evaluate_tool_scores_without_importing_mmdetection_or_torch():
    # docs/metrics.md: the mmengine metrics stay out of `import nucleus_seg.metrics`, so scoring a
    # results file on disk does not pay for MMDetection.
    import os
    import subprocess
    import sys
    code = ("import runpy, sys\nsys.argv = ['evaluate.py', '--help']\ntry:\n"
            "    runpy.run_path('tools/evaluate.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('mmdet', 'mmengine', 'torch') if m in sys.modules))")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"
