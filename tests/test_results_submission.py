"""Results and GT validation (nucleus_seg.validation), submission (nucleus_seg.submission) and evaluation
(nucleus_seg.evaluation) with their CLIs' exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from nucleus_seg.errors import InputError
from nucleus_seg.evaluation import evaluate_files
from nucleus_seg.submission import make_submission
from nucleus_seg.validation import ProblemsError, check_coco_gt, check_segmentation, validate_results

REPO = Path(__file__).resolve().parents[1]

IMAGES = [{"file_name": "a.png", "id": 1, "height": 8, "width": 10},
          {"file_name": "b.png", "id": 2, "height": 6, "width": 6}]
CATEGORIES = [{"id": 1, "name": "nucleus"}]


def rle_json(mask) -> dict:
    r = mask_utils.encode(np.asfortranarray(np.asarray(mask, np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode("ascii")}


def square(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def good_results():
    return [{"image_id": 1, "category_id": 1, "bbox": [1.0, 1.0, 3.0, 2.0], "score": 0.9,
             "segmentation": rle_json(square(8, 10, 1, 3, 1, 4))},
            {"image_id": 2, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.4,
             "segmentation": rle_json(square(6, 6, 0, 2, 0, 2))}]


def one_problem(**changes):
    """Problems of the good results with result 0 changed (a value of None removes the key)."""
    res = good_results()
    for k, v in changes.items():
        if v is None:
            del res[0][k]
        else:
            res[0][k] = v
    return validate_results(res, IMAGES, CATEGORIES, iou_type="segm")


def test_good_results_have_no_problems():
    assert validate_results(good_results(), IMAGES, CATEGORIES) == []


@pytest.mark.parametrize("changes, expected", [
    ({"image_id": 3}, "unknown image_id 3"),
    ({"image_id": "1"}, "unknown image_id '1'"),
    ({"category_id": 2}, "unknown category_id 2"),
    ({"score": 1.5}, "score must be a number in [0, 1]"),
    ({"score": float("nan")}, "score must be a number in [0, 1]"),
    ({"score": "0.9"}, "score must be a number in [0, 1]"),
    ({"bbox": [1, 2, 3]}, "bbox must be [x, y, w, h]"),
    ({"bbox": [1, 2, float("inf"), 3]}, "4 finite numbers"),
    ({"bbox": [1, 2, -3, 3]}, "width/height must be >= 0"),
    ({"score": None}, "missing key(s) 'score'"),
    ({"segmentation": None}, "missing key(s) 'segmentation'"),
    ({"segmentation": {"size": [6, 6], "counts": rle_json(square(6, 6, 0, 2, 0, 2))["counts"]}},
     "size [6, 6] does not match the image size [8, 10]"),
    ({"segmentation": {"size": [8, 10], "counts": [0, 80]}}, "must be a compressed RLE string"),
    ({"segmentation": {"size": [8, 10], "counts": "zz!"}}, "bad RLE: invalid character"),
    ({"segmentation": {"size": [8, 10], "counts": "52"}}, "bad RLE: runs cover 7 pixels"),
    ({"segmentation": {"size": [8, 10]}}, "segmentation has no 'counts'"),
    ({"segmentation": [[0, 0, 4, 0, 4, 4]]}, "must be RLE {size, counts}, got polygons"),
])
def test_each_kind_of_problem_is_reported(changes, expected):
    problems = one_problem(**changes)
    assert len(problems) == 1, problems
    assert problems[0].item.startswith("result 0")
    assert expected in str(problems[0]), str(problems[0])
    assert str(problems[0]).startswith("result 0 (image_id ")


def test_non_object_entries_and_every_problem_listed():
    res = good_results() + ["oops", {"image_id": 9, "category_id": 5, "score": 2, "segmentation": {}}]
    problems = validate_results(res, IMAGES, CATEGORIES, iou_type="segm")
    text = [str(p) for p in problems]
    assert text[0] == "result 2: is a str, not an object"
    assert sum(t.startswith("result 3 (image_id 9)") for t in text) == 3  # image, category, score


def test_polygons_and_uncompressed_rle_allowed_when_asked():
    assert check_segmentation([[0, 0, 4, 0, 4, 4]], 8, 10, require_compressed_rle=False) is None
    assert check_segmentation({"size": [8, 10], "counts": [10, 70]}, 8, 10, require_compressed_rle=False) is None
    assert "cover 79" in check_segmentation({"size": [8, 10], "counts": [10, 69]}, 8, 10,
                                            require_compressed_rle=False)


# ----------------------------------------------------------------------------------------- submission

@pytest.fixture()
def files(tmp_path):
    images = tmp_path / "test_img_ids.json"
    images.write_text(json.dumps(IMAGES))
    results = tmp_path / "r.segm.json"
    results.write_text(json.dumps(good_results(), indent=1))
    return images, results


def test_submission_round_trip(files, tmp_path):
    images, results = files
    out = make_submission(results, images, tmp_path / "answer.zip")
    assert out.submitted == out.detections == len(good_results())
    with zipfile.ZipFile(out.path) as zf:
        assert zf.namelist() == ["answer.json"]
        assert zf.read("answer.json") == results.read_bytes()
        assert json.loads(zf.read("answer.json")) == good_results()


def test_submission_on_the_bundled_sample_image_list(sample_root, tmp_path):
    images = json.loads((sample_root / "test_img_ids.json").read_text())
    im = images[0]
    res = [{"image_id": im["id"], "category_id": 1, "score": 0.5,
            "segmentation": rle_json(square(im["height"], im["width"], 3, 9, 4, 8))}]
    results = tmp_path / "s.segm.json"
    results.write_text(json.dumps(res))
    make_submission(results, sample_root / "test_img_ids.json", tmp_path / "answer.zip")
    with zipfile.ZipFile(tmp_path / "answer.zip") as zf:
        assert json.loads(zf.read("answer.json")) == res


def test_submission_uses_categories_of_a_coco_test_json(files, tmp_path):
    _, results = files
    coco = tmp_path / "test.json"
    coco.write_text(json.dumps({"images": IMAGES, "categories": [{"id": 7, "name": "x"}], "annotations": []}))
    with pytest.raises(ProblemsError) as exc:
        make_submission(results, coco, tmp_path / "answer.zip")
    assert len(exc.value.problems) == 2 and "unknown category_id 1" in str(exc.value.problems[0])
    assert not (tmp_path / "answer.zip").exists()


def test_submission_refuses_to_overwrite(files, tmp_path):
    images, results = files
    out = tmp_path / "answer.zip"
    out.write_bytes(b"old")
    with pytest.raises(InputError, match="already exists"):
        make_submission(results, images, out)
    assert out.read_bytes() == b"old"
    make_submission(results, images, out, overwrite=True)
    assert zipfile.ZipFile(out).namelist() == ["answer.json"]


def test_empty_results_are_not_a_submission(files, tmp_path):
    images, results = files
    results.write_text("[]")
    with pytest.raises(ProblemsError, match="no results"):
        make_submission(results, images, tmp_path / "answer.zip")


def run_tool(*args):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_make_submission_cli_exit_codes(files, tmp_path):
    images, results = files
    ok = run_tool("tools/make_submission.py", "--results", str(results), "--images", str(images),
                  "--out", str(tmp_path / "answer.zip"))
    assert ok.returncode == 0, ok.stderr
    assert zipfile.ZipFile(tmp_path / "answer.zip").namelist() == ["answer.json"]

    again = run_tool("tools/make_submission.py", "--results", str(results), "--images", str(images),
                     "--out", str(tmp_path / "answer.zip"))
    assert again.returncode == 2 and "already exists" in again.stderr

    bad = good_results() * 3
    for r in bad:
        r["image_id"] = 42
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    res = run_tool("tools/make_submission.py", "--results", str(tmp_path / "bad.json"), "--images", str(images),
                   "--out", str(tmp_path / "bad.zip"), "--max-problems", "4")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 6  # 4 problems, "... and 2 more", the count
    assert "unknown image_id 42" in lines[0] and "and 2 more" in lines[4] and "6 problem(s)" in lines[5]
    assert not (tmp_path / "bad.zip").exists()


@pytest.fixture()
def eval_files(tmp_path):
    gt = {"images": IMAGES, "categories": CATEGORIES,
          "annotations": [dict({k: r[k] for k in ("image_id", "category_id", "segmentation", "bbox")},
                               id=i + 1, iscrowd=0, area=1) for i, r in enumerate(good_results())]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "r.json").write_text(json.dumps(good_results()))
    return gt, tmp_path / "gt.json", tmp_path / "r.json"


def test_evaluate_cli_runs_from_the_repo_root(eval_files, tmp_path):
    _, gt_path, pred_path = eval_files
    ok = run_tool("tools/evaluate.py", "--gt", str(gt_path), "--pred", str(pred_path), "--out-json",
                  str(tmp_path / "s.json"))
    assert ok.returncode == 0, ok.stderr
    # result 1 has score 0.4 < 0.5, so image 2's nucleus is missed: PQ per image 1 and 0 -> 0.5;
    # AP ranks all predictions, both exact -> 1
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["summary"]["PQ"] == 0.5 and scores["coco"]["segm_mAP"] == 1.0


def test_evaluate_report_and_csv(eval_files):
    from nucleus_seg.evaluation import format_report, per_image_csv
    _, gt_path, pred_path = eval_files
    res = evaluate_files(gt_path, pred_path, with_ap=False)
    text = format_report(res, per_image=True)
    assert "AJI+" in text and "segm_mAP" not in text and text.count("a.png") == 1
    rows = per_image_csv(res).splitlines()
    assert len(rows) == 3 and rows[0].startswith("image_id,file_name")


def test_evaluate_cli_refuses_to_overwrite_before_scoring(eval_files, tmp_path):
    _, gt_path, pred_path = eval_files
    (tmp_path / "s.csv").write_text("old")
    res = run_tool("tools/evaluate.py", "--gt", str(gt_path), "--pred", str(pred_path), "--out-csv",
                   str(tmp_path / "s.csv"))
    assert res.returncode == 2 and res.stderr == f"error: {tmp_path / 's.csv'}: already exists; pass " \
                                                 "--overwrite to replace it\n"
    assert (tmp_path / "s.csv").read_text() == "old"


def test_evaluate_malformed_input_names_the_file_and_the_first_problem(eval_files, tmp_path):
    gt, gt_path, pred_path = eval_files
    bad = good_results()
    bad[1]["image_id"] = 5
    bad[0]["segmentation"]["size"] = [10, 8]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ProblemsError) as exc:
        evaluate_files(gt_path, tmp_path / "bad.json")
    assert str(exc.value).startswith(f"{tmp_path / 'bad.json'}: result 0 (image_id 1): segmentation size")
    assert str(exc.value).endswith("(and 1 more problem(s))")

    (tmp_path / "bad_rle.json").write_text(json.dumps([dict(good_results()[0], segmentation={
        "size": [8, 10], "counts": "0000"})]))
    with pytest.raises(InputError, match="bad RLE: runs cover 0 pixels"):
        evaluate_files(gt_path, tmp_path / "bad_rle.json")

    del gt["annotations"][0]["segmentation"]
    (tmp_path / "gt_bad.json").write_text(json.dumps(gt))
    with pytest.raises(InputError, match=r"gt_bad.json: annotation 1: has no 'segmentation'"):
        evaluate_files(tmp_path / "gt_bad.json", pred_path)

    (tmp_path / "not_json.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        evaluate_files(gt_path, tmp_path / "not_json.json")

    # the CLI: one line, exit status 2
    res = run_tool("tools/evaluate.py", "--gt", str(gt_path), "--pred", str(tmp_path / "bad.json"))
    assert res.returncode == 2 and res.stderr == f"error: {exc.value}\n"


def test_gt_checks_are_shared_by_evaluation_and_the_converters(eval_files):
    gt, _, _ = eval_files
    assert check_coco_gt(gt) == []
    # what the converters promise on top: file names, ids 1..N, unique annotation ids, iscrowd 0, bbox
    no_name = dict(gt, images=[{k: v for k, v in im.items() if k != "file_name"} for im in gt["images"]])
    assert check_coco_gt(no_name) == []
    assert [str(p) for p in check_coco_gt(no_name, strict=True)] == [
        "images[0]: has no 'file_name'", "images[1]: has no 'file_name'"]
    twice = dict(gt, annotations=[dict(a, id=1, iscrowd=1) for a in gt["annotations"]])
    assert [str(p) for p in check_coco_gt(twice, strict=True)] == [
        "annotation 1: iscrowd must be 0 for nuclei", "annotation 1: id is used twice",
        "annotation 1: iscrowd must be 0 for nuclei"]
    wrong_size = dict(gt, annotations=[dict(gt["annotations"][0], image_id=2)])
    assert [str(p) for p in check_coco_gt(wrong_size)] == [
        "annotation 1: (image_id 2) segmentation size [8, 10] does not match the image size [6, 6]"]
