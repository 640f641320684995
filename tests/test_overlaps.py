"""Resolving overlapping instances by score, on mask crops and on COCO RLEs (nucleus_seg.overlaps)."""
from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from nucleus_seg.geometry import MaskCrop, crop_from_segmentation
from nucleus_seg.inference.instances import Instances
from nucleus_seg.overlaps import label_map_from_rles, resolve_instances, resolve_overlaps, rle_runs


def rle(mask: np.ndarray, as_str: bool = False) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode()} if as_str else r


def box(shape, y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def brute_force_resolve(masks, scores, min_kept_fraction=0.0, max_mask_iou=None):
    """Per-pixel reference: visit by score (stable), drop near-duplicates and small leftovers."""
    claimed = np.zeros(masks[0].shape, bool)
    kept_orig, out = [], {}
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        m = masks[i]
        if max_mask_iou is not None and any((m & k).sum() / (m | k).sum() > max_mask_iou for k in kept_orig):
            continue
        own = m & ~claimed
        if own.sum() == 0 or own.sum() < min_kept_fraction * m.sum():
            continue
        out[i] = own
        claimed |= m
        kept_orig.append(m)
    return out


def random_masks(rng, shape, n):
    masks = []
    for _ in range(n):
        y0, x0 = rng.integers(0, shape[0] - 2), rng.integers(0, shape[1] - 2)
        h, w = rng.integers(2, 12, 2)
        m = box(shape, y0, y0 + h, x0, x0 + w)
        m &= rng.random(shape) < 0.9  # ragged, sometimes with holes
        masks.append(m)
    return masks


def test_rle_runs_decode_like_pycocotools():
    rng = np.random.default_rng(0)
    cases = [np.ones((5, 7), bool), np.zeros((5, 7), bool), box((6, 6), 5, 6, 5, 6), box((6, 6), 0, 1, 0, 1),
             box((300, 200), 0, 300, 0, 200) & (rng.random((300, 200)) < 0.5)]  # long counts, negative deltas
    cases += [rng.random(tuple(rng.integers(1, 30, 2))) < rng.random() for _ in range(40)]
    for as_str in (False, True):
        for mask in cases:
            h, w = mask.shape
            owner, start, length = rle_runs([rle(mask, as_str)])
            flat = np.zeros(h * w, bool)
            for s, n in zip(start, length):
                flat[s:s + n] = True
            assert (owner == 0).all()
            np.testing.assert_array_equal(flat.reshape(w, h).T, mask)
    # several RLEs decoded together keep their owners apart (one of them empty)
    same = [rng.random((9, 11)) < p for p in (0.2, 0.0, 0.5, 0.9, 1.0)]
    owner, _, length = rle_runs([rle(m) for m in same])
    np.testing.assert_array_equal(np.bincount(owner, weights=length, minlength=5), [m.sum() for m in same])


def test_rle_runs_refuse_malformed_counts():
    ok = {"size": [4, 4], "counts": "0`0"}
    with pytest.raises(ValueError, match="truncated"):  # a value continuing into the next RLE's counts
        rle_runs([{"size": [4, 4], "counts": "0" + chr(0x20 + 48)}, ok])
    with pytest.raises(ValueError, match="invalid character"):
        rle_runs([ok, {"size": [4, 4], "counts": " "}])


def test_label_map_gives_each_pixel_to_the_highest_score():
    shape = (6, 10)
    a, b, c = box(shape, 0, 4, 0, 6), box(shape, 2, 6, 3, 9), box(shape, 0, 6, 8, 10)
    lm = label_map_from_rles([rle(a), rle(b), rle(c)], scores=[0.5, 0.9, 0.5])
    # b (0.9) keeps all 24 px; a loses its 6 px under b; c and a tie-free; c loses b's column 8 rows 2..5
    assert (lm == 2).sum() == b.sum() == 24
    assert (lm == 1).sum() == a.sum() - (a & b).sum() == 18
    assert (lm == 3).sum() == c.sum() - (c & b).sum() == 8
    # equal scores: the instance listed first keeps the pixel
    tie = label_map_from_rles([rle(a), rle(b)], scores=[0.7, 0.7])
    assert (tie[a & b] == 1).all()
    assert label_map_from_rles([rle(a), rle(b)])[2, 4] == 1  # no scores: list order
    assert label_map_from_rles([], 3, 4).shape == (3, 4)


def test_label_map_matches_brute_force_with_and_without_extras():
    rng = np.random.default_rng(1)
    shape = (20, 24)
    for trial in range(25):
        masks = random_masks(rng, shape, int(rng.integers(1, 8)))
        scores = rng.choice([0.3, 0.5, 0.8, 0.9], len(masks))  # ties on purpose
        rles = [rle(m, as_str=bool(trial % 2)) for m in masks]
        for frac, dup in ((0.0, None), (0.5, None), (0.0, 0.3), (0.4, 0.5)):
            expected = np.zeros(shape, np.int32)
            for i, own in brute_force_resolve(masks, scores, frac, dup).items():
                expected[own] = i + 1
            got = label_map_from_rles(rles, *shape, scores=scores, min_kept_fraction=frac, max_mask_iou=dup)
            np.testing.assert_array_equal(got, expected, err_msg=f"trial {trial}, {frac}, {dup}")


def test_resolve_crops_hand_worked():
    # A: 10x10 at x 0..9 (score 0.9); B: 10x10 at x 4..13 (0.8), 60 of its 100 px under A; C: 2x4 at
    # x 11..12, y 2..5 (0.7), inside the part of B that A does not cover.
    a = MaskCrop(0, 0, np.ones((10, 10), bool))
    b = MaskCrop(4, 0, np.ones((10, 10), bool))
    c = MaskCrop(11, 2, np.ones((4, 2), bool))
    res = resolve_overlaps([a, b, c], [0.9, 0.8, 0.7])
    # B keeps x 10..13 (40 px, a tight crop); C is covered by B completely and disappears
    assert res.keep.tolist() == [0, 1]
    assert res.masks[0].area == 100 and res.masks[1].box == (10, 0, 14, 10) and res.masks[1].area == 40
    # B keeps 40 % of its mask < 50 %: dropped, and a dropped instance claims nothing, so C keeps its 8 px
    res = resolve_overlaps([a, b, c], [0.9, 0.8, 0.7], min_kept_fraction=0.5)
    assert res.keep.tolist() == [0, 2] and [m.area for m in res.masks] == [100, 8]
    # D repeats A with a higher score: mask IoU 1 > 0.8 suppresses A; B keeps its 40 px outside D
    d = MaskCrop(0, 0, np.ones((10, 10), bool))
    res = resolve_overlaps([a, b, d], [0.9, 0.8, 0.95], max_mask_iou=0.8)
    assert res.keep.tolist() == [1, 2] and [m.area for m in res.masks] == [40, 100]


def test_resolve_crops_match_brute_force_across_index_cells():
    rng = np.random.default_rng(2)
    shape = (150, 170)  # several 64 px index cells
    for trial in range(15):
        full = random_masks(rng, shape, 40)
        for m, (dy, dx) in zip(full[:10], rng.integers(0, 60, (10, 2))):  # spread some out
            m[:] = np.roll(m, (int(dy), int(dx)), axis=(0, 1))
        full = [m for m in full if m.any()]
        crops = [MaskCrop.from_mask(m) for m in full]
        scores = rng.random(len(full))
        for frac, dup in ((0.0, None), (0.3, 0.6)):
            res = resolve_overlaps(crops, scores, frac, dup)
            expected = brute_force_resolve(full, scores, frac, dup)
            assert res.keep.tolist() == sorted(expected)
            for i, crop in zip(res.keep, res.masks):
                np.testing.assert_array_equal(crop.to_full(*shape), expected[i])


def test_resolve_instances():
    shape = (12, 12)
    crops = [crop_from_segmentation(rle(m), *shape) for m in (box(shape, 0, 6, 0, 6), box(shape, 3, 9, 3, 9))]
    inst = Instances(np.array([0.4, 0.9]), np.array([1, 0]), crops, height=12, width=12)
    out = resolve_instances(inst)
    assert out.scores.tolist() == pytest.approx([0.4, 0.9]) and out.labels.tolist() == [1, 0]  # input order
    assert out.masks[0].area == 36 - 9 and out.masks[1].area == 36
    np.testing.assert_array_equal(out.bboxes[1], [3, 3, 9, 9])
