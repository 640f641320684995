"""Instance label maps (PNG 8/16-bit, TIFF 32-bit, .npy, CoNSeP / Lizard .mat) and binary masks ->
COCO: pixel-exact round trips from the DSB masks, the type rules, and one-line errors."""
import json
import shutil

import cv2
import numpy as np
import pytest
import scipy.io
import tifffile

from nucleus_seg.converters.labels import LabelOptions, majority_type, parse_class_map, read_labels
from nucleus_seg.converters.pipeline import labels2coco
from nucleus_seg.errors import InputError
from nucleus_seg.geometry import MaskCrop

from formats import crop_key, decoded, dsb_tiles, label_map, same_pixels


@pytest.fixture(scope="module")
def tiles(repo_root):
    return dsb_tiles(repo_root / "data" / "sample" / "dsb2018_he" / "train", limit=4)


def sparse_ids(n, seed=0):
    """n distinct, non-contiguous ids in random order (ids in files are arbitrary)."""
    return np.random.default_rng(seed).permutation(np.arange(1, 40 * n, 37))[:n] + 1000


def write_images(tiles, folder):
    folder.mkdir(parents=True)
    for tile in tiles:
        shutil.copy(tile.image_path, folder / tile.image_path.name)
    return folder


def exact_count(coco, tiles):
    """Instances of ``tiles`` that some annotation of their image reproduces pixel for pixel."""
    exact = 0
    for image, tile in zip(coco["images"], tiles):
        got = {crop_key(c) for c in decoded(coco, image["id"])}
        exact += sum(crop_key(c) in got for c in tile.crops)
    return exact


def save_labels(fmt, path_stem, labels, types=None):
    if fmt == "png16":
        cv2.imwrite(f"{path_stem}.png", labels.astype(np.uint16))
    elif fmt == "tif32":
        tifffile.imwrite(f"{path_stem}.tif", labels.astype(np.uint32))
    elif fmt == "npy":
        np.save(f"{path_stem}.npy", labels.astype(np.int32))
    elif fmt == "npy-hovernet":
        np.save(f"{path_stem}.npy", np.dstack([labels, types]).astype(np.int32))
    elif fmt == "mat":
        scipy.io.savemat(f"{path_stem}.mat", {"inst_map": labels.astype(np.float64),
                                              "type_map": types.astype(np.float64)})


@pytest.mark.parametrize("fmt", ["png16", "tif32", "npy", "npy-hovernet", "mat"])
def test_label_formats_round_trip_exactly(fmt, tiles, tmp_path):
    images = write_images(tiles, tmp_path / "images")
    labels_dir = tmp_path / "labels"
    labels_dir.mkdir()
    for tile in tiles:
        ids = sparse_ids(len(tile.crops)) * (70 if fmt == "tif32" else 1)  # tif32: ids above 65535
        types = label_map(tile, [k % 3 + 1 for k in range(len(tile.crops))])
        save_labels(fmt, labels_dir / tile.name, label_map(tile, ids), types)
    _, report, coco = labels2coco(images, labels_dir, tmp_path / "coco", validate=True)
    total = sum(len(t.crops) for t in tiles)
    assert report.annotations == total and exact_count(coco, tiles) == total
    typed = fmt in ("npy-hovernet", "mat")
    assert [c["name"] for c in coco["categories"]] == (["type_1", "type_2", "type_3"] if typed else ["nucleus"])
    if typed:  # nucleus k of each tile has type k % 3 + 1
        for image, tile in zip(coco["images"], tiles):
            by_key = {crop_key(c): a["category_id"] for c, a in
                      zip(decoded(coco, image["id"]), [a for a in coco["annotations"] if a["image_id"] == image["id"]])}
            assert [by_key[crop_key(c)] for c in tile.crops] == [k % 3 + 1 for k in range(len(tile.crops))]


def test_8bit_png_split_nucleus_and_class_map(tmp_path):
    image = np.zeros((20, 30, 3), np.uint8)
    labels = np.zeros((20, 30), np.uint8)
    labels[2:6, 2:6] = 200
    labels[10:14, 20:25] = 200        # the same id elsewhere: one nucleus in two pieces
    labels[8:10, 8:12] = 7
    types = np.zeros((20, 30), np.uint8)
    types[2:6, 2:6] = 2
    types[10:14, 20:25] = 1           # 20 pixels of type 1 beat 16 of type 2
    types[8:10, 8:10] = 3
    types[8:10, 10:12] = 2            # a 4-4 tie: the smaller type id
    (tmp_path / "img").mkdir(), (tmp_path / "lab").mkdir(), (tmp_path / "typ").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), image)
    cv2.imwrite(str(tmp_path / "lab" / "a_label.png"), labels)
    cv2.imwrite(str(tmp_path / "typ" / "a.png"), types)
    options = LabelOptions(class_map=parse_class_map(["1=tumour", "2=immune", "3=immune"]))
    _, report, coco = labels2coco(tmp_path / "img", tmp_path / "lab", tmp_path / "out", options,
                                  label_suffix="_label", type_dir=tmp_path / "typ", validate=True)
    assert [c["name"] for c in coco["categories"]] == ["tumour", "immune"]
    got = sorted((a["area"], a["category_id"]) for a in coco["annotations"])
    assert got == [(8, 2), (36, 1)]
    assert report.multi_part == 1
    assert majority_type(np.array([0, 0, 0, 5])) == 5 and majority_type(np.array([0, 0])) == 0


def test_consep_and_lizard_per_instance_types(tmp_path):
    inst = np.zeros((10, 12), np.int32)
    inst[1:3, 1:3], inst[5:8, 5:9], inst[0:2, 9:12] = 4, 9, 2
    consep = tmp_path / "consep.mat"   # inst_type: row k is the k-th id in ascending order (2, 4, 9)
    scipy.io.savemat(consep, {"inst_map": inst, "inst_type": np.array([[1], [3], [2]])})
    labels = read_labels(consep, LabelOptions(type_key="inst_type", type_key_required=True))
    assert labels.type_of_id == {2: 1, 4: 3, 9: 2}
    lizard = tmp_path / "lizard.mat"   # Lizard: ids and classes as two vectors
    scipy.io.savemat(lizard, {"inst_map": inst, "id": np.array([[9], [2], [4]]),
                              "class": np.array([[6], [5], [4]])})
    labels = read_labels(lizard, LabelOptions(type_key="class", type_key_required=True))
    assert labels.type_of_id == {9: 6, 2: 5, 4: 4}


def write_v73_header(path):
    """The 128-byte header of a MATLAB v7.3 (HDF5) file: scipy refuses it."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    path.write_bytes(text.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM" + b"\0" * 512)


def test_malformed_label_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), np.zeros((20, 30, 3), np.uint8))
    target = tmp_path / "lab"

    def error(name, write, **kwargs):
        for old in target.iterdir():
            old.unlink()
        write(target / name)
        with pytest.raises(InputError) as err:
            labels2coco(tmp_path / "img", target, tmp_path / "out", kwargs.get("options"))
        return str(err.value)

    assert error("a.png", lambda p: cv2.imwrite(str(p), np.zeros((21, 30), np.uint16))) == \
        f"{target / 'a.png'}: label map is 30x21 but its image {tmp_path / 'img' / 'a.png'} is 30x20"
    assert error("a.mat", lambda p: scipy.io.savemat(p, {"labels": np.zeros((20, 30))})) == \
        f"{target / 'a.mat'}: has no variable 'inst_map' (variables: labels); name it with --inst-key"
    assert error("a.mat", lambda p: scipy.io.savemat(p, {"inst_map": np.zeros((20, 30))}),
                 options=LabelOptions(type_key="types", type_key_required=True)) == \
        f"{target / 'a.mat'}: has no variable 'types' (variables: inst_map)"
    assert error("a.mat", write_v73_header).startswith(
        f"{target / 'a.mat'}: is a MATLAB v7.3 (HDF5) file, which scipy cannot read; resave it")
    assert error("a.npy", lambda p: np.save(p, -np.ones((20, 30), np.int16))) == \
        f"{target / 'a.npy'}: label map has negative values (min -1)"
    assert error("a.npy", lambda p: np.save(p, np.full((20, 30), 1.5))) == \
        f"{target / 'a.npy'}: label map must hold non-negative whole numbers (found 1.5 .. 1.5, not all whole)"
    assert error("a.png", lambda p: cv2.imwrite(str(p), np.dstack([np.zeros((20, 30), np.uint8)] * 2
                                                                    + [np.ones((20, 30), np.uint8)]))) == \
        f"{target / 'a.png'}: label map is a colour image with differing channels; ids must be one grey channel (8/16/32-bit)"
    (tmp_path / "no_labels").mkdir()
    with pytest.raises(InputError, match=r"a\.png: no label file a\.<png\|tif\|tiff\|npy\|mat>"):
        labels2coco(tmp_path / "img", tmp_path / "no_labels", tmp_path / "out")
    with pytest.raises(InputError, match="type 0 is background and cannot be a class"):
        parse_class_map(["0=background"])


def test_binary_masks_connected_components(tmp_path):
    """Separated objects come back one each; touching nuclei merge (documented), small ones drop."""
    mask = np.zeros((40, 50), np.uint8)
    mask[2:12, 2:12] = 255                  # 100 px
    mask[20:30, 20:25] = mask[20:30, 25:30] = 255   # two touching nuclei: one component of 100 px
    mask[35:37, 40:42] = 255                # 4 px: under --min-area 5
    mask[12, 12] = 255                      # diagonal neighbour of the first: joins it with 8-connectivity
    (tmp_path / "img").mkdir(), (tmp_path / "mask").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "k.jpg"), np.zeros((40, 50, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "mask" / "k.png"), mask)
    options = LabelOptions(binary=True, min_area=5)
    _, report, coco = labels2coco(tmp_path / "img", tmp_path / "mask", tmp_path / "out", options,
                                  validate=True)
    assert sorted(a["area"] for a in coco["annotations"]) == [100, 101]
    assert report.small_components == 1
    options = LabelOptions(binary=True, connectivity=4)
    _, _, coco = labels2coco(tmp_path / "img", tmp_path / "mask", tmp_path / "out4", options)
    assert sorted(a["area"] for a in coco["annotations"]) == [1, 4, 100, 100]
    first = next(c for c in decoded(coco, 1) if c.area == 100 and c.x0 == 2)
    assert same_pixels(first, MaskCrop(2, 2, np.ones((10, 10), bool)))


def test_cli_labels_and_binary(repo_root, tiles, tmp_path):
    from test_converters_cli import run

    images = write_images(tiles[:2], tmp_path / "images")
    (tmp_path / "labels").mkdir()
    for tile in tiles[:2]:
        scipy.io.savemat(tmp_path / "labels" / f"{tile.name}.mat",
                         {"inst_map": label_map(tile, range(1, len(tile.crops) + 1)),
                          "type_map": label_map(tile, [1] * len(tile.crops))})
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps({"1": "nucleus"}))
    ok = run(repo_root, "labels2coco.py", images, tmp_path / "labels", "--out-dir", tmp_path / "coco",
             "--class-map", classes, "--validate", "--val-ratio", "0.5")
    assert ok.returncode == 0, ok.stderr
    total = sum(len(t.crops) for t in tiles[:2])
    assert f"2 images, {total} annotations" in ok.stdout and "categories 1=nucleus" in ok.stdout
    again = run(repo_root, "labels2coco.py", images, tmp_path / "labels", "--out-dir", tmp_path / "coco",
                "--val-ratio", "0.5")
    assert again.returncode == 2 and again.stderr.endswith("already exists; pass --overwrite to replace it\n")
    bad = run(repo_root, "binary2coco.py", images, tmp_path / "labels", "--out-dir", tmp_path / "b",
              "--min-area", "-1")
    assert bad.returncode == 2 and bad.stderr == "error: --min-area must be >= 0, got -1\n"


def test_label_map_crops_float_ids_and_pieces():
    from nucleus_seg.geometry import label_map_crops

    plane = np.zeros((6, 8))
    plane[0, 0] = plane[5, 7] = 3.0          # one id in two far-apart pieces
    plane[2:4, 2:5] = 1e6
    ids, crops = label_map_crops(plane)
    assert ids.tolist() == [3.0, 1e6]
    assert (crops[0].x0, crops[0].y0, crops[0].mask.shape, crops[0].area) == (0, 0, (6, 8), 2)
    assert same_pixels(crops[1], MaskCrop(2, 2, np.ones((2, 3), bool)))
    assert label_map_crops(np.zeros((3, 3), np.uint16))[1] == []
