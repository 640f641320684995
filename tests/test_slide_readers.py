"""Slide readers on synthetic slides written with tifffile (tests/slides.py): which reader opens
each file, exact level-0 pixels, lower levels within resampling tolerance, MPP sources and the
one-line errors for missing MPP and truncated files."""
from __future__ import annotations

import concurrent.futures
import multiprocessing

import cv2
import numpy as np
import pytest
import tifffile

import slides
from nucleus_seg.errors import InputError
from nucleus_seg.slide import ResampledView, open_slide
from nucleus_seg.slide.tiff_reader import TiffReader


@pytest.fixture(scope="module")
def mosaic():
    return slides.make_mosaic(2048, 1536)


@pytest.fixture(scope="module")
def files(tmp_path_factory, mosaic):
    d = tmp_path_factory.mktemp("slides")
    f = {
        "aperio": slides.write_aperio(d / "aperio.svs", mosaic),
        "aperio_jpeg": slides.write_aperio(d / "aperio_jpeg.svs", mosaic, compression="jpeg"),
        "generic_cm": slides.write_generic_tiff(d / "generic_cm.tif", mosaic),
        "generic_inch": slides.write_generic_tiff(d / "generic_inch.tif", mosaic, mpp=0.5,
                                                  unit="INCH"),
        "ome": slides.write_ome_tiff(d / "slide.ome.tif", mosaic),
        "ome_nm": slides.write_ome_tiff(d / "nm.ome.tif", mosaic, mpp=0.5, unit="nm"),
        "no_mpp": slides.write_generic_tiff(d / "no_mpp.tif", mosaic, mpp=None),
    }
    f["truncated"] = slides.write_truncated(f["aperio"], d / "truncated.svs")
    f["truncated_generic"] = slides.write_truncated(f["generic_cm"], d / "truncated.tif", 0.9)
    # a plain stripped TIFF (OpenSlide reads only tiled ones) and an uncompressed one, 72 dpi:
    # a 'resolution' of an image editor, not of a scanner
    tifffile.imwrite(d / "stripped.tif", mosaic, photometric="rgb", compression="zlib",
                     rowsperstrip=64, resolution=(4e4, 4e4), resolutionunit="CENTIMETER",
                     metadata=None)
    tifffile.imwrite(d / "raw_72dpi.tif", mosaic, photometric="rgb", resolution=(72, 72),
                     resolutionunit="INCH", metadata=None)
    f["stripped"], f["raw_72dpi"] = d / "stripped.tif", d / "raw_72dpi.tif"
    cv2.imwrite(str(d / "plain.png"), cv2.cvtColor(mosaic[:256, :320], cv2.COLOR_RGB2BGR))
    f["png"] = d / "plain.png"
    return f


@pytest.mark.parametrize("name, backend, fmt, mpp, source", [
    ("aperio", "openslide", "aperio", 0.25, "openslide:aperio.MPP"),
    ("aperio_jpeg", "openslide", "aperio", 0.25, "openslide:aperio.MPP"),
    ("generic_cm", "openslide", "generic-tiff", 0.25, "openslide:tiff.XResolution"),
    ("generic_inch", "openslide", "generic-tiff", 0.5, "openslide:tiff.XResolution"),
    ("ome", "tifffile", "ome-tiff", 0.25, "ome:PhysicalSizeX"),
    ("ome_nm", "tifffile", "ome-tiff", 0.5, "ome:PhysicalSizeX"),
    ("stripped", "tifffile", "generic-tiff", 0.25, "tiff:XResolution"),
])
def test_each_file_opens_with_its_reader_and_mpp(files, name, backend, fmt, mpp, source):
    with open_slide(files[name]) as reader:
        assert (reader.backend, reader.format) == (backend, fmt)
        assert reader.mpp == pytest.approx((mpp, mpp)) and reader.mpp_source == source
        assert reader.level_dimensions[0] == (2048, 1536)
        assert reader.bounds == (0, 0, 2048, 1536) and reader.qupath_origin == (0, 0)
        if name != "stripped":
            assert reader.level_dimensions == ((2048, 1536), (512, 384), (128, 96))
            assert reader.level_downsamples == pytest.approx((1.0, 4.0, 16.0))


REGIONS = [(0, 0, 256, 256), (300, 200, 700, 500), (255, 255, 2, 2), (1900, 1400, 300, 300),
           (-40, -30, 100, 90)]


@pytest.mark.parametrize("name", ["aperio", "generic_cm", "ome", "stripped", "raw_72dpi"])
def test_level0_regions_equal_the_source_pixels(files, mosaic, name):
    padded = np.full((1536 + 600, 2048 + 600, 3), 255, np.uint8)
    padded[300:300 + 1536, 300:300 + 2048] = mosaic
    with open_slide(files[name], mpp=0.25) as reader:
        for x, y, w, h in REGIONS:
            expected = padded[300 + y:300 + y + h, 300 + x:300 + x + w]
            np.testing.assert_array_equal(reader.read_region(x, y, 0, w, h), expected)


@pytest.mark.parametrize("name", ["aperio", "generic_cm", "ome"])
def test_lower_levels_and_resampled_views(files, mosaic, name):
    levels = slides.pyramid(mosaic)
    with open_slide(files[name]) as reader:
        np.testing.assert_array_equal(reader.read_level(1, 0, 0, 512, 384), levels[1])
        np.testing.assert_array_equal(reader.read_region(1024, 512, 2, 32, 32),
                                      levels[2][32:64, 64:96])
        # 1.0 um/px: level 1 as it is
        view = ResampledView(reader, 1.0)
        assert (view.level, view.describe()["resampling"]) == (1, "none")
        np.testing.assert_array_equal(view.read(0, 0, view.width, view.height), levels[1])
        # 0.5 um/px: level 0 area-averaged 2x, exactly what cv2.INTER_AREA gives
        view = ResampledView(reader, 0.5)
        assert view.level == 0 and (view.width, view.height) == (1024, 768)
        expected = cv2.resize(mosaic, (1024, 768), interpolation=cv2.INTER_AREA)
        assert np.abs(view.read(0, 0, 1024, 768).astype(int) - expected).max() <= 1
        # 2.0 um/px: level 1 then 2x; 8x from level 0 in one go differs only by double rounding
        view = ResampledView(reader, 2.0)
        assert view.level == 1
        expected = cv2.resize(mosaic, (256, 192), interpolation=cv2.INTER_AREA).astype(int)
        assert np.abs(view.read(0, 0, 256, 192) - expected).max() <= 1
        # 0.37 um/px (1.48 level-0 px per model px): windows agree with the whole view exactly
        view = ResampledView(reader, 0.37)
        whole = view.read(0, 0, view.width, view.height)
        np.testing.assert_array_equal(view.read(77, 33, 300, 200), whole[33:233, 77:377])
        expected = cv2.resize(mosaic, (view.width, view.height), interpolation=cv2.INTER_AREA)
        assert np.abs(whole.astype(int) - expected).mean() < 1.0
        thumb = reader.thumbnail(256)
        assert thumb.shape == (192, 256, 3)
        assert np.abs(thumb.astype(int) -
                      cv2.resize(mosaic, (256, 192), interpolation=cv2.INTER_AREA)).max() <= 1


def test_jpeg_slide_decodes_the_same_in_openslide_and_tifffile(files, mosaic):
    a = open_slide(files["aperio_jpeg"])
    b = open_slide(files["aperio_jpeg"], backend="tifffile")
    region_a, region_b = a.read_region(300, 200, 0, 700, 500), b.read_region(300, 200, 0, 700, 500)
    np.testing.assert_array_equal(region_a, region_b)
    assert np.abs(region_a.astype(int) - mosaic[200:700, 300:1000]).mean() < 3  # lossy, close


def test_region_reads_decode_only_the_tiles_they_touch(files, monkeypatch):
    calls = []
    original = TiffReader._segment

    def counting(self, lv, row, col):
        calls.append((row, col))
        return original(self, lv, row, col)

    monkeypatch.setattr(TiffReader, "_segment", counting)
    reader = open_slide(files["ome"])
    reader.read_region(250, 250, 0, 10, 10)        # 256 px tiles: the 4 around (256, 256)
    assert sorted(calls) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    calls.clear()
    stripped = open_slide(files["stripped"])
    stripped.read_region(0, 100, 0, 50, 40)        # 64-row strips: strip 1 and 2 only
    assert sorted(calls) == [(1, 0), (2, 0)]


def test_missing_and_overridden_mpp(files):
    with pytest.raises(InputError, match=r"no_mpp\.tif: no microns-per-pixel in the file; "
                                         r"pass --mpp$"):
        open_slide(files["no_mpp"])
    with pytest.raises(InputError, match=r"raw_72dpi\.tif: no microns-per-pixel in the file "
                                         r"\(tiff:XResolution gives 352\.8 x 352\.8 um/px"):
        open_slide(files["raw_72dpi"])
    reader = open_slide(files["no_mpp"], mpp=0.5)
    assert reader.mpp == (0.5, 0.5) and reader.mpp_source == "--mpp"
    reader = open_slide(files["aperio"], mpp=0.3)   # --mpp wins over the file's 0.25
    assert reader.mpp == (0.3, 0.3) and reader.mpp_source == "--mpp"
    with pytest.raises(InputError, match=r"--mpp 0\.001 is outside"):
        open_slide(files["aperio"], mpp=0.001)


@pytest.mark.parametrize("name", ["truncated", "truncated_generic"])
def test_truncated_slide_is_a_one_line_error(files, name, capfd):
    with pytest.raises(InputError) as info:
        open_slide(files[name])
    message = str(info.value)
    assert message.startswith(str(files[name])) and "\n" not in message
    assert "truncated" in message or "corrupt" in message or "cannot" in message
    assert capfd.readouterr().err == ""   # no library chatter on stderr


def test_other_bad_inputs(tmp_path, files):
    with pytest.raises(InputError, match="file not found"):
        open_slide(tmp_path / "missing.svs")
    (tmp_path / "junk.svs").write_bytes(b"not a slide at all")
    with pytest.raises(InputError, match=r"junk\.svs: not a slide or image format"):
        open_slide(tmp_path / "junk.svs")
    with pytest.raises(InputError, match="is a folder"):
        open_slide(tmp_path)
    reader = open_slide(files["png"], mpp=0.25)
    assert reader.backend == "image" and reader.level_dimensions == ((320, 256),)


def _read_in_worker(spec):
    from nucleus_seg.slide import open_slide as reopen

    with reopen(spec) as reader:
        return reader.backend, reader.read_region(500, 400, 0, 64, 64)


def test_workers_reopen_the_slide_from_its_spec(files):
    reader = open_slide(files["ome"], mpp=0.3)
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        results = list(pool.map(_read_in_worker, [reader.spec()] * 2))
    for backend, region in results:
        assert backend == "tifffile"
        np.testing.assert_array_equal(region, reader.read_region(500, 400, 0, 64, 64))
