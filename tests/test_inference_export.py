"""Export formats (COCO RLE, QuPath GeoJSON, label image, overlay) and image reading conversions."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_util

from nucleus_seg.errors import InputError
from nucleus_seg.inference import (Instances, MaskCrop, crop_to_rle, export_geojson, export_label_image,
                               export_overlay, read_image, to_coco_results)
from nucleus_seg.inference.standin import disc_label_image

H, W = 120, 160
DISCS = [(30, 40, 12), (60, 100, 15), (100, 20, 9), (5, 150, 8)]  # the last one is cut by the border


@pytest.fixture
def discs():
    labels = disc_label_image(H, W, DISCS)
    crops = [MaskCrop.from_mask(labels == k + 1) for k in range(len(DISCS))]
    inst = Instances(np.array([0.9, 0.8, 0.7, 0.6]), np.zeros(4), crops, None, H, W)
    return labels, inst


@pytest.mark.parametrize("x0,y0,h,w,img_h,img_w", [
    (3, 5, 7, 9, 20, 30),     # interior
    (0, 0, 20, 4, 20, 30),    # full height: runs continue across columns
    (26, 13, 7, 4, 20, 30),   # touches bottom-right corner
])
def test_crop_rle_matches_pycocotools_encoding_of_the_full_mask(x0, y0, h, w, img_h, img_w):
    rng = np.random.default_rng(x0 + y0)
    mask = rng.random((h, w)) > 0.4
    mask[0, 0] = mask[-1, -1] = True
    crop = MaskCrop(x0, y0, mask)
    full = crop.to_full(img_h, img_w)
    rle = crop_to_rle(crop, img_h, img_w)
    expected = mask_util.encode(np.asfortranarray(full.astype(np.uint8)))
    assert rle["counts"] == expected["counts"].decode("ascii")
    assert np.array_equal(mask_util.decode({**rle, "counts": rle["counts"].encode()}), full)


def test_coco_results_have_str_rle_image_id_and_decode_to_the_masks(discs):
    labels, inst = discs
    records = json.loads(json.dumps(to_coco_results(inst, image_id=7)))
    assert len(records) == len(DISCS)
    for rec, crop in zip(records, inst.masks):
        assert rec["image_id"] == 7 and rec["category_id"] == 1
        assert isinstance(rec["segmentation"]["counts"], str)
        assert rec["segmentation"]["size"] == [H, W]
        decoded = mask_util.decode({"size": [H, W], "counts": rec["segmentation"]["counts"].encode()})
        assert np.array_equal(decoded.astype(bool), crop.to_full(H, W))
        x, y, w, h = rec["bbox"]
        assert (x, y, x + w, y + h) == crop.box and rec["area"] == crop.area


def test_geojson_is_a_qupath_detection_collection_whose_polygons_fill_back_to_the_masks(tmp_path, discs):
    labels, inst = discs
    path = export_geojson(tmp_path / "a.geojson", inst, ["nucleus"])
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == len(DISCS)
    for feature, crop, score in zip(doc["features"], inst.masks, inst.scores):
        assert feature["type"] == "Feature"
        props = feature["properties"]
        assert props["objectType"] == "detection"
        assert props["classification"]["name"] == "nucleus"
        assert len(props["classification"]["color"]) == 3
        assert props["score"] == pytest.approx(float(score), abs=1e-4)
        geom = feature["geometry"]
        assert geom["type"] == "Polygon" and len(geom["coordinates"]) == 1
        ring = geom["coordinates"][0]
        assert len(ring) >= 4 and ring[0] == ring[-1]
        # image pixel coordinates: filling the ring gives back the nucleus
        filled = np.zeros((H, W), np.uint8)
        cv2.fillPoly(filled, [np.array(ring[:-1], np.int32)], 1)
        gt = crop.to_full(H, W)
        assert (filled.astype(bool) & gt).sum() / (filled.astype(bool) | gt).sum() > 0.97


def test_label_png_is_16_bit_with_one_id_per_nucleus(tmp_path, discs):
    labels, inst = discs
    path = export_label_image(tmp_path / "img", inst)
    assert path.name == "img.labels.png"
    read = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert read.dtype == np.uint16 and read.shape == (H, W)
    assert set(np.unique(read).tolist()) == set(range(len(DISCS) + 1))
    for k, crop in enumerate(inst.sorted_by_score().masks):  # ids follow descending score
        assert np.array_equal(read == k + 1, crop.to_full(H, W))


def test_label_image_with_65536_or_more_nuclei_is_a_uint32_npy(tmp_path):
    n = 65536
    crops = [MaskCrop(i % 300, i // 300, np.ones((1, 1), bool)) for i in range(n)]
    inst = Instances(np.linspace(1, 0.5, n), np.zeros(n), crops, None, 240, 300)
    path = export_label_image(tmp_path / "many", inst)
    assert path.name == "many.labels.npy"
    arr = np.load(path)
    assert arr.dtype == np.uint32 and arr.max() == n and arr[0, 0] == 1 and arr[218, 135] == n


def test_overlay_draws_contours_in_class_colour_and_leaves_the_rest(tmp_path, discs):
    labels, inst = discs
    image = np.full((H, W, 3), 200, np.uint8)
    path = export_overlay(tmp_path / "o.png", image, inst)
    read = cv2.imread(str(path))[:, :, ::-1]
    assert read.shape == (H, W, 3)
    changed = (read != 200).any(axis=2)
    assert changed.any()
    # contour pixels sit on nucleus boundaries, never far inside or far outside
    assert (labels[changed] > 0).all()
    assert not changed[30, 40] and not changed[115, 155]
    assert (read[changed] == [255, 64, 64]).all()


def test_exports_refuse_to_overwrite_unless_asked(tmp_path, discs):
    labels, inst = discs
    export_geojson(tmp_path / "a.geojson", inst, ["nucleus"])
    with pytest.raises(InputError, match="already exists"):
        export_geojson(tmp_path / "a.geojson", inst, ["nucleus"])
    export_geojson(tmp_path / "a.geojson", Instances.empty(H, W), ["nucleus"], overwrite=True)
    assert json.loads((tmp_path / "a.geojson").read_text())["features"] == []


# ----------------------------------------------------------------------------- reading images
def test_read_image_returns_rgb_from_colour_files(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    rgb = read_image(tmp_path / "red.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 5, 3)
    assert (rgb[..., 0] == 255).all() and (rgb[..., 1:] == 0).all()


def test_read_image_converts_gray_rgba_and_16_bit(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    out = read_image(tmp_path / "g.png")
    assert out.shape == (4, 5, 3) and (out == gray[..., None]).all()

    bgra = np.dstack([np.full((4, 5), v, np.uint8) for v in (10, 20, 30, 0)])
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    assert (read_image(tmp_path / "a.png") == [30, 20, 10]).all()

    g16 = np.array([[0, 1000], [2000, 4000]], np.uint16)  # a 12-bit camera in a 16-bit file
    cv2.imwrite(str(tmp_path / "g16.tif"), g16)
    out = read_image(tmp_path / "g16.tif")
    assert out.dtype == np.uint8
    assert out[..., 0].tolist() == [[0, 64], [128, 255]]


def test_read_image_names_the_file_when_it_cannot_be_read(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="broken.png.*cannot be read"):
        read_image(bad)
    with pytest.raises(InputError, match="file not found"):
        read_image(tmp_path / "missing.png")
