"""Deterministic train/val split: fixed expected members, machine-independent, no image copies."""
import json

import pytest

from nucleus_seg.converters import mask2coco, split_names
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
