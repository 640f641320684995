"""nucleus_seg.geometry: boxes, crops, COCO RLE both ways, and the tracer's COCO and GeoJSON outputs."""
import cv2
import numpy as np
import pytest
import shapely
from pycocotools import mask as mask_utils
from shapely.geometry import shape

from nucleus_seg.converters.annotations import instance_annotation
from nucleus_seg.geometry import (MaskCrop, coco_polygons, crop_from_segmentation, crop_iou, crop_outline,
                                  crop_to_rle, decode_segmentation, geojson_geometry, mask_bbox,
                                  rle_run_lengths, rle_run_lengths_batch, to_rle, union_crops)


def _reference_rle(mask):
    return mask_utils.encode(np.asfortranarray((mask != 0).astype(np.uint8)))


def _random_masks(n, seed, max_side=14):
    """Random masks of random density in random images; every mask has at least one pixel."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        h, w = (int(v) for v in rng.integers(1, max_side, 2))
        mask = rng.random((h, w)) < rng.random()
        if mask.any():
            out.append(mask)
    return out


def _shared_masks(dsb_root, step):
    for path in sorted((dsb_root / "train").glob("*/masks/*.png"))[::step]:
        yield path, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) != 0


# ----------------------------------------------------------------------------------------------- RLE
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
    ref = _reference_rle(mask)
    assert crop_to_rle(MaskCrop.from_mask(mask), 9, 7) == {"size": [9, 7], "counts": ref["counts"].decode()}


def test_rle_equals_pycocotools_on_random_masks_anywhere_in_the_image():
    rng = np.random.default_rng(1234)
    for mask in _random_masks(500, 1234):
        height, width = mask.shape[0] + int(rng.integers(0, 4)), mask.shape[1] + int(rng.integers(0, 4))
        full = np.zeros((height, width), bool)
        y, x = int(rng.integers(0, height - mask.shape[0] + 1)), int(rng.integers(0, width - mask.shape[1] + 1))
        full[y:y + mask.shape[0], x:x + mask.shape[1]] = mask
        rle = crop_to_rle(MaskCrop.from_mask(full), height, width)
        assert rle["counts"] == _reference_rle(full)["counts"].decode()


def test_rle_counts_of_known_mask():
    # 3x3 image, pixels (row 1, col 1) and (row 2, col 1): column-major 0 0 0 | 0 1 1 | 0 0 0
    rle = crop_to_rle(MaskCrop(1, 1, np.ones((2, 1), bool)), 3, 3)
    assert rle_run_lengths(rle["counts"]).tolist() == [4, 2, 3]


def test_rle_equals_pycocotools_on_every_7th_shared_mask(dsb_root):
    for path, mask in _shared_masks(dsb_root, 7):
        rle = crop_to_rle(MaskCrop.from_mask(mask), *mask.shape)
        assert rle["counts"] == _reference_rle(mask)["counts"].decode(), path


def test_run_lengths_parse_pycocotools_strings_and_reject_broken_ones():
    for mask in _random_masks(200, 5, max_side=40):
        flat = np.concatenate(([0], mask.T.ravel().view(np.int8), [0]))
        runs = np.diff(np.concatenate(([0], np.flatnonzero(np.diff(flat)), [mask.size])))
        runs = runs[:-1] if runs[-1] == 0 else runs  # pycocotools ends with the last run of ones
        assert rle_run_lengths(_reference_rle(mask)["counts"]).tolist() == runs.tolist()
    with pytest.raises(ValueError, match="invalid character '!'"):
        rle_run_lengths("00!")
    with pytest.raises(ValueError, match="invalid character 'é'"):
        rle_run_lengths("0é")
    with pytest.raises(ValueError, match="truncated"):
        rle_run_lengths("0h")  # 'h' has the continuation bit: a value is cut off
    with pytest.raises(ValueError, match="negative run"):
        rle_run_lengths("0O")  # 'O' is -1


def test_run_lengths_of_many_strings_at_once_equal_one_at_a_time():
    strings = [_reference_rle(m)["counts"] for m in _random_masks(30, 9, max_side=30)] + [b""]
    runs, owner = rle_run_lengths_batch(strings)
    for i, counts in enumerate(strings):
        assert runs[owner == i].tolist() == rle_run_lengths(counts).tolist()


def test_every_segmentation_form_decodes_to_the_same_mask_and_crop():
    mask = np.zeros((12, 10), np.uint8)
    mask[2:7, 3:6] = 1
    mask[11, 9] = 1
    ref = _reference_rle(mask)
    runs = rle_run_lengths(ref["counts"]).tolist()
    forms = {"str": {"size": [12, 10], "counts": ref["counts"].decode()}, "bytes": ref,
             "uncompressed": {"size": [12, 10], "counts": runs}}
    for name, seg in forms.items():
        assert np.array_equal(decode_segmentation(seg, 12, 10), mask), name
        assert to_rle(seg, 12, 10)["counts"] == ref["counts"], name
        crop = crop_from_segmentation(seg, 12, 10)
        assert (crop.x0, crop.y0, crop.x1, crop.y1) == (3, 2, 10, 12), name
        assert np.array_equal(crop.to_full(12, 10), mask != 0), name
    square = [[3.0, 2.0, 6.0, 2.0, 6.0, 7.0, 3.0, 7.0]]  # polygons go through pycocotools' rasteriser
    assert np.array_equal(crop_from_segmentation(square, 12, 10).to_full(12, 10),
                          decode_segmentation(square, 12, 10) != 0)
    empty = {"size": [12, 10], "counts": [120]}
    assert crop_from_segmentation(empty, 12, 10) is None and not decode_segmentation(empty, 12, 10).any()


def test_crop_from_segmentation_equals_a_full_decode_on_random_masks():
    for mask in _random_masks(300, 9):
        height, width = mask.shape
        rle = _reference_rle(mask)
        crop = crop_from_segmentation(rle, height, width)
        assert crop.box == MaskCrop.from_mask(mask).box
        assert np.array_equal(crop.to_full(height, width), mask)


# ------------------------------------------------------------------------------------- boxes, crops
def test_bbox_covers_every_pixel_and_area_counts_pixels():
    mask = np.zeros((20, 30), np.uint8)
    mask[5, 7] = 1
    mask[12, 21] = 9  # a second component far away, value other than 1/255
    assert mask_bbox(mask) == (7, 5, 21 - 7 + 1, 12 - 5 + 1) and mask_bbox(mask * 0) is None
    ann = instance_annotation(MaskCrop.from_mask(mask), 20, 30)
    assert ann["bbox"] == [7, 5, 21 - 7 + 1, 12 - 5 + 1]
    assert ann["area"] == 2 and ann["iscrowd"] == 0
    assert isinstance(ann["segmentation"]["counts"], str)
    assert np.array_equal(decode_segmentation(ann["segmentation"], 20, 30) != 0, mask != 0)


def test_crop_helpers():
    a = MaskCrop(2, 3, np.ones((2, 2), bool))
    b = MaskCrop(3, 3, np.ones((2, 2), bool))
    assert crop_iou(a, b) == pytest.approx(2 / 6) and crop_iou(a, MaskCrop(9, 9, a.mask)) == 0.0
    u = union_crops([a, b])
    assert u.box == (2, 3, 5, 5) and u.area == 6
    ring = np.ones((5, 5), bool)
    outline = crop_outline(MaskCrop(0, 0, ring))
    assert outline.area == 16 and not outline.mask[2, 2]  # the edge pixels, not the centre
    assert crop_outline(MaskCrop(0, 0, ring), thickness=2).area == 24


# ------------------------------------------------------------------------------------ COCO polygons
def test_coco_polygons_cover_all_components_with_valid_rings():
    mask = np.zeros((20, 30), np.uint8)
    mask[2:6, 3:9] = 1          # block
    mask[10, 20] = 1            # single pixel
    mask[15:18, 25] = 1         # one-pixel-wide line
    polygons = coco_polygons(MaskCrop.from_mask(mask))
    assert len(polygons) == 3
    assert all(len(ring) >= 6 and len(ring) % 2 == 0 for ring in polygons)
    # Traced a quarter pixel inside the pixel edges, pycocotools rasterises them back exactly.
    assert np.array_equal(decode_segmentation(polygons, 20, 30) != 0, mask != 0)


def test_coco_polygons_decode_exactly_for_shared_masks(dsb_root):
    exact = total = 0
    for path, mask in _shared_masks(dsb_root, 5):
        decoded = decode_segmentation(coco_polygons(MaskCrop.from_mask(mask)), *mask.shape) != 0
        iou = (decoded & mask).sum() / (decoded | mask).sum()
        assert iou >= 0.95, path
        exact += bool(np.array_equal(decoded, mask))
        total += 1
    assert exact >= 0.99 * total


# ------------------------------------------------------------------------------------------ GeoJSON
def _polygons(geometry):
    return geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]


def _even_odd_fill(geometry, height, width):
    """Pixels whose centre lies inside the rings (even-odd rule), independently of shapely."""
    yc, xc = np.mgrid[0:height, 0:width] + 0.5
    inside = np.zeros((height, width), bool)
    for polygon in _polygons(geometry):
        for ring in polygon:
            pts = np.asarray(ring, float)
            for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
                if y0 == y1:
                    continue
                crosses = (np.minimum(y0, y1) <= yc) & (yc < np.maximum(y0, y1))
                x_at = x0 + (yc - y0) * (x1 - x0) / (y1 - y0)
                inside ^= crosses & (xc < x_at)
    return inside


def _check_geojson(mask, x0=0, y0=0):
    """The geometry of ``mask`` placed at (x0, y0): valid, on pixel edges, rasterising back exactly."""
    height, width = mask.shape[0] + y0 + 1, mask.shape[1] + x0 + 1
    crop = MaskCrop.from_mask(mask, x0, y0)
    geometry = geojson_geometry(crop)
    geom = shape(geometry)
    assert geom.is_valid, shapely.is_valid_reason(geom)
    full = crop.to_full(height, width)
    yc, xc = np.mgrid[0:height, 0:width] + 0.5
    assert np.array_equal(shapely.contains_xy(geom, xc, yc), full)
    assert np.array_equal(_even_odd_fill(geometry, height, width), full)
    for polygon in _polygons(geometry):
        for k, ring in enumerate(polygon):
            pts = np.asarray(ring)
            assert pts.dtype.kind == "i" and (pts[0] == pts[-1]).all()
            steps = np.diff(pts, axis=0)
            assert ((steps[:, 0] == 0) ^ (steps[:, 1] == 0)).all()  # axis-parallel pixel edges
            assert shapely.LinearRing(ring).is_ccw == (k == 0)  # RFC 7946: exterior CCW, holes CW
    return geometry


NASTY = {
    "single pixel": ["1"],
    "1-px line": ["1111"],
    "1-px column": ["1", "1", "1"],
    "hole": ["111", "101", "111"],
    "two holes": ["11111", "10101", "11111"],
    "diagonal pair": ["10", "01"],
    "diagonal chain": ["100", "010", "001"],
    "hole touching the outside diagonally": ["011", "101", "111"],
    "holes touching each other diagonally": ["1111", "1011", "1101", "1111"],
    "island in a hole": ["11111", "10001", "10101", "10001", "11111"],
    "island touching its hole's rim diagonally": ["1111", "1001", "1011", "1111"],
    "C whose tips touch diagonally": ["0111", "1001", "0111"],
    "checkerboard": ["1010", "0101", "1010", "0101"],
    "comb": ["11111", "10101", "10101"],
}


@pytest.mark.parametrize("name", sorted(NASTY))
def test_geojson_of_nasty_shapes_is_valid_and_exact(name):
    mask = np.array([[c == "1" for c in row] for row in NASTY[name]])
    geometry = _check_geojson(mask, x0=3, y0=2)
    n_components = cv2.connectedComponents(mask.view(np.uint8), connectivity=4)[0] - 1
    assert len(_polygons(geometry)) == n_components
    assert geometry["type"] == ("Polygon" if n_components == 1 else "MultiPolygon")


def test_geojson_keeps_holes_and_every_component():
    mask = np.zeros((9, 12), bool)
    mask[1:6, 1:6] = True
    mask[3, 3] = False      # a hole
    mask[7:9, 8:12] = True  # a second nucleus part
    geometry = _check_geojson(mask)
    assert geometry["type"] == "MultiPolygon"
    assert sorted(len(p) for p in geometry["coordinates"]) == [1, 2]  # one with a hole


def test_geojson_of_random_masks_is_valid_and_exact():
    for mask in _random_masks(400, 77):
        _check_geojson(mask, x0=1, y0=2)


def test_geojson_of_every_shared_mask_is_valid_and_exact(dsb_root):
    n = 0
    for path, mask in _shared_masks(dsb_root, 1):
        crop = MaskCrop.from_mask(mask)
        geom = shape(geojson_geometry(crop))
        assert geom.is_valid, path
        yc, xc = np.mgrid[crop.y0:crop.y1 + 1, crop.x0:crop.x1 + 1] + 0.5
        expected = np.zeros(yc.shape, bool)
        expected[:-1, :-1] = crop.mask
        assert np.array_equal(shapely.contains_xy(geom, xc, yc), expected), path
        n += 1
    assert n == 2855


def test_geojson_scale_and_offset_map_pixels_to_slide_coordinates():
    crop = MaskCrop(10, 20, np.ones((2, 3), bool))
    assert geojson_geometry(crop)["coordinates"] == [[[10, 20], [13, 20], [13, 22], [10, 22], [10, 20]]]
    scaled = geojson_geometry(crop, scale=4.0, offset=(1000.0, 500.0))
    assert scaled["coordinates"] == [[[1040.0, 580.0], [1052.0, 580.0], [1052.0, 588.0], [1040.0, 588.0],
                                      [1040.0, 580.0]]]
