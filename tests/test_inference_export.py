"""Export formats: COCO results, QuPath GeoJSON, label image, overlay."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import shapely
from pycocotools import mask as mask_util
from shapely.geometry import shape

from nucleus_seg.errors import InputError
from nucleus_seg.geometry import MaskCrop
from nucleus_seg.inference import (Instances, export_geojson, export_label_image, export_overlay,
                                   to_coco_results)
from tests.standins import disc_label_image

H, W = 120, 160
DISCS = [(30, 40, 12), (60, 100, 15), (100, 20, 9), (5, 150, 8)]  # the last one is cut by the border


@pytest.fixture
def discs():
    labels = disc_label_image(H, W, DISCS)
    crops = [MaskCrop.from_mask(labels == k + 1) for k in range(len(DISCS))]
    inst = Instances(np.array([0.9, 0.8, 0.7, 0.6]), np.zeros(4), crops, None, H, W)
    return labels, inst


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


def test_geojson_is_a_qupath_detection_collection_whose_geometry_fills_back_to_the_masks(tmp_path, discs):
    labels, inst = discs
    path = export_geojson(tmp_path / "a.geojson", inst, ["nucleus"])
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == len(DISCS)
    yc, xc = np.mgrid[0:H, 0:W] + 0.5
    for feature, crop, score in zip(doc["features"], inst.masks, inst.scores):
        assert feature["type"] == "Feature"
        props = feature["properties"]
        assert props["objectType"] == "detection"
        assert props["classification"]["name"] == "nucleus"
        assert len(props["classification"]["color"]) == 3
        assert props["score"] == pytest.approx(float(score), abs=1e-4)
        geom = feature["geometry"]
        assert geom["type"] == "Polygon" and len(geom["coordinates"]) == 1
        # vertices on pixel corners in image coordinates: sampling pixel centres gives the nucleus
        assert np.array_equal(shapely.contains_xy(shape(geom), xc, yc), crop.to_full(H, W))


def test_geojson_writes_every_part_of_a_nucleus(tmp_path):
    mask = np.zeros((10, 12), bool)
    mask[1:4, 1:4] = mask[6:9, 7:11] = True
    mask[2, 2] = False  # a hole in the first part
    inst = Instances(np.array([0.9]), np.zeros(1), [MaskCrop.from_mask(mask)], None, 10, 12)
    geom = json.loads(export_geojson(tmp_path / "m.geojson", inst, ["nucleus"]).read_text())[
        "features"][0]["geometry"]
    assert geom["type"] == "MultiPolygon" and sorted(len(p) for p in geom["coordinates"]) == [1, 2]
    yc, xc = np.mgrid[0:10, 0:12] + 0.5
    assert np.array_equal(shapely.contains_xy(shape(geom), xc, yc), mask)


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
