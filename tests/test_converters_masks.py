"""Per-instance geometry: mask reading for real-world encodings, bbox, RLE exactness, polygons."""
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from nucleus_seg.converters.masks import (decode_segmentation, instance_annotation, mask_bbox,
                                      polygons_from_crop, read_mask, rle_counts_from_crop,
                                      rle_from_crop)
from nucleus_seg.errors import InputError


def _crop_of(mask):
    x, y, w, h = mask_bbox(mask)
    return x, y, mask[y:y + h, x:x + w] != 0


def _reference_rle(mask):
    return mask_utils.encode(np.asfortranarray((mask != 0).astype(np.uint8)))


EDGE_CASES = {
    "single pixel top-left": (0, 0, 1, 1),
    "single pixel bottom-right": (6, 8, 1, 1),
    "full first column": (0, 0, 1, 9),
    "full last column": (6, 0, 1, 9),
    "whole height, middle columns": (2, 0, 3, 9),
    "whole image": (0, 0, 7, 9),
    "interior block": (2, 3, 3, 4),
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_rle_equals_pycocotools_on_edge_cases(name):
    x, y, w, h = EDGE_CASES[name]
    mask = np.zeros((9, 7), np.uint8)
    mask[y:y + h, x:x + w] = 255
    bx, by, crop = _crop_of(mask)
    ref = _reference_rle(mask)
    assert rle_from_crop(crop, bx, by, 9, 7) == {"size": [9, 7], "counts": ref["counts"].decode()}


def test_rle_equals_pycocotools_on_random_masks():
    rng = np.random.default_rng(1234)
    for _ in range(500):
        h, w = (int(v) for v in rng.integers(1, 16, 2))
        mask = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        if not mask.any():
            continue
        x, y, crop = _crop_of(mask)
        assert rle_from_crop(crop, x, y, h, w)["counts"] == _reference_rle(mask)["counts"].decode()


def test_rle_counts_of_known_mask():
    # 3x3 image, pixels (row 1, col 1) and (row 2, col 1): column-major 0 0 0 | 0 1 1 | 0 0 0
    counts = rle_counts_from_crop(np.ones((2, 1), bool), 1, 1, 3, 3)
    assert counts.tolist() == [4, 2, 3]


def test_rle_equals_pycocotools_on_every_shared_mask(dsb_root):
    mask_paths = sorted((dsb_root / "train").glob("*/masks/*.png"))
    assert len(mask_paths) == 2855
    for path in mask_paths[::7]:  # every 7th keeps the test fast; all are checked via validation
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        x, y, crop = _crop_of(mask)
        h, w = mask.shape
        assert rle_from_crop(crop, x, y, h, w)["counts"] == _reference_rle(mask)["counts"].decode(), path


def test_bbox_covers_every_pixel_and_area_counts_pixels():
    mask = np.zeros((20, 30), np.uint8)
    mask[5, 7] = 1
    mask[12, 21] = 9  # a second component far away, value other than 1/255
    x, y, crop = _crop_of(mask)
    ann = instance_annotation(crop, x, y, 20, 30)
    assert ann["bbox"] == [7, 5, 21 - 7 + 1, 12 - 5 + 1]
    assert ann["area"] == 2 and ann["iscrowd"] == 0
    assert isinstance(ann["segmentation"]["counts"], str)
    assert np.array_equal(decode_segmentation(ann["segmentation"], 20, 30) != 0, mask != 0)


def test_polygons_cover_all_components_with_valid_rings():
    mask = np.zeros((20, 30), np.uint8)
    mask[2:6, 3:9] = 1          # block
    mask[10, 20] = 1            # single pixel
    mask[15:18, 25] = 1         # one-pixel-wide line
    x, y, crop = _crop_of(mask)
    polygons = polygons_from_crop(crop, x, y)
    assert len(polygons) == 3
    assert all(len(ring) >= 6 and len(ring) % 2 == 0 for ring in polygons)
    # Traced a quarter pixel inside the pixel edges, pycocotools rasterises them back exactly.
    assert np.array_equal(decode_segmentation(polygons, 20, 30) != 0, mask != 0)


def test_polygons_decode_exactly_for_shared_masks(dsb_root):
    exact = total = 0
    for path in sorted((dsb_root / "train").glob("*/masks/*.png"))[::5]:
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) != 0
        x, y, crop = _crop_of(mask.view(np.uint8))
        decoded = decode_segmentation(polygons_from_crop(crop, x, y), *mask.shape) != 0
        iou = (decoded & mask).sum() / (decoded | mask).sum()
        assert iou >= 0.95, path
        exact += bool(np.array_equal(decoded, mask))
        total += 1
    assert exact >= 0.99 * total


def _write(path: Path, array) -> Path:
    assert cv2.imwrite(str(path), array)
    return path


@pytest.fixture
def blob():
    mask = np.zeros((12, 10), np.uint8)
    mask[3:7, 2:5] = 1
    return mask


def test_read_mask_value_encodings(tmp_path, blob):
    for name, pixels in {"u8_255.png": blob * 255, "u8_01.png": blob, "u8_any.png": blob * 37,
                         "u16.png": blob.astype(np.uint16) * 40000}.items():
        mask = read_mask(_write(tmp_path / name, pixels))
        assert np.array_equal(mask != 0, blob != 0), name


def test_read_mask_colour_encodings(tmp_path, blob):
    rgb = np.dstack([blob * 255] * 3)
    rgba_opaque = np.dstack([rgb, np.full_like(blob, 255)])
    rgba_alpha_only = np.dstack([np.full_like(rgb, 255), blob * 255])  # white, shape in alpha
    palette = Image.fromarray(blob, mode="P")
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.save(tmp_path / "palette.png")
    for name, path in {"rgb": _write(tmp_path / "rgb.png", rgb),
                       "rgba": _write(tmp_path / "rgba.png", rgba_opaque),
                       "alpha": _write(tmp_path / "alpha.png", rgba_alpha_only),
                       "palette": tmp_path / "palette.png"}.items():
        assert np.array_equal(read_mask(path) != 0, blob != 0), name


def test_read_mask_rejects_unreadable_and_empty_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not a png")
    with pytest.raises(InputError, match="mask file is empty"):
        read_mask(tmp_path / "empty.png")
    with pytest.raises(InputError, match="cannot be decoded as a mask") as exc:
        read_mask(tmp_path / "text.png")
    assert exc.value.path == str(tmp_path / "text.png")
