"""Slide readers on synthetic slides written with tifffile (tests/slides.py): which reader opens
each file, exact level-0 pixels, lower levels within resampling tolerance, MPP sources and the
one-line errors for missing MPP and truncated files; vendor formats OpenSlide's own drivers read
(Leica SCN and MIRAX with their scanned-area bounds, Hamamatsu NDPI, DICOM WSI)."""
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


# --- vendor formats: Leica SCN (bounds inside a larger collection) and Hamamatsu NDPI -------------
SCN_OFFSET = (320, 192)  # level-0 px of the main image inside the collection: multiples of 16


@pytest.fixture(scope="module")
def vendor(tmp_path_factory):
    """A 1024 x 768 mosaic at 0.5 um/px (tissue in the middle, glass around it) as a Leica SCN
    (zlib and JPEG tiles) and as an NDPI: 260-270 KB each."""
    d = tmp_path_factory.mktemp("vendor")
    image = slides.make_mosaic(1024, 768)
    return dict(image=image, levels=slides.pyramid(image),
                scn=slides.write_leica_scn(d / "slide.scn", image, offset=SCN_OFFSET),
                scn_jpeg=slides.write_leica_scn(d / "jpeg.scn", image, offset=SCN_OFFSET,
                                                compression="jpeg"),
                ndpi=slides.write_ndpi(d / "slide.ndpi", image))


@pytest.mark.parametrize("name", ["scn", "scn_jpeg"])
def test_leica_scn_opens_in_openslide_with_its_bounds_mpp_and_levels(vendor, name, capfd):
    with open_slide(vendor[name]) as reader:
        assert (reader.backend, reader.format) == ("openslide", "leica")
        # MPP: OpenSlide's leica driver takes the main image's X/YResolution (px per cm)
        assert reader.mpp == pytest.approx((0.5, 0.5))
        assert reader.mpp_source == "openslide:leica:openslide.mpp-x"
        # level 0 is the whole collection; the main image is the scanned area
        assert reader.level_dimensions == ((1664, 1152), (416, 288), (104, 72))
        assert reader.level_downsamples == pytest.approx((1.0, 4.0, 16.0))
        assert reader.bounds == (*SCN_OFFSET, 1024, 768)
        assert reader.qupath_origin == SCN_OFFSET
    assert capfd.readouterr().err == ""  # tifffile's OME probe says nothing about the file


def test_leica_scn_regions_are_the_written_pixels_at_their_offset(vendor):
    image, levels = vendor["image"], vendor["levels"]
    ox, oy = SCN_OFFSET
    with open_slide(vendor["scn"]) as reader:
        np.testing.assert_array_equal(reader.read_region(ox, oy, 0, 1024, 768), image)
        np.testing.assert_array_equal(reader.read_region(ox + 300, oy + 200, 0, 500, 300),
                                      image[200:500, 300:800])
        # across the scanned area's corner: the glass outside it (transparent in OpenSlide) is white
        corner = reader.read_region(ox - 40, oy - 30, 0, 100, 90)
        assert (corner[:30] == 255).all() and (corner[:, :40] == 255).all()
        np.testing.assert_array_equal(corner[30:, 40:], image[:60, :60])
        # coarser levels: the written reductions at offset / downsample
        np.testing.assert_array_equal(reader.read_level(1, ox // 4, oy // 4, 256, 192), levels[1])
        np.testing.assert_array_equal(reader.read_region(ox + 512, oy + 256, 2, 16, 16),
                                      levels[2][16:32, 32:48])
        # the model's view is the scanned area: model pixel (0, 0) is level-0 (320, 192), and
        # QuPath's pixel (0, 0) too
        view = ResampledView(reader, 0.5)
        assert (view.width, view.height, view.level) == (1024, 768, 0)
        assert tuple(view.offset) == SCN_OFFSET
        np.testing.assert_array_equal(view.read(0, 0, 1024, 768), image)
        assert view.to_slide([[10.0, 20.0]]).tolist() == [[ox + 10.0, oy + 20.0]]
        assert view.to_qupath([[10.0, 20.0]]).tolist() == [[10.0, 20.0]]
        view = ResampledView(reader, 2.0)  # level 1 as it is
        assert (view.level, view.width, view.height) == (1, 256, 192)
        np.testing.assert_array_equal(view.read(0, 0, 256, 192), levels[1])
    with open_slide(vendor["scn_jpeg"]) as reader:
        region = reader.read_region(ox, oy, 0, 1024, 768).astype(int)
        assert np.abs(region - image).mean() < 3  # lossy, close
        assert np.abs(reader.read_level(1, ox // 4, oy // 4, 256, 192) - levels[1].astype(int)).mean() < 3


def test_ndpi_opens_in_openslide_with_its_mpp_levels_and_pixels(vendor, capfd):
    jpegs = slides.ndpi_levels_decoded(vendor["ndpi"])  # the JPEG of each level, decoded whole
    with open_slide(vendor["ndpi"]) as reader:
        assert (reader.backend, reader.format) == ("openslide", "hamamatsu")
        assert reader.mpp == pytest.approx((0.5, 0.5))  # X/YResolution in px per cm
        assert reader.mpp_source == "openslide:hamamatsu:openslide.mpp-x"
        # OpenSlide adds libjpeg's 1/2, 1/4, 1/8 scaled decodes of each stored level (1, 4, 16)
        assert reader.level_dimensions == tuple((1024 // d, 768 // d) for d in (1, 2, 4, 8, 16, 32, 64, 128))
        assert reader.level_downsamples == pytest.approx((1, 2, 4, 8, 16, 32, 64, 128))
        assert reader.bounds == (0, 0, 1024, 768) and reader.qupath_origin == (0, 0)
        # the stored levels, read tile by tile (restart intervals), are their JPEGs decoded whole
        np.testing.assert_array_equal(reader.read_region(0, 0, 0, 1024, 768), jpegs[0])
        np.testing.assert_array_equal(reader.read_region(300, 200, 0, 500, 300), jpegs[0][200:500, 300:800])
        np.testing.assert_array_equal(reader.read_level(2, 0, 0, 256, 192), jpegs[1])
        np.testing.assert_array_equal(reader.read_level(4, 0, 0, 64, 48), jpegs[2])
        assert np.abs(jpegs[0].astype(int) - vendor["image"]).mean() < 3  # lossy, close
        # a scaled decode is close to the area reduction of level 0
        half = cv2.resize(vendor["image"], (512, 384), interpolation=cv2.INTER_AREA).astype(int)
        assert np.abs(reader.read_level(1, 0, 0, 512, 384) - half).mean() < 3
        view = ResampledView(reader, 2.0)  # the stored 4x level, as it is
        assert (view.level, view.width, view.height) == (2, 256, 192)
        np.testing.assert_array_equal(view.read(0, 0, 256, 192), jpegs[1])
    assert capfd.readouterr().err == ""


# --- vendor formats: 3DHISTECH MIRAX (bounds from the camera positions that were scanned) ---------
MIRAX_MPP = 0.243  # a Pannoramic 250's 20x pixel: not a round number, so a parsing slip shows
MIRAX_LAYOUT = dict(tile=(256, 192), divisions=2, margin=(1, 2, 1, 1), levels=3)
MIRAX_ORIGIN = (512, 768)  # the margin: 1 and 2 empty camera positions of 512 x 384 px


@pytest.fixture(scope="module")
def mirax(tmp_path_factory):
    """A 1024 x 768 mosaic whose top-right camera position (512 x 384 px) is bare glass, as a
    MIRAX slide: JPEG images of 256 x 192 px, 2 x 2 per camera position, 3 zoom levels, one empty
    camera position left and right of it, two above and one below (~60 KB in all)."""
    d = tmp_path_factory.mktemp("mirax")
    image = slides.make_mosaic(1024, 768)
    image[:384, 512:] = 255  # glass: the scanner skips this camera position
    path = slides.write_mirax(d / "slide.mrxs", image, mpp=MIRAX_MPP, **MIRAX_LAYOUT)
    return dict(image=image, path=path,
                decoded=slides.mirax_levels_decoded(image, **MIRAX_LAYOUT))


def test_mirax_opens_in_openslide_with_its_bounds_mpp_and_levels(mirax, capfd):
    with open_slide(mirax["path"]) as reader:
        assert (reader.backend, reader.format) == ("openslide", "mirax")
        # MPP: MICROMETER_PER_PIXEL_X/Y of the level-0 layer in Slidedat.ini
        assert reader.mpp == pytest.approx((MIRAX_MPP, MIRAX_MPP))
        assert reader.mpp_source == "openslide:mirax:openslide.mpp-x"
        # level 0 is the whole camera grid (4 x 5 positions); each zoom level halves it
        assert reader.level_dimensions == ((2048, 1920), (1024, 960), (512, 480))
        assert reader.level_downsamples == pytest.approx((1.0, 2.0, 4.0))
        # the scanned area: the box of the camera positions that exist (the glass position
        # inside it does not shrink it)
        assert reader.bounds == (*MIRAX_ORIGIN, 1024, 768)
        assert reader.qupath_origin == MIRAX_ORIGIN
    assert capfd.readouterr().err == ""


def test_mirax_regions_are_the_written_pixels_at_their_offset(mirax):
    image, decoded = mirax["image"], mirax["decoded"]  # decoded: each level's JPEGs decoded
    ox, oy = MIRAX_ORIGIN
    with open_slide(mirax["path"]) as reader:
        region = reader.read_region(ox, oy, 0, 1024, 768)
        np.testing.assert_array_equal(region, decoded[0][oy:oy + 768, ox:ox + 1024])
        tissue = (image != 255).any(axis=2)
        assert np.abs(region.astype(int) - image)[tissue].mean() < 3  # lossy, close
        np.testing.assert_array_equal(reader.read_region(ox + 300, oy + 200, 0, 500, 300),
                                      decoded[0][oy + 200:oy + 500, ox + 300:ox + 800])
        # the skipped camera position has no image (transparent in OpenSlide), read as white
        raw = np.asarray(reader._slide.read_region((ox + 512, oy), 0, (512, 384)))
        assert (raw[..., 3] == 0).all()
        assert (reader.read_region(ox + 512, oy, 0, 512, 384) == 255).all()
        # across the scanned area's corner: the empty camera positions outside it are white too
        corner = reader.read_region(ox - 40, oy - 30, 0, 100, 90)
        assert (corner[:30] == 255).all() and (corner[:, :40] == 255).all()
        np.testing.assert_array_equal(corner[30:, 40:], decoded[0][oy:oy + 60, ox:ox + 60])
        # coarser levels: each zoom level's images, 2x reductions of the level below
        for level, f in ((1, 2), (2, 4)):
            np.testing.assert_array_equal(reader.read_level(level, 0, 0, 2048 // f, 1920 // f),
                                          decoded[level])
            np.testing.assert_array_equal(reader.read_region(ox + 512, oy + 384, level, 64, 48),
                                          decoded[level][(oy + 384) // f:(oy + 384) // f + 48,
                                                         (ox + 512) // f:(ox + 512) // f + 64])
        # the model's view is the scanned area: model pixel (0, 0) is level-0 (512, 768), and
        # QuPath's pixel (0, 0) too
        view = ResampledView(reader, MIRAX_MPP)
        assert (view.width, view.height, view.level) == (1024, 768, 0)
        assert tuple(view.offset) == (ox, oy)
        np.testing.assert_array_equal(view.read(0, 0, 1024, 768), region)
        assert view.to_slide([[10.0, 20.0]]).tolist() == [[ox + 10.0, oy + 20.0]]
        assert view.to_qupath([[10.0, 20.0]]).tolist() == [[10.0, 20.0]]
        view = ResampledView(reader, 4 * MIRAX_MPP)  # level 2 as it is
        assert (view.level, view.width, view.height) == (2, 256, 192)
        np.testing.assert_array_equal(view.read(0, 0, 256, 192),
                                      decoded[2][oy // 4:oy // 4 + 192, ox // 4:ox // 4 + 256])
        reduced = cv2.resize(image, (256, 192), interpolation=cv2.INTER_AREA)
        assert np.abs(view.read(0, 0, 256, 192).astype(int) - reduced).mean() < 3

def test_a_mirax_file_without_its_folder_is_one_line_naming_the_folder(mirax, tmp_path):
    alone = tmp_path / "slide.mrxs"
    alone.write_bytes(mirax["path"].read_bytes())  # the .mrxs copied without slide/
    with pytest.raises(InputError, match=r"slide\.mrxs: MIRAX data folder missing: expected "
                                         r"slide/Slidedat\.ini beside it"):
        open_slide(alone)


# --- DICOM WSI: a folder of one file per level, opened by OpenSlide's dicom driver (libdicom) ----
DICOM_MPP = 0.2631  # not a round number, so a parsing slip (or the mm -> um factor) shows
DICOM_SIZE = (1000, 700)  # not whole 256-px frames: the edge frames are padded, OpenSlide clips them


@pytest.fixture(scope="module")
def dicom(tmp_path_factory):
    """A 1000 x 700 mosaic as two DICOM WSI series of 3 levels (1, 4, 16) in 256 x 256 frames:
    RGB frames (native pixel data, ~2.4 MB) and JPEG baseline frames (~0.3 MB)."""
    d = tmp_path_factory.mktemp("dicom")
    image = slides.make_mosaic(*DICOM_SIZE)
    return dict(image=image, levels=slides.pyramid(image),
                raw=slides.write_dicom_wsi(d / "raw", image, mpp=DICOM_MPP),
                jpeg=slides.write_dicom_wsi(d / "jpeg", image, mpp=DICOM_MPP, compression="jpeg"))


@pytest.mark.parametrize("which", ["level-0 file", "level-2 file", "folder"])
def test_dicom_wsi_opens_in_openslide_from_any_of_its_files_or_its_folder(dicom, which, capfd):
    files = dicom["raw"]
    path = {"level-0 file": files[0], "level-2 file": files[2], "folder": files[0].parent}[which]
    with open_slide(path) as reader:
        assert (reader.backend, reader.format) == ("openslide", "dicom")
        # the folder stands for its first DICOM WSI file; a file stands for itself
        assert reader.path == (files[0] if which == "folder" else path)
        assert reader.spec().path == str(reader.path)
        # MPP: PixelSpacing (mm) in the Shared Functional Groups' Pixel Measures of level 0
        assert reader.mpp == pytest.approx((DICOM_MPP, DICOM_MPP))
        assert reader.mpp_source == "openslide:dicom:openslide.mpp-x"
        assert reader.properties["dicom.DimensionOrganizationType"] == "TILED_FULL"
        # every file of the series is a level, whichever file was opened
        assert reader.level_dimensions == ((1000, 700), (250, 175), (62, 43))
        assert reader.level_downsamples == pytest.approx((1.0, 4.0, (1000 / 62 + 700 / 43) / 2))
        assert reader.bounds == (0, 0, 1000, 700) and reader.qupath_origin == (0, 0)
    assert capfd.readouterr().err == ""


def test_dicom_wsi_regions_are_the_written_pixels(dicom):
    image, levels = dicom["image"], dicom["levels"]
    with open_slide(dicom["raw"][0]) as reader:
        np.testing.assert_array_equal(reader.read_region(0, 0, 0, 1000, 700), image)
        # across frame corners (256-px frames) and into the clipped edge frames
        np.testing.assert_array_equal(reader.read_region(200, 230, 0, 800, 470), image[230:, 200:])
        # past the image's edge: white, not the white padding of the edge frames by chance
        beyond = reader.read_region(990, 690, 0, 30, 30)
        np.testing.assert_array_equal(beyond[:10, :10], image[690:, 990:])
        assert (beyond[10:] == 255).all() and (beyond[:, 10:] == 255).all()
        np.testing.assert_array_equal(reader.read_level(1, 0, 0, 250, 175), levels[1])
        np.testing.assert_array_equal(reader.read_level(2, 0, 0, 62, 43), levels[2])
        view = ResampledView(reader, 4 * DICOM_MPP)  # level 1 as it is
        assert (view.level, view.width, view.height) == (1, 250, 175)
        np.testing.assert_array_equal(view.read(0, 0, 250, 175), levels[1])
    with open_slide(dicom["jpeg"][1]) as reader:  # JPEG baseline frames, YCbCr 4:2:2
        assert reader.properties["dicom.PhotometricInterpretation"] == "YBR_FULL_422"
        assert np.abs(reader.read_region(0, 0, 0, 1000, 700).astype(int) - image).mean() < 3
        assert np.abs(reader.read_level(1, 0, 0, 250, 175).astype(int) - levels[1]).mean() < 3


def test_a_folder_without_a_dicom_slide_and_a_dicom_that_is_no_slide_are_one_line_errors(
        dicom, tmp_path):
    (tmp_path / "notes.txt").write_text("no slide here")
    with pytest.raises(InputError, match=r"is a folder without a DICOM WSI file in it \(for MIRAX "
                                         r"pass the \.mrxs file beside its folder\)"):
        open_slide(tmp_path)
    # the same file with another SOP class (VL Microscopic Image, same length): not a WSI
    data = dicom["raw"][2].read_bytes().replace(slides.DICOM_WSI_SOP_CLASS.encode(),
                                                b"1.2.840.10008.5.1.4.1.1.77.1.2")
    (tmp_path / "micro.dcm").write_bytes(data)
    with pytest.raises(InputError, match=r"micro\.dcm: a DICOM file but not a whole-slide image"):
        open_slide(tmp_path / "micro.dcm")
    with pytest.raises(InputError, match="is a folder without a DICOM WSI file"):
        open_slide(tmp_path)


def test_a_dicom_series_folder_is_one_input_named_after_its_folder(dicom, tmp_path):
    """tools/infer.py expands a folder into its files; a DICOM series is one slide in one file per
    level, so its files become one input (OpenSlide opens the series from any of them)."""
    from nucleus_seg.image_io import IMAGE_EXTENSIONS, expand_inputs
    from nucleus_seg.inference.batch import SLIDE_SUFFIXES, one_input_per_dicom_series, slide_name

    raw, jpeg = dicom["raw"], dicom["jpeg"]
    not_a_slide = tmp_path / "micro.dcm"  # another SOP class: stays, and fails with its own error
    not_a_slide.write_bytes(raw[2].read_bytes().replace(slides.DICOM_WSI_SOP_CLASS.encode(),
                                                        b"1.2.840.10008.5.1.4.1.1.77.1.2"))
    files, problems = expand_inputs([raw[0].parent, jpeg[1], jpeg[2], tmp_path],
                                    IMAGE_EXTENSIONS + SLIDE_SUFFIXES)
    assert not problems and len(files) == 6
    inputs = one_input_per_dicom_series(files)
    assert inputs == [raw[0], jpeg[1], not_a_slide]
    assert [slide_name(p) for p in inputs[:2]] == [raw[0].parent.name, jpeg[0].parent.name]
