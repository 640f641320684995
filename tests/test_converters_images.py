"""Unlabeled image folder -> COCO keeping the ids of test_img_ids.json; mismatches are errors."""
import json

import cv2
import numpy as np
import pytest

from nucleus_seg.converters import convert_image_folder, images2coco
from nucleus_seg.errors import InputError


def test_shared_test_set_keeps_listed_ids(dsb_root, tmp_path):
    ids_file = dsb_root / "test_img_ids.json"
    out, coco, notes = images2coco(dsb_root / "test", tmp_path / "test.json", ids_file)
    listed = sorted(json.loads(ids_file.read_text()), key=lambda e: e["id"])
    assert coco["images"] == listed and len(listed) == 30
    assert coco["annotations"] == [] and coco["categories"][0]["name"] == "nucleus"
    assert json.loads(out.read_text()) == coco and notes == []


def _folder(tmp_path, sizes):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, (h, w) in sizes.items():
        cv2.imwrite(str(folder / name), np.zeros((h, w, 3), np.uint8))
    return folder


def _ids(tmp_path, entries):
    path = tmp_path / "ids.json"
    path.write_text(json.dumps([{"file_name": n, "id": i, "height": h, "width": w}
                                for n, i, h, w in entries]))
    return path


def test_without_ids_file_ids_follow_sorted_names(tmp_path):
    folder = _folder(tmp_path, {"b.png": (4, 6), "a.png": (5, 7)})
    (folder / "Thumbs.db").write_text("x")
    coco, notes = convert_image_folder(folder)
    assert coco["images"] == [{"id": 1, "file_name": "a.png", "height": 5, "width": 7},
                              {"id": 2, "file_name": "b.png", "height": 4, "width": 6}]
    assert notes == [f"{folder / 'Thumbs.db'}: ignored (not an image)"]


def test_mismatches_with_ids_file(tmp_path):
    folder = _folder(tmp_path, {"a.png": (5, 7), "b.png": (4, 6)})
    cases = [
        ([("a.png", 10, 5, 7)], folder / "b.png", "not listed in"),
        ([("a.png", 10, 5, 7), ("b.png", 11, 4, 6), ("c.png", 12, 4, 6)], folder / "c.png",
         "but not found"),
        ([("a.png", 10, 5, 7), ("b.png", 11, 6, 4)], folder / "b.png",
         "image is 6x4 but {ids} lists it as 4x6"),
        ([("a.png", 10, 5, 7), ("b.png", 10, 4, 6)], None, "image id 10 is listed twice"),
    ]
    for entries, path, problem in cases:
        ids = _ids(tmp_path, entries)
        with pytest.raises(InputError) as exc:
            convert_image_folder(folder, ids)
        assert exc.value.path == str(path if path else ids)
        assert problem.format(ids=ids) in exc.value.problem
