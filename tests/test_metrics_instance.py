"""Per-image nucleus metrics on hand-built masks; expected values are worked out in the comments."""
from __future__ import annotations

import math

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from nucleus_seg.metrics.instance import (Overlaps, aggregated_jaccard, aggregated_jaccard_plus, pairwise_overlaps,
                                      score_image)

H, W = 32, 32


def box(y0, y1, x0, x1, shape=(H, W)) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def rle(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def rles(*masks):
    return [rle(m) for m in masks]


def assert_scores(scores, **expected):
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(scores[key]), (key, scores[key])
        else:
            assert scores[key] == pytest.approx(value, abs=1e-12), (key, scores[key], value)


G1 = box(2, 6, 2, 6)      # 4x4 = 16 px
G2 = box(10, 14, 10, 16)  # 4x6 = 24 px
G3 = box(20, 30, 20, 30)  # 10x10 = 100 px


def test_perfect_prediction_scores_one_everywhere():
    s = score_image(rles(G1, G2, G3), rles(G3, G1, G2))  # order must not matter
    assert_scores(s, PQ=1.0, DQ=1.0, SQ=1.0, F1=1.0, precision=1.0, recall=1.0, AJI=1.0, AJI_plus=1.0, Dice=1.0,
                  TP=3, FP=0, FN=0)


def test_empty_prediction_scores_zero_and_precision_is_undefined():
    s = score_image(rles(G1, G2), [])
    # TP=0, FN=2: DQ = 0 / (0 + 0 + 1) = 0; AJI: C=0, U=16+24 -> 0; Dice 0 / (40 + 0) = 0
    assert_scores(s, PQ=0.0, DQ=0.0, SQ=0.0, recall=0.0, precision=math.nan, AJI=0.0, AJI_plus=0.0, Dice=0.0,
                  FN=2)


def test_empty_image_is_undefined_not_perfect():
    s = score_image([], [])
    assert_scores(s, PQ=math.nan, DQ=math.nan, AJI=math.nan, AJI_plus=math.nan, Dice=math.nan)


def test_predictions_on_empty_ground_truth_score_zero():
    s = score_image([], rles(G1))
    # FP=1: DQ = 0 / (0 + 0.5) = 0; AJI: C=0, U=16 (unused prediction) -> 0; recall undefined
    assert_scores(s, PQ=0.0, AJI=0.0, AJI_plus=0.0, Dice=0.0, precision=0.0, recall=math.nan, FP=1)


def test_split_nucleus():
    gt = box(0, 4, 0, 10)                       # 40 px
    left, right = box(0, 4, 0, 6), box(0, 4, 6, 10)  # 24 px and 16 px
    s = score_image(rles(gt), rles(left, right))
    # IoU(gt,left) = 24/40 = 0.6 > 0.5 -> TP; IoU(gt,right) = 16/40 = 0.4 -> FP.
    # DQ = 1 / (1 + 0.5*1 + 0.5*0) = 2/3; SQ = 0.6; PQ = 0.4; precision 1/2, recall 1.
    # AJI: gt pairs with left: C = 24, U = 40; right never chosen: U += 16 -> 24/56 = 3/7 (AJI+ the same).
    # Dice: the foregrounds are identical -> 1.
    assert_scores(s, TP=1, FP=1, FN=0, DQ=2 / 3, SQ=0.6, PQ=0.4, F1=2 / 3, precision=0.5, recall=1.0,
                  AJI=3 / 7, AJI_plus=3 / 7, Dice=1.0)


def test_merged_pair():
    merged = G1 | G2                            # 40 px
    s = score_image(rles(G1, G2), rles(merged))
    # IoU(G1,m) = 16/40 = 0.4; IoU(G2,m) = 24/40 = 0.6 -> one TP (G2), FN = 1 (G1), FP = 0.
    # DQ = 1 / (1 + 0.5) = 2/3, SQ = 0.6, PQ = 0.4.
    # AJI: both GT choose m: C = 16 + 24 = 40, U = 40 + 40 = 80 -> 0.5 (m counted in two unions).
    # AJI+: m pairs with G2 only: C = 24, U = 40 + |G1| 16 = 56 -> 3/7.
    assert_scores(s, TP=1, FP=0, FN=1, DQ=2 / 3, SQ=0.6, PQ=0.4, AJI=0.5, AJI_plus=3 / 7, Dice=1.0)


def test_prediction_with_a_hole():
    pred = G3 & ~box(23, 27, 23, 27)            # 100 - 16 = 84 px, ring-shaped
    s = score_image(rles(G3), rles(pred))
    # IoU = 84/100 = 0.84 -> TP: DQ = 1, SQ = PQ = 0.84; AJI = 84/100; Dice = 2*84/(100+84) = 21/23.
    assert_scores(s, TP=1, DQ=1.0, SQ=0.84, PQ=0.84, AJI=0.84, AJI_plus=0.84, Dice=21 / 23)


def test_iou_of_exactly_one_half_is_not_a_match():
    half = box(2, 6, 2, 4)                      # 8 of G1's 16 px: IoU = 8/16 = 0.5, not > 0.5
    s = score_image(rles(G1), rles(half))
    # TP = 0, FP = 1, FN = 1: DQ = 0; AJI = 8/16 = 0.5.
    assert_scores(s, TP=0, FP=1, FN=1, PQ=0.0, DQ=0.0, AJI=0.5, AJI_plus=0.5)


def test_duplicate_predictions_match_once():
    # COCO results may overlap: two identical copies both have IoU 1 with G1; only one may match.
    s = score_image(rles(G1), rles(G1, G1), scoring="overlap_aware")
    # TP = 1, FP = 1: DQ = 1 / 1.5 = 2/3, SQ = 1. AJI: C = 16, U = 16 + 16 (the unused copy) -> 0.5.
    assert_scores(s, TP=1, FP=1, DQ=2 / 3, SQ=1.0, PQ=2 / 3, AJI=0.5, AJI_plus=0.5, Dice=1.0)
    # On a label map the lower-scoring copy has no pixel left: it is gone, and the image is perfect.
    s = score_image(rles(G1), rles(G1, G1), pred_scores=[0.6, 0.9])
    assert_scores(s, n_pred=1, TP=1, FP=0, PQ=1.0, AJI=1.0, AJI_plus=1.0, Dice=1.0)


@pytest.mark.parametrize("scoring", ["label_map", "overlap_aware"])
def test_overlapping_ground_truth_instances(scoring):
    a, b = box(0, 10, 0, 10), box(5, 15, 5, 15)  # overlap by 25 px
    # label maps: the later GT annotation (b) and the higher score (b, 0.9) win the shared pixels
    s = score_image(rles(a, b), rles(b, a), pred_scores=[0.9, 0.8], scoring=scoring)
    assert_scores(s, PQ=1.0, AJI=1.0, AJI_plus=1.0, Dice=1.0)


def test_aji_plus_uses_the_best_one_to_one_pairing_not_greedy():
    # GT areas 10, 10; prediction areas 10, 10 (P0 and P1 overlap each other):
    #   (G0,P0) I=6 IoU 6/14=.43; (G1,P0) I=4 IoU 4/16=.25; (G0,P1) I=5 IoU 5/15=.33
    # Greedy would take (G0,P0) and leave G1 unpaired (sum .43); the optimum is (G0,P1)+(G1,P0) (sum .58).
    # AJI+ = (5+4) / (15+16) = 9/31.
    # AJI: G0 -> P0 (6, 14), G1 -> P0 (4, 16), P1 unused (+10): (6+4) / (14+16+10) = 1/4.
    ov = Overlaps(np.array([10, 10]), np.array([10, 10]), np.array([0, 1, 0]), np.array([0, 0, 1]),
                  np.array([6, 4, 5]))
    assert aggregated_jaccard_plus(ov) == pytest.approx(9 / 31)
    assert aggregated_jaccard(ov) == pytest.approx(0.25)


def test_aji_plus_matches_brute_force_on_random_overlaps():
    from itertools import permutations
    rng = np.random.default_rng(3)
    for _ in range(30):
        gt = [box(*sorted(rng.integers(0, 12, 2) + [0, 3]), *sorted(rng.integers(0, 12, 2) + [0, 3]), shape=(16, 16))
              for _ in range(3)]
        pred = [box(*sorted(rng.integers(0, 12, 2) + [0, 3]), *sorted(rng.integers(0, 12, 2) + [0, 3]),
                    shape=(16, 16)) for _ in range(3)]
        ov = pairwise_overlaps(rles(*gt), rles(*pred))
        iou = np.zeros((3, 3))
        iou[ov.gt_idx, ov.pred_idx] = ov.iou
        inter = np.array([[(g & p).sum() for p in pred] for g in gt])
        union = np.array([[(g | p).sum() for p in pred] for g in gt])
        best = None
        for perm in permutations(range(3)):  # all one-to-one pairings of 3 x 3
            total = sum(iou[i, perm[i]] for i in range(3))
            if best is None or total > best[0] + 1e-12:
                best = (total, perm)
        pairs = [(i, best[1][i]) for i in range(3) if iou[i, best[1][i]] > 0]
        c = sum(inter[i, j] for i, j in pairs)
        u = sum(union[i, j] for i, j in pairs)
        u += sum(gt[i].sum() for i in range(3) if i not in {p[0] for p in pairs})
        u += sum(pred[j].sum() for j in range(3) if j not in {p[1] for p in pairs})
        assert aggregated_jaccard_plus(ov) == pytest.approx(c / u)


def test_pairwise_intersections_are_exact():
    rng = np.random.default_rng(0)
    gt = [rng.random((40, 50)) < 0.3 for _ in range(6)]
    pred = [rng.random((40, 50)) < 0.3 for _ in range(5)] + [np.zeros((40, 50), bool)]  # an empty mask too
    ov = pairwise_overlaps(rles(*gt), rles(*pred))
    dense = np.zeros((6, 6), np.int64)
    dense[ov.gt_idx, ov.pred_idx] = ov.inter
    expected = np.array([[(g & p).sum() for p in pred] for g in gt])
    np.testing.assert_array_equal(dense, expected)
    np.testing.assert_array_equal(ov.gt_area, [g.sum() for g in gt])
    np.testing.assert_array_equal(ov.pred_area, [p.sum() for p in pred])


def test_more_than_255_instances():
    # pycocotools' mask.area fails above 255 RLEs with numpy 2; the metrics must not.
    masks = [box(r, r + 1, c, c + 1, shape=(20, 20)) for r in range(0, 20) for c in range(0, 20, 1)][:300]
    s = score_image(rles(*masks), rles(*masks))
    assert_scores(s, TP=300, PQ=1.0, AJI=1.0, Dice=1.0)


def test_per_class_pq_reference_and_strict():
    # class 1: G1 predicted exactly (PQ 1); class 2: G2 predicted as class 3 -> class 2 PQ 0 (FN);
    # class 3 has no GT: the PanNuke reference skips it (its FP is not counted), strict scores it 0 (FP);
    # class 4 absent from both -> skipped by both. mPQ = (1 + 0) / 2; mPQ_strict = (1 + 0 + 0) / 3.
    s = score_image(rles(G1, G2), rles(G1, G2), gt_labels=[1, 2], pred_labels=[1, 3], class_ids=[1, 2, 3, 4])
    assert s["class_pq"] == {1: 1.0, 2: 0.0}
    assert s["class_pq_strict"] == {1: 1.0, 2: 0.0, 3: 0.0}
    assert s["mPQ"] == pytest.approx(1 / 2) and s["mPQ_strict"] == pytest.approx(1 / 3)
    assert s["PQ"] == s["bPQ"] == s["bPQ_strict"] == 1.0  # class-agnostic: the label error does not count
