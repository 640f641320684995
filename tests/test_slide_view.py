"""ResampledView, level choice, MPP rules and the plain-image reader (nucleus_seg.slide).

Pixels are checked against OpenCV on small random images: area averaging must equal
cv2.resize(INTER_AREA), enlarging cv2.resize(INTER_LINEAR) (within 1 grey level: OpenCV uses fixed
point), and any window of a view must equal the same pixels of a whole-view read.
"""
from __future__ import annotations

import pickle
import warnings

import cv2
import numpy as np
import pytest

from nucleus_seg.errors import InputError
from nucleus_seg.slide import ResampledView, SlideSpec, choose_level, model_mpp, open_slide
from nucleus_seg.slide.mpp import mpp_from_ome_size, mpp_from_tiff_resolution, resolve_mpp


@pytest.fixture(scope="module")
def image_rgb():
    rng = np.random.default_rng(0)
    # smooth structure + noise, 120 x 180 (divisible by 2, 3, 4, 6)
    base = cv2.resize(rng.integers(0, 256, (12, 18, 3), dtype=np.uint8), (180, 120),
                      interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-20, 21, base.shape)
    return np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def png_path(tmp_path_factory, image_rgb):
    path = tmp_path_factory.mktemp("view") / "tile.png"
    cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    return path


def test_choose_level_never_picks_a_coarser_level():
    ds = (1.0, 4.0, 16.09)
    assert choose_level(ds, 1.0) == 0
    assert choose_level(ds, 3.9) == 0         # 4 > 3.9: enlarging level 1 is not allowed
    assert choose_level(ds, 4.0) == 1
    assert choose_level(ds, 15.0) == 1
    assert choose_level(ds, 16.0) == 2        # 16.09 is a nominal 16 (within 1 %)
    assert choose_level((1.0, 4.0, 16.5), 16.0) == 1
    assert choose_level(ds, 1000.0) == 2
    assert choose_level(ds, 0.5) == 0         # finer than level 0: level 0, enlarged


def test_image_reader_is_one_level_and_needs_mpp(png_path, image_rgb):
    with pytest.raises(InputError, match=r"tile\.png: no microns-per-pixel in the file; pass --mpp"):
        open_slide(png_path)
    with open_slide(png_path, mpp=0.5) as reader:
        assert reader.format == "image" and reader.backend == "image"
        assert reader.level_dimensions == ((180, 120),) and reader.level_downsamples == (1.0,)
        assert reader.mpp == (0.5, 0.5) and reader.mpp_source == "--mpp"
        assert reader.bounds == (0, 0, 180, 120)
        np.testing.assert_array_equal(reader.read_region(10, 20, 0, 30, 40), image_rgb[20:60, 10:40])
        # outside the image: white
        out = reader.read_region(170, 110, 0, 20, 20)
        np.testing.assert_array_equal(out[:10, :10], image_rgb[110:, 170:])
        assert (out[10:] == 255).all() and (out[:, 10:] == 255).all()
        thumb = reader.thumbnail(90)
        assert thumb.shape == (60, 90, 3)
    reader = open_slide(png_path, require_mpp=False)
    assert reader.mpp is None and reader.mpp_source == "none"
    view = ResampledView(reader, None)
    np.testing.assert_array_equal(view.read(0, 0, 180, 120), image_rgb)
    with pytest.raises(InputError, match="pass --mpp"):
        ResampledView(reader, 0.5)


def test_spec_reopens_and_reader_refuses_pickling(png_path):
    reader = open_slide(png_path, mpp=0.4)
    spec = pickle.loads(pickle.dumps(reader.spec()))
    assert spec == SlideSpec(str(png_path), 0.4, "image", True)
    again = open_slide(spec)
    assert again.mpp == (0.4, 0.4) and again.backend == "image"
    with pytest.raises(TypeError, match="spec"):
        pickle.dumps(reader)


def _windows_agree(view, whole):
    for x, y, w, h in [(0, 0, 17, 13), (5, 3, 20, 30), (view.width - 9, view.height - 7, 9, 7),
                       (11, 0, 1, 1)]:
        np.testing.assert_array_equal(view.read(x, y, w, h), whole[y:y + h, x:x + w])


@pytest.mark.parametrize("factor", [2.0, 3.0, 1.5])
def test_downsampling_is_area_averaging_and_window_independent(png_path, image_rgb, factor):
    view = ResampledView(open_slide(png_path, mpp=0.25), 0.25 * factor)
    assert (view.width, view.height) == (round(180 / factor), round(120 / factor))
    assert view.level == 0 and view.scale == pytest.approx(factor)
    whole = view.read(0, 0, view.width, view.height)
    expected = cv2.resize(image_rgb, (view.width, view.height), interpolation=cv2.INTER_AREA)
    assert np.abs(whole.astype(int) - expected).max() <= 1
    _windows_agree(view, whole)
    d = view.describe()
    assert d["mpp"] == pytest.approx(0.25 * factor) and d["slide_mpp"] == [0.25, 0.25]
    assert d["level"] == 0 and d["resampling"] == "area" and d["offset"] == [0.0, 0.0]


def test_identity_view_reads_pixels_unchanged(png_path, image_rgb):
    view = ResampledView(open_slide(png_path, mpp=0.25), 0.25)
    assert view.describe()["resampling"] == "none"
    np.testing.assert_array_equal(view.read(3, 4, 50, 60), image_rgb[4:64, 3:53])


def test_enlarging_warns_once_and_is_bilinear(png_path, image_rgb):
    reader = open_slide(png_path, mpp=0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        view = ResampledView(reader, 0.25)
        whole = view.read(0, 0, view.width, view.height)
        view.read(0, 0, 10, 10)
    assert len([w for w in caught if "finer than the slide's level 0" in str(w.message)]) == 1
    expected = cv2.resize(image_rgb, (360, 240), interpolation=cv2.INTER_LINEAR)
    # the outermost model pixels blend with the white beyond the image (OpenCV replicates the edge)
    assert np.abs(whole.astype(int) - expected)[1:-1, 1:-1].max() <= 1
    _windows_agree(view, whole)


def test_coordinates_map_both_ways(png_path):
    view = ResampledView(open_slide(png_path, mpp=0.25), 0.75)
    pts = np.array([[0.0, 0.0], [10.5, 20.25], [60.0, 40.0]])
    np.testing.assert_allclose(view.to_slide(pts), pts * 3.0)
    np.testing.assert_allclose(view.from_slide(view.to_slide(pts)), pts)
    np.testing.assert_allclose(view.to_qupath(pts), pts * 3.0)


def test_mpp_rules():
    # TIFF resolution: pixels per unit -> um/px; unit NONE (1) is an aspect ratio, not a size
    assert mpp_from_tiff_resolution((40000, 1), 3) == pytest.approx(0.25)
    assert mpp_from_tiff_resolution(101600.0, "inch") == pytest.approx(0.25)
    assert mpp_from_tiff_resolution((1, 1), 1) is None
    assert mpp_from_tiff_resolution((0, 1), 3) is None
    assert mpp_from_ome_size("250", "nm") == pytest.approx(0.25)
    assert mpp_from_ome_size(0.5, None) == pytest.approx(0.5)
    assert mpp_from_ome_size(1, "pixel") is None
    # first plausible candidate wins; implausible ones are named in the error
    assert resolve_mpp("s.tif", [(352.8, 352.8, "tiff:XResolution"), (0.5, 0.5, "b")]) == \
        ((0.5, 0.5), "b")
    with pytest.raises(InputError, match=r"^s\.tif: no microns-per-pixel in the file "
                                         r"\(tiff:XResolution gives 352\.8 .*\); pass --mpp$"):
        resolve_mpp("s.tif", [(352.8, 352.8, "tiff:XResolution")])
    assert resolve_mpp("s.tif", [(0.25, 0.25, "a")], mpp=0.5) == ((0.5, 0.5), "--mpp")
    with pytest.raises(InputError, match=r"--mpp 100 is outside"):
        resolve_mpp("s.tif", [], mpp=100)
    assert resolve_mpp("s.tif", [], require=False) == (None, "none")


def test_model_mpp_reads_the_config(repo_root):
    from mmengine.config import Config

    assert model_mpp(Config(dict(nucleus_mpp=0.5))) == 0.5
    assert model_mpp(str(repo_root / "configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py")) == 0.25
    with pytest.raises(InputError, match="nucleus_mpp"):
        model_mpp(Config(dict(a=1)))
