"""The metrics reproduce the protocols they are named after: the PanNuke reference evaluation (mPQ / bPQ),
label-map scoring as HoVer-Net's stats_utils, one-to-one PQ matching below IoU 0.5, and COCO AP at 100
and 1,000 detections. Hand-worked cases for each rule, then randomised agreement with deliberately simple
brute-force versions written here (per-pixel masks, exhaustive matching)."""
from __future__ import annotations

import contextlib
import io
import itertools
import math
import warnings

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from nucleus_seg.categories import PANNUKE_CHANNELS, PANNUKE_CLASSES
from nucleus_seg.converters import convert_pannuke
from nucleus_seg.metrics.dataset import coco_ap, evaluate_instances
from nucleus_seg.metrics.instance import score_image

from tests.test_metrics_dataset import box, grid_masks, make_gt, perfect_results, rle_json
from tests.test_metrics_instance import assert_scores, rles


def result(image_id, mask, category_id=1, score=0.9):
    return {"image_id": image_id, "category_id": category_id, "segmentation": rle_json(mask), "score": score}


# ---------------------------------------------------------------------------------- hand-worked rules

def test_empty_gt_class_with_false_positives_is_skipped_by_the_reference():
    h = w = 20
    nuc, fp = box(h, w, 2, 7, 2, 7), box(h, w, 12, 17, 12, 17)
    gt = make_gt([(1, h, w, [(nuc, 1)], "Breast")], categories=((1, "neoplastic"), (2, "dead")))
    res = [result(1, nuc, 1), result(1, fp, 2)]  # a 'dead' nucleus where the GT has none
    ev = evaluate_instances(gt, res)
    row = ev.per_image[0]
    # reference: 'dead' has no GT -> skipped; mPQ = PQ_neoplastic = 1
    assert row["class_pq"] == {"neoplastic": 1.0} and row["mPQ"] == 1.0
    # strict: the FP makes 'dead' 0 -> (1 + 0) / 2
    assert row["class_pq_strict"] == {"neoplastic": 1.0, "dead": 0.0} and row["mPQ_strict"] == 0.5
    # bPQ is class-agnostic: 1 TP, 1 FP -> DQ 2/3, SQ 1 (the FP counts: the image has GT)
    assert row["bPQ"] == pytest.approx(2 / 3) and row["bPQ_strict"] == pytest.approx(2 / 3)
    assert ev.summary["mPQ"] == 1.0 and ev.summary["mPQ_strict"] == 0.5
    assert ev.summary["PQ_neoplastic"] == 1.0 and math.isnan(ev.summary["PQ_dead"])


def test_image_without_gt_is_skipped_for_bpq_and_mpq():
    h = w = 20
    nuc = box(h, w, 2, 7, 2, 7)
    gt = make_gt([(1, h, w, [(nuc, 1)], "Breast"), (2, h, w, [], "Breast")],
                 categories=((1, "neoplastic"), (2, "dead")))
    res = [result(1, nuc, 1), result(2, nuc, 2)]  # image 2 has no GT but a prediction
    ev = evaluate_instances(gt, res)
    empty = ev.per_image[1]
    assert math.isnan(empty["bPQ"]) and math.isnan(empty["mPQ"])  # reference: skipped
    assert empty["bPQ_strict"] == 0.0 and empty["mPQ_strict"] == 0.0  # strict: all false positives
    # tissue Breast: reference means over image 1 only -> 1; strict over both -> (1 + 0) / 2
    assert ev.summary["bPQ"] == 1.0 and ev.summary["mPQ"] == 1.0
    assert ev.summary["bPQ_strict"] == 0.5 and ev.summary["mPQ_strict"] == 0.5


def test_label_map_and_overlap_aware_scoring_differ_by_a_computable_amount():
    h, w = 12, 20
    g = box(h, w, 0, 10, 0, 10)                   # one GT nucleus, 100 px
    exact = box(h, w, 0, 10, 0, 10)               # 100 px, exactly the GT
    shifted = box(h, w, 0, 10, 5, 15)             # 100 px, 50 of them on the GT
    # exact scores higher: the label map leaves `shifted` its 50 px at x 10..14, outside the GT.
    #   overlap-aware: TP 1, FP 1 -> PQ 2/3; AJI: G~exact (100/100), shifted unused: 100 / (100 + 100) = 1/2
    #   label map:     TP 1, FP 1 -> PQ 2/3; AJI: 100 / (100 + 50) = 2/3
    #   Dice is the same in both (the predicted foreground does not change): 2*100 / (100 + 150) = 0.8
    kw = dict(pred_scores=[0.9, 0.8])
    over = score_image(rles(g), rles(exact, shifted), scoring="overlap_aware", **kw)
    lab = score_image(rles(g), rles(exact, shifted), **kw)
    assert_scores(over, TP=1, FP=1, PQ=2 / 3, AJI=0.5, AJI_plus=0.5, Dice=0.8)
    assert_scores(lab, TP=1, FP=1, PQ=2 / 3, AJI=2 / 3, AJI_plus=2 / 3, Dice=0.8)
    # shifted scores higher: the label map leaves `exact` x 0..4 only (50 px, IoU 50/100 = 0.5, not a match)
    #   overlap-aware: as above, PQ 2/3, AJI 1/2
    #   label map: TP 0 -> PQ 0; AJI: G pairs with exact' (IoU .5 > shifted's 50/150): 50 / (100 + 100) = 1/4
    kw = dict(pred_scores=[0.8, 0.9])
    over = score_image(rles(g), rles(exact, shifted), scoring="overlap_aware", **kw)
    lab = score_image(rles(g), rles(exact, shifted), **kw)
    assert_scores(over, TP=1, FP=1, PQ=2 / 3, AJI=0.5)
    assert_scores(lab, TP=0, FP=2, FN=1, PQ=0.0, AJI=0.25, Dice=0.8)


def test_aji_breaks_equal_ious_towards_the_larger_union_as_hovernet():
    # G: 4x4 = 16 px. P1 covers 2 of its pixels (IoU 2/16); P2 covers 4 of them and 16 outside (IoU 4/32):
    # equal IoUs. HoVer-Net's argmax of I / (U + 1e-6) picks P2, the larger union:
    #   C = 4, U = 32 + |P1| (unused) 2 -> AJI = 4/34 (picking P1, the first listed, would give 2/36).
    h, w = 8, 8
    g = box(h, w, 0, 4, 0, 4)
    p1 = box(h, w, 0, 1, 0, 2)
    p2 = box(h, w, 2, 4, 2, 4) | box(h, w, 4, 8, 4, 8)
    assert_scores(score_image(rles(g), rles(p1, p2)), AJI=4 / 34)


def greedy_pq(iou: np.ndarray, thr: float) -> float:
    """Greedy matching by IoU (what one-to-one assignment replaces), for the comparison below."""
    used_g, used_p, matched = set(), set(), []
    for v, i, j in sorted(((iou[i, j], i, j) for i, j in zip(*np.nonzero(iou > thr))), reverse=True):
        if i not in used_g and j not in used_p:
            used_g.add(i), used_p.add(j), matched.append(v)
    tp, (n_g, n_p) = len(matched), iou.shape
    return tp / (tp + 0.5 * (n_p - tp) + 0.5 * (n_g - tp)) * (sum(matched) / tp)


def test_matching_below_half_is_one_to_one_not_greedy():
    # Column intervals on a 4-row strip: G1 = x 0..4, G2 = x 5..7; P1 = x 0..1, P2 = x 2..6.
    # IoU(G1,P1) = 2/5 = .4, IoU(G1,P2) = 3/7 = .43, IoU(G2,P2) = 2/6 = .33, IoU(G2,P1) = 0.
    h, w = 4, 8
    g1, g2 = box(h, w, 0, 4, 0, 5), box(h, w, 0, 4, 5, 8)
    p1, p2 = box(h, w, 0, 4, 0, 2), box(h, w, 0, 4, 2, 7)
    iou = np.array([[2 / 5, 3 / 7], [0, 2 / 6]])
    # greedy at IoU > 0.3 takes (G1,P2) first and strands G2 and P1: TP 1 -> DQ 1/2, SQ 3/7, PQ 3/14
    assert greedy_pq(iou, 0.3) == pytest.approx(3 / 14)
    # the maximum-weight assignment (HoVer-Net) pairs (G1,P1) + (G2,P2): TP 2 -> DQ 1, SQ 11/30
    s = score_image(rles(g1, g2), rles(p1, p2), iou_thr=0.3)
    assert_scores(s, TP=2, FP=0, FN=0, DQ=1.0, SQ=(2 / 5 + 1 / 3) / 2, PQ=11 / 30)
    # at the usual 0.5 nothing matches
    assert_scores(score_image(rles(g1, g2), rles(p1, p2)), TP=0, PQ=0.0)


def test_ap_at_100_and_1000_detections_side_by_side():
    # 150 nuclei in one image, predicted perfectly: AP at 1,000 detections is 1; at 100 it is what stock
    # pycocotools summarize() reports (stats[0]).
    h, w = 160, 100
    gt = make_gt([(1, h, w, [(m, 1) for m in grid_masks(h, w, 150)], None)])
    res = perfect_results(gt)
    for k, r in enumerate(res):
        r["score"] = 1.0 - k / 1000  # distinct scores: the ranking is the same for both
    stats = coco_ap(gt, res, "segm", max_dets=(1000,))  # 100 is always evaluated as well
    assert stats["mAP"] == 1.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes([dict(r, segmentation=dict(r["segmentation"])) for r in res]),
                      "segm")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert stats["mAP@100"] == pytest.approx(ev.stats[0]) and stats["mAP@100"] < 0.9
    assert stats["mAP_50@100"] == pytest.approx(ev.stats[1]) and stats["mAP_75@100"] == pytest.approx(ev.stats[2])


# --------------------------------------------------------------------- brute force: per-image metrics

def masks_of(label_map):
    return {i: label_map == i for i in np.unique(label_map) if i}


def rasterise(masks, priority, shape):
    """Per pixel: the instance with the highest priority covering it (ties: the first listed)."""
    h, w = shape
    out = np.zeros((h, w), np.int64)
    for y in range(h):
        for x in range(w):
            cover = [i for i, m in enumerate(masks) if m[y, x]]
            if cover:
                out[y, x] = max(cover, key=lambda i: (priority[i], -i)) + 1
    return out


def all_assignments(n_g, n_p):
    """Every one-to-one pairing of n_g GT with n_p predictions (as lists of (g, p) pairs)."""
    for perm in itertools.permutations(range(max(n_g, n_p))):
        yield [(g, p) for g, p in enumerate(perm) if g < n_g and p < n_p]


def brute_force_scores(true, pred, thr, sq_eps=0.0):
    """PQ/DQ/SQ, AJI, the AJI+ values of every optimal pairing, and Dice of two label maps, as HoVer-Net's
    stats_utils defines them, by per-pixel masks and exhaustive matching."""
    t, p = list(masks_of(true).values()), list(masks_of(pred).values())
    inter = np.array([[(a & b).sum() for b in p] for a in t], float).reshape(len(t), len(p))
    union = np.array([[(a | b).sum() for b in p] for a in t], float).reshape(len(t), len(p))
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    if thr >= 0.5:
        options = [[(g, q) for g in range(len(t)) for q in range(len(p)) if iou[g, q] > thr]]
    else:
        pairings = list(all_assignments(len(t), len(p)))
        totals = [sum(iou[g, q] for g, q in a) for a in pairings]
        options = [[(g, q) for g, q in a if iou[g, q] > thr] for a, s in zip(pairings, totals)
                   if s > max(totals) - 1e-12]
    pq_options = set()
    for pairs in options:
        tp, fp, fn = len(pairs), len(p) - len(pairs), len(t) - len(pairs)
        if tp + fp + fn == 0:
            pq_options.add((math.nan,) * 3)
            continue
        dq = tp / (tp + 0.5 * fp + 0.5 * fn)
        sq = sum(iou[g, q] for g, q in pairs) / (tp + sq_eps) if tp else 0.0
        pq_options.add((round(dq * sq, 12), round(dq, 12), round(sq, 12)))
    # AJI: each GT -> argmax of I / (U + 1e-6), first index on ties; unpaired GT and unused predictions
    c = u = 0.0
    used = set()
    for g in range(len(t)):
        ratio = inter[g] / (union[g] + 1e-6) if len(p) else np.zeros(0)
        if len(p) and ratio.max() > 0:
            q = int(np.argmax(ratio))
            c, u = c + inter[g, q], u + union[g, q]
            used.add(q)
        else:
            u += t[g].sum()
    u += sum(p[q].sum() for q in range(len(p)) if q not in used)
    aji = c / u if u else math.nan
    # AJI+: one-to-one pairings of maximal total IoU (several may tie), over pairs that overlap
    pairings = list(all_assignments(len(t), len(p)))
    totals = [sum(iou[g, q] for g, q in a) for a in pairings]
    aji_plus = set()
    for a, s in zip(pairings, totals):
        if s > max(totals) - 1e-12:
            a = [(g, q) for g, q in a if iou[g, q] > 0]
            cc = sum(inter[g, q] for g, q in a)
            uu = sum(union[g, q] for g, q in a) + sum(t[g].sum() for g in range(len(t)) if g not in {x for x, _ in a})
            uu += sum(p[q].sum() for q in range(len(p)) if q not in {y for _, y in a})
            aji_plus.add(round(cc / uu, 12) if uu else math.nan)
    a_fg, b_fg = true > 0, pred > 0
    dice = 2 * (a_fg & b_fg).sum() / (a_fg.sum() + b_fg.sum()) if (a_fg.sum() + b_fg.sum()) else math.nan
    return pq_options, aji, aji_plus, dice


def random_instances(rng, shape, n, near=()):
    """n ragged rectangles; with ``near``, most are copies of those masks moved by at most a pixel, so
    that matches above and below IoU 0.5 both happen."""
    out = []
    for k in range(n):
        if near and rng.random() < 0.75:
            m = np.roll(near[k % len(near)], tuple(rng.choice([-1, 0, 0, 0, 1], 2)), axis=(0, 1))
        else:  # one per quadrant, so that neighbours touch or overlap only now and then
            y0 = (k % 2) * shape[0] // 2 + rng.integers(0, 4)
            x0 = (k // 2 % 2) * shape[1] // 2 + rng.integers(0, 4)
            m = box(*shape, y0, y0 + rng.integers(4, 9), x0, x0 + rng.integers(4, 9))
        m = m & (rng.random(shape) < 0.95)
        if m.any():
            out.append(m)
    return out


def nan_equal(a, b, tol=1e-9):
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def test_per_image_metrics_agree_with_brute_force_on_random_label_maps():
    rng = np.random.default_rng(12)
    shape = (18, 20)
    for trial in range(60):
        gt = random_instances(rng, shape, int(rng.integers(0, 5)))
        pred = random_instances(rng, shape, int(rng.integers(0, 5)), near=gt)
        scores = rng.choice([0.6, 0.7, 0.9], len(pred))  # overlapping predictions, tied scores too
        true_map = rasterise(gt, list(range(len(gt))), shape)   # later GT annotation wins
        pred_map = rasterise(pred, list(scores), shape)
        for thr in (0.5, 0.3):
            s = score_image(rles(*gt), rles(*pred), pred_scores=scores, iou_thr=thr) if (gt or pred) else None
            pq_options, aji, aji_plus, dice = brute_force_scores(true_map, pred_map, thr)
            if s is None:
                continue
            got = (s["PQ"], s["DQ"], s["SQ"])
            assert any(all(nan_equal(x, y) for x, y in zip(got, o)) for o in pq_options), (trial, thr, got, pq_options)
            assert nan_equal(s["AJI"], aji), (trial, s["AJI"], aji)
            assert any(nan_equal(s["AJI_plus"], v) for v in aji_plus), (trial, s["AJI_plus"], aji_plus)
            assert nan_equal(s["Dice"], dice)


# ------------------------------------------------------------ brute force: the PanNuke reference protocol

def reference_binarize(channels):
    """The reference's binarize: every (channel, id) a new instance, later channels painted over earlier."""
    out = np.zeros(channels.shape[:2], np.int64)
    count = 1
    for ch in range(channels.shape[2]):
        for v in np.unique(channels[..., ch]):
            if v:
                out[channels[..., ch] == v] = count
                count += 1
    return out


def reference_pq(true, pred):
    """get_fast_pq(true, pred, 0.5)[0][2] of the reference, with its 1e-6 in the SQ denominator."""
    (pq, _, _), = brute_force_scores(true, pred, 0.5, sq_eps=1e-6)[0]
    return pq


def reference_pannuke(true, pred, types):
    """The PanNuke reference evaluation (run.py) on N x H x W x 6 arrays, by brute force."""
    m_all, b_all = [], []
    for i in range(len(true)):
        tb = reference_binarize(true[i, ..., :5])
        b_all.append(math.nan if len(np.unique(tb)) == 1 else reference_pq(tb, reference_binarize(pred[i, ..., :5])))
        pq = []
        for j in range(5):
            t, p = true[i, ..., j].astype(np.int32), pred[i, ..., j].astype(np.int32)
            pq.append(math.nan if len(np.unique(t)) == 1 else reference_pq(t, p))
        m_all.append(pq)
    with warnings.catch_warnings():  # nanmean of all-NaN: the reference lets it warn and return NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        m_img = [np.nanmean(pq) for pq in m_all]
        classes = [np.nanmean([pq[j] for pq in m_all]) for j in range(5)]
        tissues = sorted(set(types))
        m_t = [np.nanmean([m_img[i] for i in range(len(types)) if types[i] == t]) for t in tissues]
        b_t = [np.nanmean([b_all[i] for i in range(len(types)) if types[i] == t]) for t in tissues]
        return float(np.nanmean(m_t)), float(np.nanmean(b_t)), [float(c) for c in classes]


def write_fold(fold_dir, images, masks, types):
    """A fold in the released on-disk format (float64 arrays, background channel last, tissue names)."""
    fold_dir.mkdir(parents=True)
    np.save(fold_dir / "images.npy", images.astype(np.float64))
    np.save(fold_dir / "masks.npy", masks.astype(np.float64))
    np.save(fold_dir / "types.npy", np.array(types))


def channels_from(label_map, classes, shape):
    """H x W x 6 PanNuke masks from a label map and the class index of each label (ids per channel as
    given: non-contiguous on purpose); channel 5 is background."""
    out = np.zeros(shape + (6,), np.float64)
    for lab, cls in classes.items():
        out[label_map == lab, cls] = lab * 3 + 1
    out[..., 5] = out[..., :5].sum(-1) == 0
    return out


def test_pannuke_scores_agree_with_the_reference_evaluation(tmp_path):
    """Random folds in the on-disk format -> our converter + COCO results -> mPQ, bPQ, per-class PQ equal the
    reference's (up to its 1e-6 in SQ); overlapping predictions are rasterised by score first."""
    rng = np.random.default_rng(5)
    shape, n = (20, 20), 12
    tissues = ["Breast", "Colon", "Skin"]
    types = [tissues[i % 3] for i in range(n)]
    true = np.zeros((n,) + shape + (6,))
    pred = np.zeros((n,) + shape + (6,))
    results = []
    for i in range(n):
        gt = random_instances(rng, shape, int(rng.integers(0, 5)) if i else 0)  # image 0 has no GT
        gt_map = rasterise(gt, list(range(len(gt))), shape)
        gt_cls = {lab: int(rng.integers(0, 5)) for lab in np.unique(gt_map) if lab}
        true[i] = channels_from(gt_map, gt_cls, shape)
        inst = random_instances(rng, shape, int(rng.integers(0, 6)), near=gt)
        scores = rng.choice([0.55, 0.7, 0.95], len(inst))
        labels = [gt_cls.get(int(np.bincount(gt_map[m]).argmax()), 0) if rng.random() < 0.7
                  else int(rng.integers(0, 5)) for m in inst]  # mostly the right class
        # the reference reads per-class channels: the predictions' label map split by class
        pred_map = rasterise(inst, list(scores), shape)
        pred[i] = channels_from(pred_map, {k + 1: labels[k] for k in range(len(inst))}, shape)
        results += [result(i + 1, m, labels[k] + 1, float(scores[k])) for k, m in enumerate(inst)]
    images = rng.integers(0, 256, (n,) + shape + (3,))
    write_fold(tmp_path / "Fold 1", images, true, types)
    coco, _ = convert_pannuke(tmp_path / "Fold 1", tmp_path / "coco", progress=False)
    ev = evaluate_instances(coco, results)
    mpq, bpq, per_class = reference_pannuke(true, pred, types)
    assert ev.settings["pannuke"]
    assert ev.summary["mPQ"] == pytest.approx(mpq, abs=1e-5)
    assert ev.summary["bPQ"] == pytest.approx(bpq, abs=1e-5)
    for name, value in zip(PANNUKE_CLASSES, per_class):
        assert nan_equal(ev.summary[f"PQ_{name}"], value, 1e-5), name


@pytest.fixture()
def worked_example(tmp_path):
    """The closing-note example: three 32 x 32 PanNuke patches in the on-disk format, converted, with
    predictions (a false positive of an absent class, one on an empty patch, a duplicate inside a nucleus)."""
    shape = (32, 32)
    nuc, other = box(*shape, 2, 10, 2, 10), box(*shape, 20, 28, 20, 28)
    inside = box(*shape, 3, 9, 3, 9)          # a duplicate detection lying inside `nuc`
    masks = np.zeros((3,) + shape + (6,))
    masks[0, nuc, PANNUKE_CHANNELS.index("neoplastic")] = 1      # Breast: one neoplastic nucleus
    masks[2, nuc, PANNUKE_CHANNELS.index("inflammatory")] = 4    # Colon: one inflammatory nucleus
    masks[..., 5] = masks[..., :5].sum(-1) == 0                   # image 1 (Breast): no nuclei
    write_fold(tmp_path / "Fold 3", np.full((3,) + shape + (3,), 200.0), masks, ["Breast", "Breast", "Colon"])
    coco, _ = convert_pannuke(tmp_path / "Fold 3", tmp_path / "coco", progress=False)
    cat = {c["name"]: c["id"] for c in coco["categories"]}
    results = [result(1, nuc, cat["neoplastic"], 0.9), result(1, other, cat["dead"], 0.8),  # a 'dead' FP
               result(2, other, cat["connective"], 0.7),                                 # FP on an empty image
               result(3, nuc, cat["inflammatory"], 0.9), result(3, inside, cat["inflammatory"], 0.6)]
    pred = np.zeros_like(masks)  # the same predictions as the reference reads them (masks.npy channels)
    pred[0, nuc, PANNUKE_CHANNELS.index("neoplastic")] = 1
    pred[0, other, PANNUKE_CHANNELS.index("dead")] = 2
    pred[1, other, PANNUKE_CHANNELS.index("connective")] = 1
    pred[2, nuc, PANNUKE_CHANNELS.index("inflammatory")] = 1  # the duplicate has no pixel left
    return coco, results, masks, pred


def test_pannuke_old_and_new_numbers_differ_on_a_worked_example(worked_example):
    """The scores this project printed before (overlap-aware, every false positive counted = today's
    *_strict with scoring='overlap_aware') next to the reference protocol's."""
    coco, results, masks, pred = worked_example
    new = evaluate_instances(coco, results)
    old = evaluate_instances(coco, results, scoring="overlap_aware")
    # reference: Breast mPQ = image 0 only (image 1 skipped, 'dead' skipped) = 1; bPQ = image 0: TP 1, FP 1
    #   -> 2/3. Colon: the duplicate inside the nucleus has no pixel left on the label map -> 1, 1.
    #   mPQ = (1 + 1)/2 = 1, bPQ = (2/3 + 1)/2 = 5/6
    assert new.summary["mPQ"] == pytest.approx(1.0) and new.summary["bPQ"] == pytest.approx(5 / 6)
    ref_mpq, ref_bpq, _ = reference_pannuke(masks, pred, ["Breast", "Breast", "Colon"])
    assert (ref_mpq, ref_bpq) == (pytest.approx(1.0, abs=1e-5), pytest.approx(5 / 6, abs=1e-5))
    # before: Breast mPQ = ((1 + 0)/2 + 0)/2 = 1/4, bPQ = (2/3 + 0)/2 = 1/3; Colon (duplicate = FP): 2/3, 2/3
    #   mPQ = (1/4 + 2/3)/2 = 11/24, bPQ = (1/3 + 2/3)/2 = 1/2
    assert old.summary["mPQ_strict"] == pytest.approx(11 / 24) and old.summary["bPQ_strict"] == pytest.approx(0.5)


def test_evaluate_tool_says_how_every_figure_was_computed(worked_example, tmp_path):
    import json

    from nucleus_seg.evaluation import evaluate_calibrated, format_report
    coco, results, _, _ = worked_example
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    (tmp_path / "pred.json").write_text(json.dumps(results))
    # label maps: mPQ 1 (see above), mPQ_strict: Breast ((1 + 0)/2 + 0)/2, Colon 1 -> 5/8;
    # overlap-aware: the Colon duplicate is a FP there: mPQ (1 + 2/3)/2 = 5/6, mPQ_strict 11/24 (see above)
    for scoring, mpq, mpq_strict in (("label-map", "1.0000", "0.6250"), ("overlap-aware", "0.8333", "0.4583")):
        # what tools/evaluate.py prints (its CLI: tests/test_results_submission.py)
        threshold, res = evaluate_calibrated(tmp_path / "gt.json", tmp_path / "pred.json",
                                             scoring=scoring.replace("-", "_"))
        text = threshold.describe() + "\n" + format_report(res)
        mode = "label maps (a pixel claimed by several" if scoring == "label-map" else "overlap-aware"
        assert f"instance metrics: {mode}" in text and "score >= 0.5" in text
        assert "mPQ/bPQ: PanNuke reference protocol" in text and "mean per tissue, then over tissues" in text
        assert "COCO AP: all predictions ranked by score; mAP* at maxDets 1000, mAP*@100 at maxDets 100" in text
        rows = dict(line.split()[:2] for line in text.splitlines() if line[:1].isalpha() and len(line.split()) == 2)
        assert rows["mPQ"] == mpq and rows["mPQ_strict"] == mpq_strict
        assert "segm_mAP" in rows and "segm_mAP@100" in rows
        assert res["settings"]["scoring"] == scoring.replace("-", "_")
