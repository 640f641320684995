"""Deterministic train/val split: fixed expected members, machine-independent, no image copies."""
import json

import pytest

from nucleus_seg.converters import mask2coco, pannuke_splits, split_names, split_names_stratified
from nucleus_seg.errors import InputError

# SHA-256 ranks do not depend on the machine, Python's hash seed or the numpy version, so the
# expected members can be written down.
SAMPLE_VAL_SEED0 = ["0bf33d3db4282d918ec3da7112d0bf0427d4eafe74b3ee0bb419770eefe8d7d6",
                    "2e2d29fc44444a85049b162eb359a523dec108ccd5bd75022b25547491abf0c7",
                    "7773ac91af61ed041701b7c3b649598e3707cf04c0577f464fd31be687f538fe",
                    "aa58ba4512955771b4f9b459cb4e6a8adb71d11cd6cae662ec2df31d688a5fe0"]


def test_split_members_are_fixed():
    assert split_names(["e", "d", "c", "b", "a"], 0.4, seed=7) == (["a", "b", "d"], ["c", "e"])


def test_split_ignores_input_order_and_changes_with_seed():
    names = [f"img{i:03d}" for i in range(50)]
    train, val = split_names(names, 0.2, seed=3)
    assert split_names(list(reversed(names)), 0.2, seed=3) == (train, val)
    assert len(val) == 10 and sorted(train + val) == names and not set(train) & set(val)
    assert split_names(names, 0.2, seed=4)[1] != val


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_bad_ratio_rejected(ratio):
    with pytest.raises(InputError, match="--val-ratio must be between 0 and 1"):
        split_names(["a", "b"], ratio)


def test_split_files_from_sample(sample_root, tmp_path):
    outputs, _ = mask2coco(sample_root / "train", tmp_path, val_ratio=0.25, seed=0, progress=False)
    assert outputs == [tmp_path / "instance_train.json", tmp_path / "instance_val.json"]
    train, val = (json.loads(p.read_text()) for p in outputs)
    val_ids = [im["file_name"].split("/")[0] for im in val["images"]]
    assert val_ids == SAMPLE_VAL_SEED0
    assert len(train["images"]) == 12
    # Global ids are kept, so the two files never reuse an image or annotation id.
    assert not {im["id"] for im in train["images"]} & {im["id"] for im in val["images"]}
    assert len(train["annotations"]) + len(val["annotations"]) == 730
    assert {a["image_id"] for a in val["annotations"]} <= {im["id"] for im in val["images"]}
    assert all((sample_root / "train" / im["file_name"]).is_file() for im in val["images"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instance_train.json", "instance_val.json"]


def _pannuke_fold(k, tissues):
    """A converted PanNuke fold as pannuke2coco writes it: ids from 1, file names fold<k>_<index>.png."""
    images = [{"id": i + 1, "file_name": f"images/fold{k}_{i:05d}.png", "height": 8, "width": 8,
               "tissue": t, "pannuke_index": i} for i, t in enumerate(tissues)]
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 5, "iscrowd": 0, "area": 4,
             "bbox": [0, 0, 2, 2], "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]} for i in range(len(tissues))]
    return {"images": images, "annotations": anns,
            "categories": [{"id": c + 1, "name": n} for c, n in enumerate("abcde")]}


def test_pannuke_splits_hold_out_validation_from_the_training_folds_by_tissue(tmp_path):
    tissues = ["Breast"] * 20 + ["Colon"] * 10 + ["Skin"]  # one Skin image per fold
    for k in (1, 2, 3):
        (tmp_path / f"instance_fold{k}.json").write_text(json.dumps(_pannuke_fold(k, tissues)))
    outputs = pannuke_splits(tmp_path, val_ratio=0.1, seed=0)
    assert [p.name for p in outputs] == [f"split{k}_{part}.json" for k in (1, 2, 3) for part in ("train", "val")]
    for k, (train_folds, test_fold) in {1: ((1, 2), 3), 2: ((2, 3), 1), 3: ((3, 1), 2)}.items():
        train, val = (json.loads((tmp_path / f"split{k}_{part}.json").read_text()) for part in ("train", "val"))
        names = [im["file_name"] for im in train["images"] + val["images"]]
        assert sorted(names) == sorted(f"images/fold{f}_{i:05d}.png" for f in train_folds for i in range(31))
        assert not any(f"fold{test_fold}_" in n for n in names)  # the test fold is never used
        # 10 % per tissue of the two folds: Breast 40 -> 4, Colon 20 -> 2, Skin 2 -> 1 (at least one)
        counts = {t: sum(im["tissue"] == t for im in val["images"]) for t in ("Breast", "Colon", "Skin")}
        assert counts == {"Breast": 4, "Colon": 2, "Skin": 1}
        ids = [im["id"] for im in train["images"] + val["images"]]
        assert len(set(ids)) == len(ids) == 62  # renumbered: the folds' ids collide, the split's do not
        for part in (train, val):
            assert {a["image_id"] for a in part["annotations"]} == {im["id"] for im in part["images"]}
    first = (tmp_path / "split1_val.json").read_text()
    with pytest.raises(InputError, match="already exists"):
        pannuke_splits(tmp_path)
    pannuke_splits(tmp_path, val_ratio=0.1, seed=0, overwrite=True)
    assert (tmp_path / "split1_val.json").read_text() == first  # deterministic
    (tmp_path / "instance_fold2.json").unlink()
    with pytest.raises(InputError, match="instance_fold2.json"):
        pannuke_splits(tmp_path / "", overwrite=True)


def test_stratified_split_keeps_each_group_in_proportion():
    groups = {**{f"a{i}": "A" for i in range(10)}, **{f"b{i}": "B" for i in range(5)}, "c0": "C"}
    train, val = split_names_stratified(groups, 0.2, seed=1)
    assert sum(n[0] == "a" for n in val) == 2 and sum(n[0] == "b" for n in val) == 1
    assert "c0" in train  # a group of one cannot give an image to validation
    assert sorted(train + val) == sorted(groups) and split_names_stratified(groups, 0.2, seed=1) == (train, val)
