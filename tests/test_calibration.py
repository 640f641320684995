"""Calibrated score thresholds and non-overlapping outputs (nucleus_seg.calibration), on hand-built cases."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from nucleus_seg.calibration import (CALIBRATION_FILE, META_KEY, CleanUp, calibrate_score_threshold,
                                     clean_instances, clean_results, score_threshold_for, write_calibration)
from nucleus_seg.checkpoints import read_checkpoint
from nucleus_seg.errors import InputError
from nucleus_seg.geometry import MaskCrop
from nucleus_seg.inference.instances import Instances

H, W = 64, 96


def disc(cy, cx, r, shape=(H, W)) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def rle(mask) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def result(mask, score, image_id=1) -> dict:
    return {"image_id": image_id, "category_id": 1, "segmentation": rle(mask), "score": score}


def decoded(rec) -> np.ndarray:
    return mask_utils.decode({"size": rec["segmentation"]["size"],
                              "counts": rec["segmentation"]["counts"].encode()}).astype(bool)


IMAGES = [{"id": 1, "height": H, "width": W, "file_name": "a.png"},
          {"id": 2, "height": H, "width": W, "file_name": "b.png"}]


def test_two_predictions_of_one_nucleus_become_one():
    nucleus = disc(30, 30, 9)
    shifted = disc(31, 31, 9)  # the same nucleus found twice, one pixel apart
    out = clean_results([result(shifted, 0.7), result(nucleus, 0.9)], IMAGES, CleanUp(0.5, 0.5, 0.5))
    assert len(out) == 1
    assert out[0]["score"] == 0.9 and np.array_equal(decoded(out[0]), nucleus)


def test_near_duplicate_suppressed_even_when_its_leftover_is_large():
    big = disc(30, 30, 12)
    two = big | disc(30, 52, 12)  # the nucleus merged with its neighbour into one detection
    iou = big.sum() / two.sum()
    assert 0.4 < iou < 0.6 and 1 - iou > 0.3  # the leftover alone would pass min-share 0.3
    out = clean_results([result(two, 0.6), result(big, 0.9)], IMAGES, CleanUp(0.5, 0.3, 0.3))
    assert [r["score"] for r in out] == [0.9]
    out = clean_results([result(two, 0.6), result(big, 0.9)], IMAGES, CleanUp(0.5, 0.3, None))
    assert [r["score"] for r in out] == [0.9, 0.6]  # without suppression: trimmed to what is left
    assert not (decoded(out[0]) & decoded(out[1])).any()


def test_min_share_drops_a_nucleus_left_with_a_sliver():
    a, b = disc(30, 30, 10), disc(30, 36, 10)  # b keeps ~40 % of its pixels once a takes the overlap
    left = (b & ~a).sum() / b.sum()
    assert 0.3 < left < 0.5
    for min_share, expect in ((0.5, [0.9]), (0.3, [0.9, 0.8])):
        out = clean_results([result(a, 0.9), result(b, 0.8)], IMAGES, CleanUp(0.5, min_share, None))
        assert [r["score"] for r in out] == expect
    kept = clean_results([result(a, 0.9), result(b, 0.8)], IMAGES, CleanUp(0.5, 0.3, None))
    assert np.array_equal(decoded(kept[1]), b & ~a)  # the pixel goes to the higher score
    assert kept[1]["area"] == int((b & ~a).sum())
    ys, xs = np.nonzero(b & ~a)
    assert kept[1]["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_clean_instances_matches_clean_results():
    masks = [disc(30, 30, 10), disc(30, 36, 10), disc(10, 80, 6), disc(50, 70, 8)]
    scores = [0.9, 0.8, 0.3, 0.6]
    inst = Instances(scores, np.zeros(4), [MaskCrop.from_mask(m) for m in masks], None, H, W)
    clean = CleanUp(0.5, 0.5, 0.5)
    out = clean_instances(inst, clean)
    recs = clean_results([result(m, s) for m, s in zip(masks, scores)], IMAGES, clean)
    assert list(out.scores) == pytest.approx([r["score"] for r in recs]) == [0.9, 0.6]
    for crop, rec in zip(out.masks, recs):
        assert np.array_equal(crop.to_full(H, W), decoded(rec))


def calibration_case():
    """GT: 8 nuclei over two images. Predictions: every nucleus (scores 0.70-0.95), 4 false positives
    scoring 0.30-0.60, and a duplicate of one nucleus at 0.65. The best cleaned PQ keeps all true
    nuclei and no false positive: thresholds 0.65 and 0.70 both do (the duplicate is suppressed), so
    the lowest, 0.65, is chosen."""
    centres = [(12, 12), (12, 40), (12, 70), (45, 20), (45, 55), (45, 85), (30, 30), (30, 70)]
    gt = {"images": IMAGES, "categories": [{"id": 1, "name": "nucleus"}], "annotations": []}
    results = []
    for k, (cy, cx) in enumerate(centres):
        image_id = 1 + k % 2
        m = disc(cy, cx, 7)
        gt["annotations"].append({"id": k + 1, "image_id": image_id, "category_id": 1,
                                  "segmentation": rle(m), "area": int(m.sum()), "iscrowd": 0,
                                  "bbox": [cx - 7, cy - 7, 15, 15]})
        results.append(result(disc(cy, cx + 1, 7), 0.70 + 0.03 * k, image_id))
    results.append(result(disc(12, 13, 7), 0.65, 1))  # duplicate of nucleus 0
    for k, score in enumerate((0.30, 0.40, 0.50, 0.60)):  # background blobs
        results.append(result(disc(58, 5 + 22 * k, 4), score, 1 + k % 2))
    return gt, results


def test_calibration_picks_the_known_optimum():
    gt, results = calibration_case()
    calib = calibrate_score_threshold(gt, results)
    assert calib["score_thr"] == pytest.approx(0.65)
    by_thr = {row["score_thr"]: row for row in calib["table"]}
    assert by_thr[0.65]["DQ"] == pytest.approx(1.0) and by_thr[0.7]["DQ"] == pytest.approx(1.0)
    assert calib["PQ"] == pytest.approx(by_thr[0.65]["PQ"])
    assert by_thr[0.5]["DQ"] < 1.0 and calib["PQ_at_default"] == pytest.approx(by_thr[0.5]["PQ"])
    assert by_thr[0.75]["DQ"] < 1.0  # the lowest-scoring true nucleus (0.70) is lost
    assert (calib["n_images"], calib["n_gt"]) == (2, 8)


def test_calibration_without_nuclei_is_an_input_error():
    gt, results = calibration_case()
    with pytest.raises(InputError, match="annotated nuclei"):
        calibrate_score_threshold(dict(gt, annotations=[]), results)


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "work" / "iter_10.pth"
    path.parent.mkdir()
    torch.save({"state_dict": {"w": torch.ones(3)}, "meta": {"iter": 10}}, path)
    return path


def test_threshold_precedence(checkpoint, tmp_path):
    assert score_threshold_for(None, checkpoint).value == 0.5
    assert "not calibrated" in score_threshold_for(None, checkpoint).source
    calib = {"score_thr": 0.7, "PQ": 0.42, "n_images": 6}
    written = write_calibration(checkpoint, calib)
    assert written == [str(checkpoint), str(checkpoint.parent / CALIBRATION_FILE)]
    ckpt = read_checkpoint(checkpoint)  # the package's one reader
    assert ckpt["meta"]["iter"] == 10 and ckpt["meta"][META_KEY]["score_thr"] == 0.7
    assert torch.equal(ckpt["state_dict"]["w"], torch.ones(3))
    side = json.loads((checkpoint.parent / CALIBRATION_FILE).read_text())
    assert side["score_thr"] == 0.7 and side["checkpoint"] == "iter_10.pth"

    used = score_threshold_for(None, checkpoint)
    assert used.value == 0.7 and "meta" in used.source and "val PQ 0.420" in used.source
    assert score_threshold_for(0.3, checkpoint).value == 0.3  # an explicit --score-thr wins
    assert score_threshold_for(0.3, checkpoint).source == "--score-thr"

    # Without the meta (another tool rewrote the checkpoint), the file beside it is used ...
    torch.save({"state_dict": {"w": torch.ones(3)}, "meta": {}}, checkpoint)
    used = score_threshold_for(None, checkpoint)
    assert used.value == 0.7 and CALIBRATION_FILE in used.source
    # ... but not for another checkpoint of the same work dir.
    other = checkpoint.parent / "iter_20.pth"
    torch.save({"state_dict": {}, "meta": {}}, other)
    assert score_threshold_for(None, other).value == 0.5
    # A results file's calibration.json (evaluate.py / make_submission.py have no checkpoint).
    assert score_threshold_for(None, None, checkpoint.parent / CALIBRATION_FILE).value == 0.7


def test_existing_calibration_needs_overwrite(checkpoint):
    write_calibration(checkpoint, {"score_thr": 0.7, "n_images": 6})
    with pytest.raises(InputError, match="--overwrite"):
        write_calibration(checkpoint, {"score_thr": 0.6, "n_images": 6})
    write_calibration(checkpoint, {"score_thr": 0.6, "n_images": 6}, overwrite=True)
    assert score_threshold_for(None, checkpoint).value == 0.6


def test_evaluate_cli_uses_the_calibration_beside_the_results(tmp_path):
    gt, results = calibration_case()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    pred = tmp_path / "work" / "test.segm.json"
    pred.parent.mkdir()
    pred.write_text(json.dumps(results))
    (pred.parent / CALIBRATION_FILE).write_text(json.dumps({"score_thr": 0.65, "PQ": 0.9, "n_images": 2}))
    repo = Path(__file__).resolve().parents[1]

    def evaluate(*extra):
        res = subprocess.run([sys.executable, "tools/evaluate.py", "--gt", str(tmp_path / "gt.json"), "--pred",
                              str(pred), "--no-ap", "--out-json", str(tmp_path / f"s{len(extra)}.json"), *extra],
                             cwd=repo, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        return res.stdout, json.loads((tmp_path / f"s{len(extra)}.json").read_text())

    out, scores = evaluate()
    assert "score threshold 0.65 (calibrated on 2 validation images, val PQ 0.900" in out
    assert str(pred.parent / CALIBRATION_FILE) in out
    assert scores["summary"]["DQ"] == pytest.approx(1.0)  # every nucleus, no false positive, no duplicate
    out, scores = evaluate("--score-thr", "0.3")  # an explicit threshold wins
    assert "score threshold 0.3 (--score-thr)" in out and "score >= 0.3 (output clean-up: overlaps resolved by score" in out
    assert scores["summary"]["DQ"] < 1.0
