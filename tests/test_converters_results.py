"""COCO results -> label maps, type maps and PanNuke masks.npy: overlaps resolved by score (worked
by hand), the PanNuke layout read back by the PanNuke converter, and exact round trips."""
import json

import cv2
import numpy as np
import pytest

from nucleus_seg.categories import PANNUKE_CHANNELS
from nucleus_seg.converters.labels import LabelOptions
from nucleus_seg.converters.pannuke import patch_instances
from nucleus_seg.converters.pipeline import labels2coco, mask2coco
from nucleus_seg.converters.results import coco_results_to_label_maps
from nucleus_seg.errors import InputError
from nucleus_seg.geometry import MaskCrop, crop_to_rle

from formats import crop_key, decoded


def box(x0, y0, w, h, height=12, width=16):
    return crop_to_rle(MaskCrop(x0, y0, np.ones((h, w), bool)), height, width)


@pytest.fixture
def small(tmp_path):
    """One 12 x 16 image, three overlapping predictions and one below the threshold."""
    images = {"images": [{"id": 5, "file_name": "sub/p0.png", "height": 12, "width": 16}],
              "categories": [{"id": 1, "name": "Neoplastic"}, {"id": 2, "name": "inflammatory"}]}
    results = [
        {"image_id": 5, "category_id": 1, "segmentation": box(0, 0, 6, 6), "score": 0.6},
        {"image_id": 5, "category_id": 2, "segmentation": box(4, 4, 6, 6), "score": 0.9},
        {"image_id": 5, "category_id": 2, "segmentation": box(5, 5, 2, 2), "score": 0.5},   # inside #2
        {"image_id": 5, "category_id": 1, "segmentation": box(12, 0, 3, 3), "score": 0.1},
        {"image_id": 5, "category_id": 1, "segmentation": [[12, 8, 15, 8, 15, 11, 12, 11]], "score": 0.7},
    ]
    (tmp_path / "images.json").write_text(json.dumps(images))
    (tmp_path / "results.json").write_text(json.dumps(results))
    return tmp_path / "results.json", tmp_path / "images.json"


def test_overlaps_by_score_ids_by_rank_and_types(small, tmp_path):
    results, images = small
    report = coco_results_to_label_maps(results, images, tmp_path / "out", score_thr=0.3, pannuke=True)
    inst = cv2.imread(str(tmp_path / "out" / "inst" / "p0.png"), cv2.IMREAD_UNCHANGED)
    types = cv2.imread(str(tmp_path / "out" / "types" / "p0.png"), cv2.IMREAD_UNCHANGED)
    assert inst.dtype == np.uint16 and types.dtype == np.uint8
    want = np.zeros((12, 16), np.uint16)
    want[0:6, 0:6] = 3                 # score 0.6: rank 3
    want[4:10, 4:10] = 1               # score 0.9 wins the overlap
    want[8:11, 12:15] = 2              # the polygon, score 0.7 (pycocotools: [12, 15) x [8, 11))
    assert (inst == want).all()        # id 4 (score 0.5) lost every pixel; 0.1 is below 0.3
    assert (types == np.choose(want, [0, 2, 1, 1])).all()
    assert (report.kept, report.covered, report.below_threshold) == (3, 1, 1)
    masks = np.load(tmp_path / "out" / "masks.npy")
    assert masks.shape == (1, 12, 16, 6) and masks.dtype == np.float64
    neo, inf = PANNUKE_CHANNELS.index("neoplastic"), PANNUKE_CHANNELS.index("inflammatory")
    assert (masks[0, ..., neo] == np.where(np.isin(want, [2, 3]), want, 0)).all()
    assert (masks[0, ..., inf] == np.where(want == 1, 1, 0)).all()
    assert (masks[0, ..., 5] == (want == 0)).all()
    # the PanNuke converter reads the layout back: three nuclei, each in its class
    found = sorted((name, int(i), c.area) for name, i, c in patch_instances(masks[0]))
    assert found == [("inflammatory", 1, 36), ("neoplastic", 2, 9), ("neoplastic", 3, 36 - 4)]


def test_malformed_results_are_one_line_errors(small, tmp_path):
    results, images = small
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(InputError, match="is a COCO dataset, not a results list"):
        coco_results_to_label_maps(bad, images, tmp_path / "o")
    bad.write_text(json.dumps([{"image_id": 99, "category_id": 1, "segmentation": box(0, 0, 1, 1), "score": 1}]))
    with pytest.raises(InputError) as err:
        coco_results_to_label_maps(bad, images, tmp_path / "o")
    assert str(err.value) == f"{bad}: result 0: image_id 99 is not in {images}"
    bad.write_text(json.dumps([{"image_id": 5, "category_id": 1, "segmentation": box(0, 0, 1, 1, 20, 20),
                                "score": 1}]))
    with pytest.raises(InputError, match=r"result 0: RLE size \[20, 20\] but the image is 12 x 16"):
        coco_results_to_label_maps(bad, images, tmp_path / "o")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"images": json.loads(images.read_text())["images"],
                                 "categories": [{"id": 1, "name": "nucleus"}, {"id": 2, "name": "x"}]}))
    with pytest.raises(InputError, match=r"categories \['nucleus', 'x'\] are not PanNuke classes"):
        coco_results_to_label_maps(results, other, tmp_path / "o", pannuke=True)
    assert not [p for p in (tmp_path / "o").rglob("*") if p.is_file()]
    coco_results_to_label_maps(results, other, tmp_path / "o", pannuke=True,
                               channel_map={"nucleus": 0, "x": 4})
    with pytest.raises(InputError, match="already exists; pass --overwrite to replace it"):
        coco_results_to_label_maps(results, other, tmp_path / "o")


def test_ground_truth_through_label_maps_and_back_is_exact(sample_root, tmp_path):
    """GT as results (all scores distinct) -> label maps -> labels2coco: every nucleus unchanged
    (the DSB masks do not overlap)."""
    out, _ = mask2coco([sample_root / "train"], tmp_path / "gt", progress=False)
    coco = json.loads(out[0].read_text())
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": a["segmentation"],
                "score": 1 - 1e-4 * a["id"]} for a in coco["annotations"]]
    (tmp_path / "results.json").write_text(json.dumps(results))
    coco_results_to_label_maps(tmp_path / "results.json", out[0], tmp_path / "maps", pannuke=True,
                               channel_map={"nucleus": 0})
    images = tmp_path / "images"
    images.mkdir()
    for image in coco["images"]:
        (images / f"{image['file_name'].split('/')[-1]}").write_bytes(
            (sample_root / "train" / image["file_name"]).read_bytes())
    _, report, back = labels2coco(images, tmp_path / "maps" / "inst", tmp_path / "back", LabelOptions())
    assert report.annotations == len(coco["annotations"]) == 730
    name_to_id = {im["file_name"].split("/")[-1]: im["id"] for im in back["images"]}
    exact = 0
    for image in coco["images"]:
        got = {crop_key(c) for c in decoded(back, name_to_id[image["file_name"].split("/")[-1]])}
        exact += sum(crop_key(c) in got for c in decoded(coco, image["id"]))
    assert exact == 730
    masks = np.load(tmp_path / "maps" / "masks.npy", mmap_mode="r")
    assert masks.shape == (16, 256, 320, 6)
    assert sum(1 for k in range(16) for _ in patch_instances(np.asarray(masks[k]))) == 730


def test_cli(small, repo_root, tmp_path):
    from test_converters_cli import run

    results, images = small
    ok = run(repo_root, "coco2labels.py", results, images, "--out-dir", tmp_path / "c", "--score-thr", "0.3")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0] == ("1 images: 3 instances in the label maps from 5 predictions "
                                         "(1 below the score threshold, 1 wholly covered by higher-scoring ones)")
    bad = run(repo_root, "coco2labels.py", results, images, "--out-dir", tmp_path / "c", "--pannuke",
              "--channel", "nucleus=5")
    assert bad.returncode == 2
    assert bad.stderr == "error: --channel 'nucleus=5' is not NAME=INDEX with INDEX 0-4\n"
