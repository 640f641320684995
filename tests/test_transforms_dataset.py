"""Histology transforms are exact; the nucleus dataset turns RLE into polygons that rasterise back."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nucleus_seg.register  # noqa: F401
from tests.synthetic import make_disc_dataset


def _results_with_instances():
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks, PolygonMasks
    h, w = 6, 10
    img = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    bitmap = np.zeros((1, h, w), np.uint8)
    bitmap[0, 1:3, 6:9] = 1  # rows 1-2, cols 6-8: box [6, 1, 9, 3]
    polygon = [np.array([6, 1, 9, 1, 9, 3, 6, 3], dtype=np.float64)]
    return img, bitmap, dict(
        img=img, img_shape=(h, w), gt_bboxes=HorizontalBoxes(torch.tensor([[6.0, 1.0, 9.0, 3.0]])),
        gt_masks_bitmap=BitmapMasks(bitmap, h, w), gt_masks_polygon=PolygonMasks([polygon], h, w))


@pytest.mark.parametrize("kind", ["bitmap", "polygon"])
def test_rot90_rotates_image_box_and_mask_consistently(kind):
    from nucleus_seg.transforms import RandomRot90
    img, bitmap, res = _results_with_instances()
    results = dict(img=res["img"], img_shape=res["img_shape"], gt_bboxes=res["gt_bboxes"],
                   gt_masks=res[f"gt_masks_{kind}"])
    out = RandomRot90(prob=1.0).transform(results)
    assert np.array_equal(out["img"], np.rot90(img)) and out["img_shape"] == (10, 6)
    expected_mask = np.rot90(bitmap[0])
    got_mask = out["gt_masks"].to_ndarray()[0]
    assert got_mask.shape == (10, 6) and np.array_equal(got_mask, expected_mask)
    ys, xs = np.nonzero(expected_mask)  # the rotated box is the tight box of the rotated mask
    assert out["gt_bboxes"].tensor.tolist() == [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]


def test_rot90_with_prob_zero_changes_nothing():
    from nucleus_seg.transforms import RandomRot90
    img, _, res = _results_with_instances()
    out = RandomRot90(prob=0.0).transform(dict(img=img.copy(), img_shape=(6, 10)))
    assert np.array_equal(out["img"], img) and out["rot90"] is False


def test_random_rescale_scales_by_factor_not_to_a_fixed_size():
    from nucleus_seg.transforms import RandomRescale
    t = RandomRescale(scale_factor=2.0, ratio_range=(1.0, 1.0))
    for h, w in ((256, 320), (100, 50)):
        out = t.transform(dict(img=np.zeros((h, w, 3), np.uint8), img_shape=(h, w)))
        assert out["img"].shape[:2] == (2 * h, 2 * w)
    np.random.seed(0)
    sizes = {RandomRescale(2.0, (0.8, 1.25)).transform(
        dict(img=np.zeros((100, 100, 3), np.uint8), img_shape=(100, 100)))["img"].shape[0]
        for _ in range(20)}
    assert min(sizes) >= 160 and max(sizes) <= 250 and len(sizes) > 5


def test_nucleus_dataset_polygons_rasterise_back_to_the_rle_masks(tmp_path):
    from pycocotools import mask as mask_utils
    from nucleus_seg.datasets import NucleusCocoDataset
    root = make_disc_dataset(tmp_path, n_images=2, n_nuclei=5, radius=5)
    ds = NucleusCocoDataset(data_root=str(root), ann_file="annotations/instance_train.json",
                            data_prefix=dict(img="train/"), pipeline=[], test_mode=True)
    coco = json.loads((root / "annotations" / "instance_train.json").read_text())
    by_id = {a["id"]: a for a in coco["annotations"]}
    info = ds.get_data_info(0)
    h, w = info["height"], info["width"]
    assert len(info["instances"]) == 5
    # mmdet's parse_data_info drops annotation ids; instances keep the file's order.
    anns = [a for a in coco["annotations"] if a["image_id"] == info["img_id"]]
    for inst, ann in zip(info["instances"], anns):
        assert isinstance(inst["mask"], list) and inst["ignore_flag"] == 0
        rle = mask_utils.merge(mask_utils.frPyObjects(inst["mask"], h, w))
        assert np.array_equal(mask_utils.decode(rle), mask_utils.decode(by_id[ann["id"]]["segmentation"]))


def test_training_pipeline_keeps_every_rle_instance(tmp_path):
    """Stock CocoDataset + LoadAnnotations(poly2mask=False) silently ignores RLE masks; ours keeps them."""
    from mmdet.datasets import CocoDataset
    from mmdet.utils import register_all_modules
    from nucleus_seg.datasets import NucleusCocoDataset
    register_all_modules(init_default_scope=True)  # pipeline steps resolve in mmdet's scope
    root = make_disc_dataset(tmp_path, n_images=1, n_nuclei=7)
    pipeline = [dict(type="LoadImageFromFile"),
                dict(type="LoadAnnotations", with_bbox=True, with_mask=True, poly2mask=False),
                dict(type="PackDetInputs")]
    kw = dict(data_root=str(root), ann_file="annotations/instance_train.json",
              data_prefix=dict(img="train/"), pipeline=pipeline, metainfo=dict(classes=("nucleus",)))
    ours = NucleusCocoDataset(**kw)[0]["data_samples"]
    stock = CocoDataset(**kw)[0]["data_samples"]
    assert len(ours.gt_instances) == 7 and len(ours.ignored_instances) == 0
    assert len(stock.gt_instances) == 0 and len(stock.ignored_instances) == 7
