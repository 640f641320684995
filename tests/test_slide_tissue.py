"""Tissue masks: detected on H&E (tests/slides.py mosaic: DSB tiles on white glass with dust), empty
on a blank slide, from a user mask image and from QuPath GeoJSON regions (holes, MultiPolygon,
the bounds offset of QuPath's frame)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import slides
from nucleus_seg.errors import InputError
from nucleus_seg.slide import TissueMask, open_slide, tissue_mask
from nucleus_seg.slide.base import SlideReader, SlideSpec

W, H = 2048, 1536
BLOCK = (409, 307, 1230, 922)  # make_mosaic's default tissue block (x, y, w, h)


@pytest.fixture(scope="module")
def slide_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tissue")
    slides.write_aperio(d / "he.svs", slides.make_mosaic(W, H))
    slides.write_aperio(d / "blank.svs", np.full((H, W, 3), 255, np.uint8))
    # blank glass as scanners see it: off-white, a faint tint and JPEG noise
    rng = np.random.default_rng(1)
    glass = np.clip(np.array([236, 234, 240]) + rng.normal(0, 3, (H, W, 3)), 0, 255)
    slides.write_aperio(d / "glass.svs", glass.astype(np.uint8), compression="jpeg")
    return d


def test_he_tissue_is_found_and_dust_is_not(slide_dir):
    reader = open_slide(slide_dir / "he.svs")
    tm = tissue_mask(reader)
    x, y, w, h = BLOCK
    assert tm.source == "detected" and tm.downsample == pytest.approx(32.0)  # 8 um/px at 0.25
    assert tm.fraction(x + 64, y + 64, x + w - 64, y + h - 64) > 0.97
    assert tm.fraction(0, 0, x - 32, H) == 0.0          # left margin with the dust specks
    raw = tissue_mask(reader, open_um=0, min_area_um2=0)
    assert raw.fraction(0, 0, x - 32, H) > 0.1          # ... which the filters removed
    assert tm.fraction(x + w + 32, 0, W, H) == 0.0
    area = tm.area_um2(reader.mpp)
    assert 0.9 * w * h * 0.0625 < area < 1.05 * w * h * 0.0625
    for mask_mpp in (16.0, 32.0):   # the documented range: the same tissue, coarser edges
        coarse = tissue_mask(reader, mask_mpp=mask_mpp)
        assert coarse.fraction(x + 128, y + 128, x + w - 128, y + h - 128) > 0.97
        assert coarse.fraction(0, 0, x - 64, H) == 0.0


@pytest.mark.parametrize("name", ["blank.svs", "glass.svs"])
def test_blank_slides_have_no_tissue(slide_dir, name):
    with pytest.raises(InputError, match=rf"{name}: no tissue found"):
        tissue_mask(open_slide(slide_dir / name))


def test_fraction_is_area_weighted():
    mask = np.zeros((4, 4), bool)
    mask[1, 1] = True
    tm = TissueMask(mask, downsample=10.0, origin=(100.0, 0.0))
    assert tm.fraction(110, 10, 120, 20) == pytest.approx(1.0)
    assert tm.fraction(105, 10, 115, 20) == pytest.approx(0.5)   # half a cell
    assert tm.fraction(100, 0, 140, 40) == pytest.approx(1 / 16)
    assert tm.fraction(0, 0, 100, 40) == 0.0                     # left of the grid
    assert tm.fraction(115, 15, 125, 25) == pytest.approx(0.25)
    assert tm.area_um2(0.5) == pytest.approx(10 * 10 * 0.25)
    full = TissueMask.full(_FakeReader((0, 0, 50, 40)))
    assert full.fraction(0, 0, 50, 40) == pytest.approx(1.0)


def test_save_png_never_overwrites_silently(tmp_path):
    tm = TissueMask(np.eye(3, dtype=bool), 4.0)
    path = tm.save_png(tmp_path / "tissue.png")
    np.testing.assert_array_equal(cv2.imread(str(path), 0), np.eye(3, dtype=np.uint8) * 255)
    with pytest.raises(InputError, match="already exists"):
        tm.save_png(path)
    tm.save_png(path, overwrite=True)


def test_user_mask_image_any_size(slide_dir, tmp_path):
    reader = open_slide(slide_dir / "he.svs")
    small = np.zeros((H // 8, W // 8), np.uint8)
    x, y, w, h = (v // 8 for v in BLOCK)
    small[y:y + h, x:x + w] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), small)
    tm = tissue_mask(reader, region=tmp_path / "mask.png")
    assert tm.source.startswith("mask:")
    bx, by, bw, bh = BLOCK
    assert tm.fraction(bx + 40, by + 40, bx + bw - 40, by + bh - 40) == pytest.approx(1.0)
    assert tm.fraction(0, 0, bx - 40, H) == 0.0
    cv2.imwrite(str(tmp_path / "square.png"), np.full((100, 100), 255, np.uint8))
    with pytest.raises(InputError, match=r"square\.png: mask is 100x100 but the slide's area is"):
        tissue_mask(reader, region=tmp_path / "square.png")
    cv2.imwrite(str(tmp_path / "empty.png"), np.zeros((H // 8, W // 8), np.uint8))
    with pytest.raises(InputError, match=r"empty\.png: the tissue region covers no part"):
        tissue_mask(reader, region=tmp_path / "empty.png")


class _FakeReader(SlideReader):
    """Metadata only: an MRXS-like slide whose scanned area starts at (1000, 500)."""

    backend = "fake"

    def __init__(self, bounds, qupath_origin=None, size=(8000, 6000)):
        super().__init__(SlideSpec("fake.mrxs"))
        self.format, self.level_dimensions, self.level_downsamples = "mirax", (size,), (1.0,)
        self.mpp, self.mpp_source, self.bounds = (0.25, 0.25), "test", bounds
        self.qupath_origin = qupath_origin or bounds[:2]

    def close(self):
        pass


def _feature(geometry, object_type="annotation"):
    return {"type": "Feature", "geometry": geometry,
            "properties": {"objectType": object_type, "classification": {"name": "Tissue"}}}


def test_qupath_geojson_region_with_holes_in_qupaths_frame(tmp_path):
    reader = _FakeReader((1000, 500, 4096, 4096))
    square = [[0, 0], [2048, 0], [2048, 2048], [0, 2048], [0, 0]]
    hole = [[512, 512], [1536, 512], [1536, 1536], [512, 1536], [512, 512]]
    other = [[3072, 3072], [4096, 3072], [4096, 4096], [3072, 4096], [3072, 3072]]
    collection = {"type": "FeatureCollection", "features": [
        _feature({"type": "MultiPolygon", "coordinates": [[square, hole], [other]]}),
        _feature({"type": "Polygon", "coordinates": [square]}, object_type="detection")]}
    path = tmp_path / "region.geojson"
    path.write_text(json.dumps(collection))
    tm = tissue_mask(reader, region=path)
    assert tm.source == f"geojson:{path}" and tm.origin == (1000.0, 500.0)
    # QuPath (0, 0) is level-0 (1000, 500): the square's interior is tissue, the hole is not
    assert tm.fraction(1000 + 64, 500 + 64, 1000 + 448, 500 + 448) == pytest.approx(1.0)
    assert tm.fraction(1000 + 600, 500 + 600, 1000 + 1400, 500 + 1400) == 0.0
    assert tm.fraction(1000 + 3100, 500 + 3100, 1000 + 4000, 500 + 4000) == pytest.approx(1.0)
    assert tm.fraction(1000 + 2200, 500 + 64, 1000 + 2900, 500 + 1900) == 0.0
    expected_um2 = (2048 ** 2 - 1024 ** 2 + 1024 ** 2) * 0.0625
    assert tm.area_um2(reader.mpp) == pytest.approx(expected_um2, rel=0.03)
    # without QuPath's crop (qupath_origin (0, 0)) the same file lands 1000 px further left
    uncropped = tissue_mask(_FakeReader((1000, 500, 4096, 4096), qupath_origin=(0, 0)),
                            region=path)
    assert uncropped.fraction(1000 + 64, 500 + 64, 1000 + 448, 500 + 448) == 0.0


def test_bad_geojson_regions(tmp_path):
    reader = _FakeReader((0, 0, 4096, 4096))
    (tmp_path / "broken.geojson").write_text("{")
    with pytest.raises(InputError, match=r"broken\.geojson: not valid JSON"):
        tissue_mask(reader, region=tmp_path / "broken.geojson")
    (tmp_path / "points.geojson").write_text(json.dumps(
        _feature({"type": "Point", "coordinates": [1, 2]})))
    with pytest.raises(InputError, match=r"points\.geojson: holds no Polygon or MultiPolygon"):
        tissue_mask(reader, region=tmp_path / "points.geojson")
    far = [[9000, 9000], [9500, 9000], [9500, 9500], [9000, 9000]]
    (tmp_path / "far.geojson").write_text(json.dumps(_feature({"type": "Polygon",
                                                               "coordinates": [far]})))
    with pytest.raises(InputError, match=r"far\.geojson: the tissue region covers no part"):
        tissue_mask(reader, region=tmp_path / "far.geojson")
    with pytest.raises(InputError, match="tissue region file not found"):
        tissue_mask(reader, region=tmp_path / "missing.geojson")
