"""PanNuke fold -> PNG + COCO, on fixtures written in the released on-disk format (float64 arrays,
6 mask channels with background last, tissue names as a string array)."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from nucleus_seg.categories import PANNUKE_CHANNELS, PANNUKE_CLASSES
from nucleus_seg.converters import convert_pannuke, pannuke2coco, validate_coco
from nucleus_seg.converters.validate import pannuke_sources
from nucleus_seg.errors import InputError
from nucleus_seg.validation import ProblemsError

SIZE = 256


def channel(name):
    return PANNUKE_CHANNELS.index(name)


@pytest.fixture
def fold(tmp_path):
    """3 patches: #0 with nuclei (id 7 used in two channels), #1 empty, #2 one epithelial nucleus."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, SIZE, SIZE, 3)).astype(np.float64)
    masks = np.zeros((3, SIZE, SIZE, 6), np.float64)
    masks[0, 10:20, 30:45, channel("neoplastic")] = 7
    masks[0, 100:104, 200:210, channel("inflammatory")] = 7        # same id, other channel
    masks[0, 50:60, 50:55, channel("neoplastic")] = 3
    masks[0, 250:256, 0:4, channel("dead")] = 1                     # touches the patch corner
    masks[2, 5:9, 5:9, channel("epithelial")] = 12
    masks[..., channel("background")] = (masks[..., :5].sum(axis=-1) == 0)
    fold_dir = tmp_path / "Fold 1"
    (fold_dir / "images" / "fold1").mkdir(parents=True)
    (fold_dir / "masks" / "fold1").mkdir(parents=True)
    np.save(fold_dir / "images" / "fold1" / "images.npy", images)
    np.save(fold_dir / "masks" / "fold1" / "masks.npy", masks)
    np.save(fold_dir / "images" / "fold1" / "types.npy", np.array(["Breast", "Colon", "Skin"]))
    return fold_dir, images


def test_classes_by_channel_name_and_reused_ids(fold, tmp_path):
    fold_dir, images = fold
    coco, report = convert_pannuke(fold_dir, tmp_path / "out", progress=False)
    assert [c["name"] for c in coco["categories"]] == list(PANNUKE_CLASSES)
    cat = {c["name"]: c["id"] for c in coco["categories"]}
    got = sorted((a["image_id"], a["category_id"], tuple(a["bbox"]), a["area"]) for a in coco["annotations"])
    assert got == sorted([
        (1, cat["neoplastic"], (30, 10, 15, 10), 150),
        (1, cat["inflammatory"], (200, 100, 10, 4), 40),
        (1, cat["neoplastic"], (50, 50, 5, 10), 50),
        (1, cat["dead"], (0, 250, 4, 6), 24),
        (3, cat["epithelial"], (5, 5, 4, 4), 16),
    ])
    assert report.images == 3 and report.annotations == 5


def test_images_tissue_and_empty_patch(fold, tmp_path):
    fold_dir, images = fold
    coco, _ = convert_pannuke(fold_dir, tmp_path / "out", progress=False)
    assert [(im["id"], im["file_name"], im["tissue"]) for im in coco["images"]] == [
        (1, "images/fold1_00000.png", "Breast"), (2, "images/fold1_00001.png", "Colon"),
        (3, "images/fold1_00002.png", "Skin")]
    assert not [a for a in coco["annotations"] if a["image_id"] == 2]  # empty patch kept as image
    png = cv2.imread(str(tmp_path / "out" / "images" / "fold1_00002.png"), cv2.IMREAD_COLOR)
    assert np.array_equal(png[..., ::-1], images[2].astype(np.uint8))  # RGB kept, values exact


def test_single_class_and_validation(fold, tmp_path):
    fold_dir, _ = fold
    out, report = pannuke2coco(fold_dir, tmp_path / "out", single_class=True, validate=True,
                               progress=False)
    coco = json.loads(out.read_text())
    assert out == tmp_path / "out" / "instance_fold1.json"
    assert coco["categories"] == [{"id": 1, "name": "nucleus", "supercategory": "nucleus"}]
    assert {a["category_id"] for a in coco["annotations"]} == {1} and len(coco["annotations"]) == 5


def test_validation_catches_a_wrong_class(fold, tmp_path):
    fold_dir, _ = fold
    coco, _ = convert_pannuke(fold_dir, tmp_path / "out", progress=False)
    assert validate_coco(coco, "x.json", pannuke_sources(fold_dir, coco["categories"])) == []
    coco["annotations"][0]["category_id"] = 5
    problems = validate_coco(coco, "x.json", pannuke_sources(fold_dir, coco["categories"]))
    assert len(problems) == 2
    assert "patch 0, neoplastic instance" in problems[1].problem


def test_existing_images_are_not_clobbered(fold, tmp_path):
    fold_dir, _ = fold
    pannuke2coco(fold_dir, tmp_path / "out", progress=False)
    with pytest.raises(InputError, match="already exists; pass --overwrite"):
        pannuke2coco(fold_dir, tmp_path / "out", name="fold1", progress=False)
    pannuke2coco(fold_dir, tmp_path / "out", overwrite=True, progress=False)


def test_bad_arrays_are_errors(fold, tmp_path):
    fold_dir, _ = fold
    masks_path = fold_dir / "masks" / "fold1" / "masks.npy"
    np.save(masks_path, np.zeros((3, SIZE, SIZE, 5)))
    with pytest.raises(InputError, match=r"shape \(3, 256, 256, 5\) does not match images") as exc:
        convert_pannuke(fold_dir, tmp_path / "out", progress=False)
    assert exc.value.path == str(masks_path)
    masks = np.zeros((3, SIZE, SIZE, 6))
    masks[1, 0, 0, 0] = 2.5
    np.save(masks_path, masks)
    with pytest.raises(InputError, match="patch 1, channel neoplastic: instance ids must be"):
        convert_pannuke(fold_dir, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # a failed run leaves nothing, not even its folders
    masks_path.unlink()
    with pytest.raises(InputError, match="no masks.npy found"):
        convert_pannuke(fold_dir, tmp_path / "out", progress=False)


def _add_nucleus_with_a_hole(fold_dir):
    """A ring-shaped nucleus: COCO polygons cannot hold its hole, so --polygons fails validation."""
    masks_path = fold_dir / "masks" / "fold1" / "masks.npy"
    masks = np.load(masks_path)
    masks[1, 30:40, 30:40, channel("connective")] = 5
    masks[1, 33:37, 33:37, channel("connective")] = 0
    np.save(masks_path, masks)


def _tree(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_failed_validation_writes_nothing(fold, tmp_path):
    fold_dir, _ = fold
    _add_nucleus_with_a_hole(fold_dir)
    out_dir = tmp_path / "new" / "out"
    with pytest.raises(ProblemsError, match="instance_fold1.json: validation failed"):
        pannuke2coco(fold_dir, out_dir, segmentation="polygon", validate=True, progress=False)
    assert not (tmp_path / "new").exists()  # not even the folders it made


def test_failed_validation_leaves_existing_files_untouched(fold, tmp_path):
    fold_dir, _ = fold
    out_dir = tmp_path / "out"
    pannuke2coco(fold_dir, out_dir, validate=True, progress=False)
    (out_dir / "notes.txt").write_text("the user's own file")
    before = _tree(out_dir)
    images_path = fold_dir / "images" / "fold1" / "images.npy"
    np.save(images_path, 255 - np.load(images_path))  # a rerun would write different PNGs
    _add_nucleus_with_a_hole(fold_dir)
    with pytest.raises(ProblemsError):
        pannuke2coco(fold_dir, out_dir, segmentation="polygon", validate=True, overwrite=True,
                     progress=False)
    assert _tree(out_dir) == before
    assert sorted(p.name for p in out_dir.iterdir()) == ["images", "instance_fold1.json", "notes.txt"]
    pannuke2coco(fold_dir, out_dir, validate=True, overwrite=True, progress=False)  # RLE holds the hole
    after = _tree(out_dir)
    assert after.keys() == before.keys() and after[Path("images/fold1_00000.png")] != before[
        Path("images/fold1_00000.png")]
    assert len(json.loads(after[Path("instance_fold1.json")])["annotations"]) == 6
