"""DSB / TCGA layout -> COCO on the shared tiles, the bundled sample and synthetic bad inputs."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from nucleus_seg.converters import convert_dsb, mask2coco, validate_coco
from nucleus_seg.converters.validate import dsb_sources
from nucleus_seg.errors import InputError

SHARED_ID = "00ae65c1c6631ae6f2be1a449902976e6eb8483bf6b0740d00530220832c6d3e"


@pytest.fixture(scope="module")
def shared_coco(dsb_root):
    coco, report, _ = convert_dsb(dsb_root / "train", progress=False)
    return coco, report


def test_shared_train_counts_and_categories(shared_coco):
    coco, report = shared_coco
    assert len(coco["images"]) == 64 and report.images == 64
    assert len(coco["annotations"]) == 2855 and report.annotations == 2855
    assert coco["categories"] == [{"id": 1, "name": "nucleus", "supercategory": "nucleus"}]
    assert [im["id"] for im in coco["images"]] == list(range(1, 65))
    assert [a["id"] for a in coco["annotations"]] == list(range(1, 2856))
    assert {a["category_id"] for a in coco["annotations"]} == {1}
    assert {a["iscrowd"] for a in coco["annotations"]} == {0}
    names = [im["file_name"] for im in coco["images"]]
    assert names == sorted(names)  # ids follow sorted folder names
    assert coco["images"][0] == {"id": 1, "file_name": f"{SHARED_ID}/images/{SHARED_ID}.png",
                                 "height": 256, "width": 320}


def test_shared_known_bbox_and_area(dsb_root, shared_coco):
    coco, _ = shared_coco
    mask_path = sorted((dsb_root / "train" / SHARED_ID / "masks").glob("*.png"))[0]
    ys, xs = np.nonzero(cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE))
    expected = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
    first = coco["annotations"][0]  # image 1's first mask in sorted order
    assert first["image_id"] == 1
    assert first["bbox"] == expected and first["area"] == len(xs)


def test_shared_rle_round_trips_pixel_exactly(dsb_root, shared_coco):
    coco, _ = shared_coco
    problems = validate_coco(coco, "instance_all.json", dsb_sources(dsb_root / "train"))
    assert problems == []


def test_validation_catches_a_changed_pixel(dsb_root, shared_coco):
    coco, _ = shared_coco
    ann = coco["annotations"][0]
    wrong = json.loads(json.dumps({**coco, "images": coco["images"][:1],
                                   "annotations": [a for a in coco["annotations"] if a["image_id"] == 1]}))
    from pycocotools import mask as mask_utils
    mask = mask_utils.decode({"size": ann["segmentation"]["size"],
                              "counts": ann["segmentation"]["counts"].encode()})
    x, y, w, h = ann["bbox"]
    mask[y + h // 2, x] ^= 1  # flip one pixel on the left edge row inside the box
    wrong["annotations"][0]["segmentation"]["counts"] = mask_utils.encode(
        np.asfortranarray(mask))["counts"].decode()
    problems = validate_coco(wrong, "bad.json", dsb_sources(dsb_root / "train"))
    assert any("RLE matches no source mask pixel-exactly" in p.problem for p in problems)
    assert any(p.path.endswith(".png") and "no annotation" in p.problem for p in problems)


def test_sample_counts_and_polygons(sample_root, tmp_path):
    outputs, report = mask2coco(sample_root / "train", tmp_path, segmentation="polygon",
                                validate=True, progress=False)
    coco = json.loads(outputs[0].read_text())
    assert outputs == [tmp_path / "instance_all.json"]
    assert (len(coco["images"]), len(coco["annotations"])) == (16, 730)
    rings = [r for a in coco["annotations"] for r in a["segmentation"]]
    assert all(len(r) >= 6 and len(r) % 2 == 0 for r in rings)


def test_workers_give_identical_output(sample_root):
    single, _, _ = convert_dsb(sample_root / "train", progress=False)
    pooled, _, _ = convert_dsb(sample_root / "train", workers=2, progress=False)
    assert json.dumps(single) == json.dumps(pooled)


def test_image_root_makes_file_names_relative(sample_root):
    coco, _, _ = convert_dsb(sample_root / "train", image_root=sample_root, progress=False)
    first = coco["images"][0]["file_name"]
    assert first.startswith("train/") and (sample_root / first).is_file()


# --- synthetic inputs -------------------------------------------------------------------------

def make_sample(root: Path, sample_id: str, image, masks):
    """Write ``<root>/<id>/images/<id>.png`` and one PNG per mask; returns the sample folder."""
    (root / sample_id / "images").mkdir(parents=True)
    (root / sample_id / "masks").mkdir()
    assert cv2.imwrite(str(root / sample_id / "images" / f"{sample_id}.png"), image)
    for i, mask in enumerate(masks):
        assert cv2.imwrite(str(root / sample_id / "masks" / f"m{i:02d}.png"), mask)
    return root / sample_id


def square(h, w, y, x, size, value=255, dtype=np.uint8):
    mask = np.zeros((h, w), dtype)
    mask[y:y + size, x:x + size] = value
    return mask


def test_image_encodings_rgba_grey_palette_16bit(tmp_path):
    from PIL import Image
    masks = [square(16, 20, 2, 3, 4)]
    make_sample(tmp_path, "a_rgba", np.zeros((16, 20, 4), np.uint8), masks)
    make_sample(tmp_path, "b_grey", np.zeros((16, 20), np.uint8), masks)
    make_sample(tmp_path, "c_16bit", np.zeros((16, 20, 3), np.uint16), masks)
    folder = make_sample(tmp_path, "d_palette", np.zeros((16, 20), np.uint8), masks)
    Image.fromarray(np.zeros((16, 20), np.uint8), mode="P").save(folder / "images" / "d_palette.png")
    coco, report, _ = convert_dsb(tmp_path, progress=False)
    assert [(im["id"], im["height"], im["width"]) for im in coco["images"]] == [
        (1, 16, 20), (2, 16, 20), (3, 16, 20), (4, 16, 20)]
    assert [a["bbox"] for a in coco["annotations"]] == [[3, 2, 4, 4]] * 4


def test_empty_overlapping_and_stray_files(tmp_path):
    folder = make_sample(tmp_path, "s1", np.zeros((16, 20, 3), np.uint8),
                         [square(16, 20, 1, 1, 5), square(16, 20, 3, 3, 5), np.zeros((16, 20), np.uint8),
                          square(16, 20, 10, 12, 3, value=1)])
    (folder / "masks" / ".ipynb_checkpoints").mkdir()
    (folder / "masks" / "notes.txt").write_text("x")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "README.md").write_text("x")
    coco, report, _ = convert_dsb(tmp_path, progress=False)
    assert len(coco["annotations"]) == 3
    assert report.empty_masks == [str(folder / "masks" / "m02.png")]
    assert report.overlapping_masks == [str(folder / "masks" / "m00.png"), str(folder / "masks" / "m01.png")]
    assert len(report.notes) == 4 and all("ignored" in n for n in report.notes)
    assert coco["annotations"][2]["area"] == 9  # the 0/1 mask


def test_mask_size_mismatch_names_both_files(tmp_path):
    folder = make_sample(tmp_path, "s1", np.zeros((16, 20, 3), np.uint8), [square(16, 21, 1, 1, 3)])
    with pytest.raises(InputError) as exc:
        convert_dsb(tmp_path, progress=False)
    assert exc.value.path == str(folder / "masks" / "m00.png")
    assert exc.value.problem == f"mask is 21x16 but its image {folder / 'images' / 's1.png'} is 20x16"


def test_mask_size_mismatch_in_worker_is_the_same_error(tmp_path):
    make_sample(tmp_path, "s0", np.zeros((16, 20, 3), np.uint8), [square(16, 20, 1, 1, 3)])
    folder = make_sample(tmp_path, "s1", np.zeros((16, 20, 3), np.uint8), [square(15, 20, 1, 1, 3)])
    with pytest.raises(InputError, match="mask is 20x15 but its image") as exc:
        convert_dsb(tmp_path, workers=2, progress=False)
    assert exc.value.path == str(folder / "masks" / "m00.png")


def test_duplicate_ids_across_inputs_rejected(tmp_path):
    make_sample(tmp_path / "one", "abc", np.zeros((8, 8), np.uint8), [square(8, 8, 1, 1, 2)])
    make_sample(tmp_path / "two", "ABC", np.zeros((8, 8), np.uint8), [square(8, 8, 1, 1, 2)])
    with pytest.raises(InputError, match=r"duplicate image id 'ABC' \(also .*one/abc\)") as exc:
        convert_dsb([tmp_path / "one", tmp_path / "two"], progress=False)
    assert exc.value.path == str(tmp_path / "two" / "ABC")


@pytest.mark.parametrize("damage, problem", [
    ("no_image", "has no image named s1.png"),
    ("no_masks", "has no masks/ folder (expected <id>/masks/*.png)"),
    ("bad_mask", "cannot be decoded as a mask"),
    ("full_mask", "mask covers the whole image (is its background non-zero?)"),
])
def test_broken_samples_are_one_line_errors(tmp_path, damage, problem):
    folder = make_sample(tmp_path, "s1", np.zeros((8, 8), np.uint8), [square(8, 8, 1, 1, 2)])
    if damage == "no_image":
        (folder / "images" / "s1.png").rename(folder / "images" / "other.png")
    elif damage == "no_masks":
        for p in (folder / "masks").iterdir():
            p.unlink()
        (folder / "masks").rmdir()
    elif damage == "bad_mask":
        (folder / "masks" / "m00.png").write_bytes(b"\x89PNG broken")
    elif damage == "full_mask":
        cv2.imwrite(str(folder / "masks" / "m00.png"), np.full((8, 8), 255, np.uint8))
    with pytest.raises(InputError) as exc:
        convert_dsb(tmp_path, progress=False)
    assert exc.value.problem == problem


def test_empty_input_folder_is_an_error(tmp_path):
    with pytest.raises(InputError, match="contains no sample folders"):
        convert_dsb(tmp_path, progress=False)


def test_pycocotools_scores_the_output_against_itself(sample_root, tmp_path):
    """What a COCO scorer does with the file: load it, take its annotations as results, AP = 1."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    outputs, _ = mask2coco(sample_root / "train", tmp_path, progress=False)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(outputs[0]))
        results = [{"image_id": a["image_id"], "category_id": a["category_id"],
                    "segmentation": a["segmentation"], "score": 1.0} for a in gt.dataset["annotations"]]
        evaluator = COCOeval(gt, gt.loadRes(results), "segm")
        evaluator.params.maxDets = [1, 10, 1000]  # dense tiles can hold more than 100 nuclei
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, 0, 0, -1]  # IoU x recall, class 1, all areas, 1000 dets
    assert precision.min() == pytest.approx(1.0)


def test_mmdet_loads_boxes_and_masks(sample_root, tmp_path):
    """The file as MMDetection's CocoDataset reads it: same boxes (x1, y1, x2, y2) and mask pixels."""
    pytest.importorskip("mmcv.ops", reason="mmcv not built in this environment")
    from mmdet.datasets import CocoDataset
    from mmengine.registry import init_default_scope
    init_default_scope("mmdet")
    outputs, _ = mask2coco(sample_root / "train", tmp_path, progress=False)
    coco = json.loads(outputs[0].read_text())
    dataset = CocoDataset(data_root=str(sample_root / "train"), ann_file=str(outputs[0]),
                          data_prefix=dict(img=""), metainfo=dict(classes=("nucleus",)),
                          filter_cfg=dict(filter_empty_gt=False),
                          pipeline=[dict(type="LoadImageFromFile"),
                                    dict(type="LoadAnnotations", with_bbox=True, with_mask=True)])
    assert len(dataset) == 16
    sample = dataset[0]
    anns = [a for a in coco["annotations"] if a["image_id"] == 1]
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)])
    assert np.array_equal(sample["gt_bboxes"].numpy(), boxes)
    assert sample["gt_masks"].masks.sum(axis=(1, 2)).tolist() == [a["area"] for a in anns]
