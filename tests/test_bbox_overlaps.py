"""ChunkedBboxOverlaps2D: the same IoU matrix (and assignment) as mmdet's, one block at a time."""
from __future__ import annotations

import pytest
import torch

import nucleus_seg.register  # noqa: F401
from mmdet.models.task_modules.assigners import BboxOverlaps2D, MaxIoUAssigner
from mmengine.structures import InstanceData

from nucleus_seg.models.bbox_overlaps import ChunkedBboxOverlaps2D


def _boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 100
    return torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 30 + 1], 1)


@pytest.mark.parametrize("mode", ["iou", "iof", "giou"])
def test_blocks_give_exactly_the_upstream_matrix(mode):
    a, b = _boxes(37, 0), _boxes(501, 1)
    chunked = ChunkedBboxOverlaps2D(block_pairs=64)  # 1 column per block: many blocks, a ragged end
    assert torch.equal(chunked(a, b, mode), BboxOverlaps2D()(a, b, mode))
    wide = ChunkedBboxOverlaps2D(block_pairs=37 * 40)  # 40 columns per block
    scored = torch.cat([b, torch.rand(len(b), 1)], 1)  # (n, 5) boxes with scores are accepted too
    assert torch.equal(wide(a, scored, mode), BboxOverlaps2D()(a, scored, mode))


def test_empty_and_aligned_inputs_pass_through():
    chunked = ChunkedBboxOverlaps2D(block_pairs=4)
    assert chunked(_boxes(0, 0), _boxes(9, 1)).shape == (0, 9)
    assert chunked(_boxes(9, 0), _boxes(0, 1)).shape == (9, 0)
    a, b = _boxes(9, 0), _boxes(9, 1)
    assert torch.equal(chunked(a, b, is_aligned=True), BboxOverlaps2D()(a, b, is_aligned=True))


def test_assigner_result_is_unchanged():
    priors, gt = _boxes(3000, 2), _boxes(60, 3)
    results = []
    for calc in (dict(type="BboxOverlaps2D"), dict(type="ChunkedBboxOverlaps2D", block_pairs=1000)):
        assigner = MaxIoUAssigner(pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                                  match_low_quality=True, iou_calculator=calc)
        results.append(assigner.assign(InstanceData(priors=priors),
                                       InstanceData(bboxes=gt, labels=torch.zeros(60, dtype=torch.long))))
    assert (results[0].gt_inds > 0).sum() > 30  # a real assignment, not all background
    assert torch.equal(results[0].gt_inds, results[1].gt_inds)
    assert torch.equal(results[0].max_overlaps, results[1].max_overlaps)
