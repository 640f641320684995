"""The slide path end to end with a pixel-reading stand-in predictor: slides written by
tests/slides.py (Aperio-style, generic TIFF with resolution tags, OME-TIFF, Leica SCN whose scanned
area sits inside a larger collection, MIRAX whose scanned camera positions sit inside its camera
grid), read by OpenSlide / tifffile in reader processes; every nucleus once at the right level-0
position in QuPath's frame; outputs; resume after SIGKILL; determinism whatever the workers;
one-line errors for bad slides."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely

from nucleus_seg.errors import InputError
from nucleus_seg.inference.batch import infer_inputs
from nucleus_seg.inference.export import geojson_feature
from nucleus_seg.slide_inference import SlideSettings, infer_slide
from tests.standins import CHILDREN_ENV, KILL_ENV, ColourCodedPredictor, colour_slide
from slides import (write_aperio, write_dicom_wsi, write_generic_tiff, write_leica_scn, write_mirax,
                    write_ome_tiff, write_truncated)

TESTS = Path(__file__).resolve().parent
W, H = 1600, 1200
TISSUE = (300, 250, 1000, 700)  # x, y, w, h of the pink block holding the nuclei
SCN_OFFSET = (160, 96)  # level-0 px of the SCN's main image (the slide) inside its collection
# MIRAX: camera positions of 2 x 2 images of 200 x 150 px; one empty position left of the slide
# image, two above it: level-0 (400, 600)
MRXS_LAYOUT = dict(tile=(200, 150), divisions=2, margin=(1, 2, 1, 1), levels=3)
MRXS_ORIGIN = (400, 600)
FAST = dict(tile=256, overlap=64, target_mpp=0.25, batch_size=3, progress=False)


@pytest.fixture(scope="module")
def slide_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slides")
    image, labels, discs = colour_slide(W, H, TISSUE)
    paths = {"aperio": write_aperio(folder / "a.svs", image, mpp=0.25),
             "generic": write_generic_tiff(folder / "g.tif", image, mpp=0.25),
             "ome": write_ome_tiff(folder / "o.ome.tif", image, mpp=0.25),
             "scn": write_leica_scn(folder / "l.scn", image, mpp=0.25, offset=SCN_OFFSET),
             # PNG images: the stand-in predictor reads nuclei by their exact colour
             "mrxs": write_mirax(folder / "m.mrxs", image, mpp=0.25, image_format="PNG",
                                 **MRXS_LAYOUT),
             # a DICOM WSI series, opened from its folder; RGB frames: exact colours
             "dcm": write_dicom_wsi(folder / "d", image, mpp=0.25)[0].parent}
    return dict(folder=folder, image=image, labels=labels, discs=discs, paths=paths)


def _truth(labels):
    """id -> (area, centroid x, centroid y) in level-0 pixel-edge coordinates."""
    out = {}
    ys, xs = np.nonzero(labels)
    ids = labels[ys, xs]
    for k in np.unique(ids):
        sel = ids == k
        out[int(k)] = (int(sel.sum()), xs[sel].mean() + 0.5, ys[sel].mean() + 0.5)
    return out


def _table(out_dir):
    return pq.read_table(out_dir / "nuclei.parquet").to_pydict()


@pytest.mark.parametrize("kind,reader_format", [("aperio", "aperio"), ("generic", "generic-tiff"),
                                                ("ome", "ome-tiff")])
def test_every_nucleus_once_at_its_place_in_every_output(slide_data, tmp_path, kind, reader_format):
    out = tmp_path / kind
    predictor = ColourCodedPredictor()
    summary = infer_slide(slide_data["paths"][kind], predictor, out, SlideSettings(workers=1, **FAST))
    assert predictor.tiles == summary.tiles and predictor.blank_tiles == 0  # glass never predicted
    truth = _truth(slide_data["labels"])
    table = _table(out)
    assert summary.nuclei == len(truth) == len(table["id"]) > 400
    assert table["id"] == list(range(1, len(truth) + 1))
    # nuclei are whole and exact: area and centroid of each equal the painted disc's
    found = {}
    for cx, cy, area in zip(table["centroid_x"], table["centroid_y"], table["area_px"]):
        k = int(slide_data["labels"][int(cy), int(cx)])
        assert k and k not in found
        found[k] = (area, cx, cy)
        assert area == truth[k][0] and cx == pytest.approx(truth[k][1]) and cy == pytest.approx(truth[k][2])
    assert table["area_um2"][0] == pytest.approx(table["area_px"][0] * 0.25 * 0.25)
    assert table["centroid_x_um"][0] == pytest.approx(table["centroid_x"][0] * 0.25)
    # the GeoJSON holds the same nuclei with the same outlines
    doc = json.loads((out / "nuclei.geojson").read_text())
    assert [f["properties"]["nucleus_id"] for f in doc["features"]] == table["id"]
    outlines = shapely.from_wkb(table["outline"])
    for feature, outline, score in zip(doc["features"][:50], outlines[:50], table["score"]):
        assert shapely.equals(shapely.geometry.shape(feature["geometry"]), outline)
        # the streamed text is the Feature export.geojson_feature describes
        assert feature == geojson_feature(feature["geometry"], 0, score, ["nucleus"],
                                          nucleus_id=feature["properties"]["nucleus_id"])
    summary_doc = json.loads((out / "summary.json").read_text())
    view = summary_doc["view"]
    assert view["format"] == reader_format and view["mpp"] == 0.25 and view["level"] == 0
    assert view["scale"] == [1.0, 1.0] and view["offset"] == [0.0, 0.0]
    assert view["mpp_source"] != "--mpp"
    assert summary_doc["coordinates"]["frame"] == "qupath"
    # tissue: the pink block (0.175 mm^2 at 0.25 um/px), found on a low level; glass skipped
    x, y, w, h = TISSUE
    assert summary_doc["tissue_area_mm2"] == pytest.approx(w * h * 0.0625e-6, rel=0.15)
    assert summary_doc["nuclei_per_mm2"] == pytest.approx(summary.nuclei / summary_doc["tissue_area_mm2"])
    assert 0 < summary.tiles < summary.tiles_total == summary_doc["tiles"]["grid"]
    assert cv2.imread(str(out / "tissue.png"), cv2.IMREAD_GRAYSCALE).max() == 255
    qc = cv2.imread(str(out / "qc.png"))
    assert qc.shape[:2] == (H, W)  # small slide: the thumbnail is level 0, outlines drawn on it
    assert not (out / ".partial").exists()


def test_a_slide_read_at_a_coarser_model_resolution_maps_back_to_level_0(slide_data, tmp_path):
    settings = SlideSettings(workers=0, **dict(FAST, target_mpp=0.5, tile=192, overlap=48))
    summary = infer_slide(slide_data["paths"]["aperio"], ColourCodedPredictor(), tmp_path / "o",
                          settings)
    truth = _truth(slide_data["labels"])
    table = _table(tmp_path / "o")
    assert summary.nuclei == len(truth)  # every nucleus keeps pure interior pixels at 0.5 um/px
    for cx, cy in zip(table["centroid_x"], table["centroid_y"]):
        k = int(slide_data["labels"][int(cy), int(cx)])
        assert abs(cx - truth[k][1]) < 1.5 and abs(cy - truth[k][2]) < 1.5
    view = json.loads((tmp_path / "o" / "summary.json").read_text())["view"]
    assert view["mpp"] == 0.5 and view["scale"] == [2.0, 2.0] and view["resampling"] == "area"


def test_outputs_are_in_qupath_frame_the_scanned_area_origin_subtracted(slide_data, monkeypatch):
    """MRXS / SCN record the scanned area (openslide.bounds-*); QuPath's OpenSlide server shows
    level-0 minus the bounds origin, and so do the outputs ('slide' keeps OpenSlide's frame)."""
    from nucleus_seg.inference.streamed_outputs import OutputFrame
    from nucleus_seg.slide import ResampledView, open_slide

    reader = open_slide(slide_data["paths"]["aperio"])
    monkeypatch.setattr(reader, "bounds", (100, 60, W - 100, H - 60), raising=False)
    monkeypatch.setattr(reader, "qupath_origin", (100, 60), raising=False)
    view = ResampledView(reader, 0.5)
    qupath, slide = OutputFrame.of_view(view, "qupath"), OutputFrame.of_view(view, "slide")
    model_xy = np.array([10.0, 20.0])
    level0 = view.to_slide(model_xy)
    assert tuple(level0) == (120.0, 100.0)
    assert tuple(model_xy * qupath.scale + qupath.offset) == (20.0, 40.0) == tuple(view.to_qupath(model_xy))
    assert tuple(model_xy * slide.scale + slide.offset) == (120.0, 100.0)
    reader.close()


@pytest.mark.parametrize("kind,vendor,origin", [("scn", "leica", SCN_OFFSET),
                                                 ("mrxs", "mirax", MRXS_ORIGIN),
                                                 ("dcm", "dicom", (0, 0))], ids=["scn", "mrxs", "dcm"])
def test_vendor_slide_nuclei_land_where_qupath_shows_them_the_bounds_origin_subtracted(
        slide_data, tmp_path, kind, vendor, origin):
    """Real vendor files with bounds: OpenSlide reports the SCN's collection (the MIRAX's camera
    grid) as level 0 and the main image (the scanned camera positions) at openslide.bounds-x/y;
    QuPath's OpenSlide server crops to the bounds, so its pixel (x, y) is the slide image's pixel
    (x, y): the painted discs' own coordinates. A DICOM WSI (given as its folder) has no bounds:
    both frames are the slide image's pixels."""
    ox, oy = origin
    path = slide_data["paths"][kind]
    truth = _truth(slide_data["labels"])  # in the slide image's pixels = QuPath's frame
    frames = {}
    for frame, workers in (("qupath", 1), ("slide", 0)):
        out = tmp_path / frame
        summary = infer_slide(path, ColourCodedPredictor(), out,
                              SlideSettings(workers=workers, frame=frame, **FAST))
        frames[frame] = _table(out)
        assert summary.nuclei == len(truth) == len(frames[frame]["id"])
        doc = json.loads((out / "summary.json").read_text())
        assert doc["view"]["format"] == vendor and doc["view"]["offset"] == [ox, oy]
        assert doc["view"]["bounds"] == [ox, oy, W, H] and doc["view"]["mpp_source"] != "--mpp"
        assert doc["coordinates"]["origin_level0"] == ([ox, oy] if frame == "qupath" else [0, 0])
        x, y, w, h = TISSUE
        assert doc["tissue_area_mm2"] == pytest.approx(w * h * 0.0625e-6, rel=0.15)
    qupath, slide = frames["qupath"], frames["slide"]
    found = set()
    for area, cx, cy in zip(qupath["area_px"], qupath["centroid_x"], qupath["centroid_y"]):
        k = int(slide_data["labels"][int(cy), int(cx)])
        assert k and k not in found
        found.add(k)
        assert area == truth[k][0] and cx == pytest.approx(truth[k][1]) and cy == pytest.approx(truth[k][2])
    # OpenSlide's frame ('slide') is the same nuclei, shifted by the bounds origin
    assert slide["centroid_x"] == pytest.approx([x + ox for x in qupath["centroid_x"]])
    assert slide["centroid_y"] == pytest.approx([y + oy for y in qupath["centroid_y"]])
    # the GeoJSON QuPath imports: outlines around the discs in the slide image's pixels
    doc = json.loads((tmp_path / "qupath" / "nuclei.geojson").read_text())
    for feature in doc["features"][:50]:
        centroid = shapely.geometry.shape(feature["geometry"]).centroid
        k = int(slide_data["labels"][int(centroid.y), int(centroid.x)])
        assert abs(centroid.x - truth[k][1]) < 0.5 and abs(centroid.y - truth[k][2]) < 0.5


def test_results_do_not_depend_on_reader_processes_or_batch_size_and_gzip_is_the_same_text(
        slide_data, tmp_path):
    path = slide_data["paths"]["generic"]
    a = infer_slide(path, ColourCodedPredictor(), tmp_path / "a",
                    SlideSettings(workers=0, **dict(FAST, batch_size=1)))
    b = infer_slide(path, ColourCodedPredictor(), tmp_path / "b",
                    SlideSettings(workers=2, gzip=True, **dict(FAST, batch_size=4)))
    assert a.nuclei == b.nuclei
    assert (tmp_path / "a" / "nuclei.parquet").read_bytes() == (tmp_path / "b" / "nuclei.parquet").read_bytes()
    assert (tmp_path / "a" / "nuclei.geojson").read_bytes() == \
        gzip.decompress((tmp_path / "b" / "nuclei.geojson.gz").read_bytes())


def test_parquet_row_groups_are_bounded_and_hold_the_same_table(slide_data, tmp_path, monkeypatch):
    """Records wait in memory for at most one row group, whatever a region holds: with row groups
    of 7 nuclei the table (and the GeoJSON) is the one written with the default size."""
    from nucleus_seg.inference import streamed_outputs

    path = slide_data["paths"]["generic"]
    infer_slide(path, ColourCodedPredictor(), tmp_path / "a", SlideSettings(workers=0, **FAST))
    monkeypatch.setattr(streamed_outputs, "ROW_GROUP", 7)
    infer_slide(path, ColourCodedPredictor(), tmp_path / "b", SlideSettings(workers=0, **FAST))
    small = pq.ParquetFile(tmp_path / "b" / "nuclei.parquet")
    assert small.metadata.num_rows > 7 * 3
    assert max(small.metadata.row_group(i).num_rows for i in range(small.num_row_groups)) <= 7
    assert _table(tmp_path / "a") == _table(tmp_path / "b")
    assert (tmp_path / "a" / "nuclei.geojson").read_bytes() == \
        (tmp_path / "b" / "nuclei.geojson").read_bytes()


RESUMABLE = SlideSettings(tile=256, overlap=64, target_mpp=0.25, batch_size=2, workers=2,
                          progress=False)


def _killed_run(slide, out, kill_after, children_file):
    """Run infer_slide in a subprocess whose predictor SIGKILLs it after ``kill_after`` tiles,
    having written its child processes' pids to ``children_file``."""
    code = (f"import sys; sys.path.insert(0, {str(TESTS.parent)!r})\n"
            "from tests.standins import ColourCodedPredictor\n"
            "from nucleus_seg.slide_inference import SlideSettings, infer_slide\n"
            f"infer_slide({str(slide)!r}, ColourCodedPredictor(), {str(out)!r}, "
            f"SlideSettings(**{RESUMABLE.__dict__!r}))\n")
    env = dict(os.environ, **{KILL_ENV: str(kill_after), CHILDREN_ENV: str(children_file)})
    # no pipes: an orphaned reader process holding them would keep this call waiting
    return subprocess.run([sys.executable, "-c", code], env=env, timeout=300,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def _running(pids):
    import psutil

    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.NoSuchProcess:
            pass
    return running


@pytest.fixture(scope="module")
def killed(slide_data, tmp_path_factory):
    """A run killed with SIGKILL after 9 tiles: its output folder (a copy per test), the pids of
    its reader processes and those of them still running 5 s after the kill."""
    folder = tmp_path_factory.mktemp("killed")
    out, children = folder / "o", folder / "children.txt"
    assert _killed_run(slide_data["paths"]["aperio"], out, 9, children) == -9
    readers = [int(pid) for pid in children.read_text().split()]
    deadline = time.monotonic() + 5.0
    while _running(readers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = _running(readers)
    for pid in survivors:  # do not leave them behind when the test fails
        os.kill(pid, signal.SIGKILL)
    return SimpleNamespace(out=out, readers=readers, survivors=survivors)


def test_reader_processes_die_with_a_run_killed_by_sigkill(killed):
    assert len(killed.readers) == RESUMABLE.workers
    assert killed.survivors == []


def test_a_run_killed_mid_slide_resumes_and_writes_the_same_files(slide_data, killed, tmp_path):
    slide = slide_data["paths"]["aperio"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    shutil.copytree(killed.out, resumed)
    infer_slide(slide, ColourCodedPredictor(), whole, RESUMABLE)
    partial = resumed / ".partial"
    journal = json.loads((partial / "journal.json").read_text())
    assert not (resumed / "summary.json").exists() and journal["regions_done"] >= 1
    summary = infer_slide(slide, ColourCodedPredictor(), resumed, RESUMABLE)
    assert summary.resumed_at_row == journal["regions_done"]
    for name in ("nuclei.geojson", "nuclei.parquet", "qc.png", "tissue.png"):
        assert (whole / name).read_bytes() == (resumed / name).read_bytes(), name
    a, b = (json.loads((d / "summary.json").read_text()) for d in (whole, resumed))
    runs = b.pop("runs")
    for doc in (a, b):  # timings and the run history are the only fields that differ
        doc.pop("seconds")
    a.pop("runs")
    assert a == b
    # the killed run had predicted 9 tiles: at most one region (one tile row) is predicted again
    assert len(runs) == 2 and runs[1]["first_row"] == journal["regions_done"] >= 1
    assert 9 - runs[0]["tiles"] <= a["tiles"]["columns"]
    assert runs[0]["tiles"] + runs[1]["tiles"] == a["tiles"]["predicted"]
    assert not partial.exists()
    # finished: another run does nothing
    before = {p: p.stat().st_mtime_ns for p in resumed.rglob("*")}
    assert infer_slide(slide, ColourCodedPredictor(), resumed, RESUMABLE).skipped
    assert {p: p.stat().st_mtime_ns for p in resumed.rglob("*")} == before


def test_a_partial_run_with_other_settings_is_not_mixed_in(slide_data, killed, tmp_path):
    slide = slide_data["paths"]["aperio"]
    out = tmp_path / "o"
    shutil.copytree(killed.out, out)
    other = SlideSettings(workers=0, **dict(FAST, overlap=48))
    with pytest.raises(InputError, match="unfinished run made with other settings"):
        infer_slide(slide, ColourCodedPredictor(), out, other)
    other.overwrite = True
    summary = infer_slide(slide, ColourCodedPredictor(), out, other)
    assert summary.resumed_at_row is None and summary.nuclei == len(slide_data["discs"])


def test_bad_slides_are_one_line_errors_and_the_others_go_on(slide_data, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    image = slide_data["image"]
    good = write_generic_tiff(folder / "good.tif", image, mpp=0.25)
    truncated = write_truncated(slide_data["paths"]["aperio"], folder / "cut.svs", keep=0.5)
    no_mpp = write_generic_tiff(folder / "nompp.tif", image, mpp=None)
    blank = write_aperio(folder / "blank.svs", np.full_like(image, 255), mpp=0.25)
    files = [truncated, no_mpp, blank, good]
    report = infer_inputs(files, ColourCodedPredictor(), tmp_path / "out",
                          SlideSettings(workers=1, **FAST))
    assert [Path(s.slide).name for s in report.done] == ["good.tif"]
    problems = dict(report.failed)
    assert set(problems) == {str(truncated), str(no_mpp), str(blank)}
    assert "no microns-per-pixel" in problems[str(no_mpp)] and "pass --mpp" in problems[str(no_mpp)]
    assert "no tissue" in problems[str(blank)]
    assert all("\n" not in p for p in problems.values())
    # --mpp makes the slide without metadata usable, recorded as such
    summary = infer_slide(no_mpp, ColourCodedPredictor(), tmp_path / "nompp",
                          SlideSettings(workers=0, mpp=0.25, **FAST))
    assert summary.nuclei == len(slide_data["discs"])
    assert json.loads((tmp_path / "nompp" / "summary.json").read_text())["view"]["mpp_source"] == "--mpp"


def test_a_tissue_region_limits_the_tiles_and_a_slide_spec_reopens_the_slide(slide_data, tmp_path):
    from nucleus_seg.slide import open_slide

    region = np.zeros((H // 8, W // 8), np.uint8)
    region[:, :W // 16] = 255  # the left half of the slide, as a mask image of any size
    cv2.imwrite(str(tmp_path / "left.png"), region)
    with open_slide(slide_data["paths"]["ome"]) as reader:
        spec = reader.spec()
    summary = infer_slide(spec, ColourCodedPredictor(), tmp_path / "o",
                          SlideSettings(workers=1, tissue=str(tmp_path / "left.png"), **FAST))
    table = _table(tmp_path / "o")
    truth = _truth(slide_data["labels"])
    left = {k for k, (_, cx, _) in truth.items() if cx < W / 2 - 8}
    found = {int(slide_data["labels"][int(y), int(x)])
             for x, y in zip(table["centroid_x"], table["centroid_y"])}
    assert left <= found and max(table["centroid_x"]) < W / 2 + FAST["tile"]
    assert summary.nuclei < len(truth)
    assert cv2.imread(str(tmp_path / "o" / "tissue.png"), cv2.IMREAD_GRAYSCALE).mean() > 100
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["tissue"]["source"].startswith("mask:")
