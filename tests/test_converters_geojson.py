"""QuPath GeoJSON -> COCO: the project's own export reads back pixel-exactly (bundled and shared
tiles), QuPath's file forms, tiles of an image or slide region with objects clipped per tile, and
the one-line error for each malformed input."""
import json
import shutil

import numpy as np
import pytest

from nucleus_seg.converters.geojson import GeojsonOptions, tile_windows
from nucleus_seg.converters.pipeline import geojson2coco
from nucleus_seg.errors import InputError
from nucleus_seg.geometry import MaskCrop, geojson_geometry, paste_crop, rasterise_geojson
from nucleus_seg.image_io import decode_image_file
from nucleus_seg.inference.export import to_geojson
from nucleus_seg.inference.instances import Instances

from formats import decoded, dsb_tiles, label_map, same_pixels
from slides import write_aperio

CLASSES = ["Tumor", "Immune"]


def exported(tile, classes=CLASSES):
    """The tile's nuclei as the project's GeoJSON export writes them (alternating classes)."""
    labels = np.arange(len(tile.crops)) % len(classes)
    instances = Instances(np.ones(len(tile.crops)), labels, tile.crops, height=tile.height, width=tile.width)
    return to_geojson(instances, classes)


def export_folder(tiles, root):
    images, exports = root / "images", root / "geojson"
    images.mkdir(parents=True)
    exports.mkdir()
    for tile in tiles:
        shutil.copy(tile.image_path, images / tile.image_path.name)
        (exports / f"{tile.name}.geojson").write_text(json.dumps(exported(tile)))
    return images, exports


def round_trip(tiles, tmp_path, validate=False):
    """(exact, total): instances whose pixels and class come back unchanged through export -> import."""
    images, exports = export_folder(tiles, tmp_path)
    _, report, coco = geojson2coco(images, exports, tmp_path / "coco", GeojsonOptions(classes=CLASSES),
                                   validate=validate)   # --validate: shapely's point-in-polygon
    assert report.images == len(tiles)
    exact = 0
    for image, tile in zip(coco["images"], tiles):
        assert image["file_name"] == tile.image_path.name
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        assert len(anns) == len(tile.crops)
        for k, (crop, back, ann) in enumerate(zip(tile.crops, decoded(coco, image["id"]), anns)):
            exact += same_pixels(crop, back) and ann["category_id"] == k % 2 + 1
    return exact, sum(len(t.crops) for t in tiles)


def test_export_round_trip_is_exact_on_bundled_tiles(sample_root, tmp_path):
    exact, total = round_trip(dsb_tiles(sample_root / "train"), tmp_path, validate=True)
    assert (exact, total) == (730, 730)


def test_export_round_trip_is_exact_on_shared_tiles(dsb_root, tmp_path):
    exact, total = round_trip(dsb_tiles(dsb_root / "train"), tmp_path)
    assert (exact, total) == (2855, 2855)


def test_rasteriser_agrees_with_shapely_on_arbitrary_polygons():
    """Pixel-centre sampling checked independently: shapely's point-in-polygon on the centres, for
    star polygons with holes at non-integer coordinates (no centre lies on an edge)."""
    import shapely

    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(5, 14))
        angles = (np.arange(n) + rng.uniform(0, 0.8, n)) * 2 * np.pi / n  # gaps < pi: centre inside
        radii = rng.uniform(6, 15, n)
        cx, cy = rng.uniform(16, 30, 2)
        outer = np.c_[cx + radii * np.cos(angles), cy + radii * np.sin(angles)] + 0.013
        hole = np.c_[cx + 2.1 * np.cos(angles[::-1]), cy + 2.1 * np.sin(angles[::-1])] + 0.007
        geometry = {"type": "Polygon", "coordinates": [np.r_[outer, outer[:1]].tolist(),
                                                       np.r_[hole, hole[:1]].tolist()]}
        assert shapely.geometry.shape(geometry).is_valid
        crop = rasterise_geojson(geometry)
        ys, xs = np.mgrid[0:48, 0:48] + 0.5
        inside = shapely.contains_xy(shapely.geometry.shape(geometry), xs, ys)
        mine = np.zeros((48, 48), bool)
        paste_crop(mine, crop, True)
        assert (mine == inside).all()


def test_qupath_forms_multipolygon_holes_cells_and_classes(tmp_path):
    image = tmp_path / "img.png"
    import cv2
    cv2.imwrite(str(image), np.zeros((40, 50, 3), np.uint8))
    ring = np.zeros((12, 12), bool)
    ring[2:10, 2:10] = True
    ring[4:7, 4:7] = False                              # a hole
    two_parts = np.zeros((5, 9), bool)
    two_parts[:, :3] = two_parts[:, 6:] = True         # one object in two pieces
    features = [
        {"type": "Feature", "geometry": geojson_geometry(MaskCrop(1, 1, ring)),
         "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "colorRGB": -1}}},
        {"type": "Feature", "id": "PathDetectionObject",        # QuPath v0.2
         "geometry": geojson_geometry(MaskCrop(30, 20, two_parts)),
         "properties": {"classification": {"names": ["Tumor", "Positive"]}}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[20, 0], [30, 0], [30, 10],
                                                                             [20, 10], [20, 0]]]},
         "nucleusGeometry": geojson_geometry(MaskCrop(22, 2, np.ones((3, 4), bool))),
         "properties": {"objectType": "cell", "classification": "Immune"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5]},
         "properties": {"objectType": "annotation"}},
        {"type": "Feature", "geometry": geojson_geometry(MaskCrop(40, 2, np.ones((2, 2), bool))),
         "properties": {"objectType": "annotation"}},     # unclassified
    ]
    export = tmp_path / "img.geojson"
    export.write_text(json.dumps(features))             # a bare list, as QuPath scripts write
    _, report, coco = geojson2coco(image, export, tmp_path / "out")
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert sorted(names.values()) == ["Immune", "Tumor", "Tumor: Positive", "nucleus"]
    got = [(names[a["category_id"]], a["area"]) for a in coco["annotations"]]
    assert got == [("Tumor", 64 - 9), ("Tumor: Positive", 30), ("Immune", 12), ("nucleus", 4)]
    multi = decoded(coco, 1)[1]
    assert same_pixels(multi, MaskCrop(30, 20, two_parts))
    assert report.skipped == {"Point geometry, not a polygon": 1}
    # the cell's boundary instead of its nucleus, unclassified skipped
    _, _, coco = geojson2coco(image, export, tmp_path / "out2",
                              GeojsonOptions(cell_boundary=True, unclassified=None))
    assert [a["area"] for a in coco["annotations"]] == [55, 30, 100]


def test_slide_region_tiles_with_objects_clipped(sample_root, tmp_path):
    """Two sample tiles side by side in a pyramidal slide; its export cut into 96 px tiles of a
    region: each tile's pixels and instances are exactly the slide's, clipped."""
    tiles = dsb_tiles(sample_root / "train", limit=2)
    height, width = tiles[0].height, sum(t.width for t in tiles)
    canvas = np.full((height + 64, width + 64, 3), 255, np.uint8)
    truth = np.zeros(canvas.shape[:2], np.int32)
    features, x = [], 32
    for tile in tiles:
        canvas[32:32 + height, x:x + tile.width] = decode_image_file(tile.image_path)[..., 2::-1][..., :3]
        for crop in tile.crops:
            shifted = crop.shifted(x, 32)
            paste_crop(truth, shifted, len(features) + 1)
            features.append({"type": "Feature", "geometry": geojson_geometry(shifted),
                             "properties": {"objectType": "detection", "classification": {"name": "Nucleus"}}})
        x += tile.width
    slide = write_aperio(tmp_path / "slide.svs", canvas, factors=(4,), tile=128)
    export = tmp_path / "slide.geojson"
    export.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    region = (40, 20, 500, 230)
    _, report, coco = geojson2coco(slide, export, tmp_path / "out", region=region, tile=96)
    windows = tile_windows((40, 20, 540, 250), 96)
    assert [(im["width"], im["height"]) for im in coco["images"]] == [(x1 - x0, y1 - y0) for x0, y0, x1, y1 in windows]
    assert report.clipped > 0
    for image, (x0, y0, x1, y1) in zip(coco["images"], windows):
        pixels = decode_image_file(tmp_path / "out" / "images" / image["file_name"])[..., ::-1]
        assert (pixels == canvas[y0:y1, x0:x1]).all()
        back = np.zeros((y1 - y0, x1 - x0), np.int32)
        crops = decoded(coco, image["id"])
        for k, crop in enumerate(crops):
            paste_crop(back, crop, k + 1)
        want = truth[y0:y1, x0:x1]
        # the same partition into instances: equal foreground, one-to-one ids
        assert ((back > 0) == (want > 0)).all()
        pairs = {(a, b) for a, b in zip(back[back > 0].tolist(), want[want > 0].tolist())}
        assert len(pairs) == len(crops) == len(np.unique(want[want > 0]))


def test_tiles_of_an_ordinary_image_cover_its_nuclei(sample_root, tmp_path):
    tile = dsb_tiles(sample_root / "train", limit=1)[0]
    export = tmp_path / "t.geojson"
    export.write_text(json.dumps(exported(tile)))
    _, _, coco = geojson2coco(tile.image_path, export, tmp_path / "out", tile=64)
    assert len(coco["images"]) == 5 * 4
    assert all(im["file_name"].startswith(tile.name + "_x") for im in coco["images"])
    # pixels of all tiles together are the tile's nuclei
    whole = np.zeros((tile.height, tile.width), bool)
    for image in coco["images"]:
        x0, y0 = (int(v[1:]) for v in image["file_name"][len(tile.name) + 1:-4].split("_"))
        for crop in decoded(coco, image["id"]):
            paste_crop(whole, crop.shifted(x0, y0), True)
    assert (whole == (label_map(tile, range(1, len(tile.crops) + 1)) > 0)).all()
    # a region in the background corner: with --skip-empty only tiles holding nuclei are kept
    with_nuclei = {im["id"] for im in coco["images"]} & {a["image_id"] for a in coco["annotations"]}
    _, _, kept = geojson2coco(tile.image_path, export, tmp_path / "skip", tile=64, skip_empty=True)
    assert len(kept["images"]) == len(with_nuclei)


BAD = {
    "self-intersecting": ({"type": "Polygon", "coordinates": [[[1, 1], [9, 9], [9, 1], [1, 9], [1, 1]]]},
                          "object 0: invalid Polygon: Self-intersection[5 5]"),
    "outside": ({"type": "Polygon", "coordinates": [[[10, 10], [60, 10], [60, 20], [10, 20], [10, 10]]]},
                "object 0: coordinates reach (10, 10) .. (60, 20), outside the 50x40 image"),
    "negative": ({"type": "Polygon", "coordinates": [[[-1, 0], [5, 0], [5, 5], [-1, 0]]]},
                 "object 0: coordinates reach (-1, 0) .. (5, 5), outside the 50x40 image"),
    "malformed": ({"type": "Polygon", "coordinates": [[1, 2, 3]]},
                  "object 0: malformed Polygon coordinates (a ring is not a list of [x, y] points)"),
    "hole outside shell": ({"type": "Polygon", "coordinates": [
        [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], [[20, 20], [30, 20], [30, 30], [20, 20]]]},
        "object 0: invalid Polygon: Hole lies outside shell[20 20]"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_geojson_is_one_line_error(case, tmp_path):
    import cv2
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.zeros((40, 50, 3), np.uint8))
    geometry, message = BAD[case]
    export = tmp_path / "img.geojson"
    export.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": geometry, "properties": {"objectType": "annotation"}}]}))
    with pytest.raises(InputError) as err:
        geojson2coco(image, export, tmp_path / "out")
    assert str(err.value) == f"{export}: {message}"
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]   # nothing written


def test_cli_region_outside_and_not_json(repo_root, sample_root, tmp_path):
    from test_converters_cli import run

    tile = dsb_tiles(sample_root / "train", limit=1)[0]
    export = tmp_path / "t.geojson"
    export.write_text(json.dumps(exported(tile)))
    bad = run(repo_root, "geojson2coco.py", tile.image_path, export, "--out-dir", tmp_path / "o",
              "--region", "300", "0", "64", "64")
    assert bad.returncode == 2
    assert bad.stderr == f"error: {export}: region x=300 y=0 64x64 is not inside the 320x256 image\n"
    broken = tmp_path / "b.geojson"
    broken.write_text("{")
    bad = run(repo_root, "geojson2coco.py", tile.image_path, broken, "--out-dir", tmp_path / "o")
    assert bad.returncode == 2 and bad.stderr.startswith(f"error: {broken}: not valid JSON")
    ok = run(repo_root, "geojson2coco.py", tile.image_path, export, "--out-dir", tmp_path / "o",
             "--classes", *CLASSES, "--validate", "--val-ratio", "0.5", "--tile", "128")
    assert ok.returncode == 0, ok.stderr
    assert "instances clipped at tile edges" in ok.stdout
    assert (tmp_path / "o" / "instance_train.json").is_file() and (tmp_path / "o" / "instance_val.json").is_file()


def test_qupath_class_and_type_forms():
    from nucleus_seg.qupath import class_name, object_type

    def feature(props, **extra):
        return {"type": "Feature", "geometry": None, "properties": props, **extra}

    assert class_name(feature({"classification": {"name": "Positive",
                                                  "parentClass": {"name": "Tumor"}}})) == "Tumor: Positive"
    assert class_name(feature({"classification": {"names": ["A", "B"], "color": [1, 2, 3]}})) == "A: B"
    assert class_name(feature({"classification": ""})) is None and class_name(feature({})) is None
    assert object_type(feature({"object_type": "detection"})) == "detection"
    assert object_type(feature({}, id="PathCellObject")) == "cell"
    assert object_type(feature({})) == "annotation"       # QuPath's own default on import


def test_validation_catches_an_annotation_that_differs_from_its_polygon(sample_root, tmp_path):
    from nucleus_seg.converters.geojson import GeojsonSource, convert_geojson, geojson_sources
    from nucleus_seg.converters.validate import validate_coco
    from nucleus_seg.geometry import crop_to_rle

    tile = dsb_tiles(sample_root / "train", limit=1)[0]
    export = tmp_path / "t.geojson"
    export.write_text(json.dumps(exported(tile)))
    coco, _, placements = convert_geojson([GeojsonSource(tile.image_path, export)], tile.image_path.parent,
                                          tmp_path / "tiles", GeojsonOptions(classes=CLASSES))
    read = geojson_sources(placements, coco, tile.image_path.parent)
    assert validate_coco(coco, tmp_path / "c.json", read) == []
    crop = decoded(coco, 1)[0]
    mask = crop.mask.copy()
    mask[mask.nonzero()[0][0], mask.nonzero()[1][0]] = False      # one pixel less
    changed = MaskCrop.from_mask(mask, crop.x0, crop.y0)
    coco["annotations"][0].update(segmentation=crop_to_rle(changed, tile.height, tile.width),
                                  area=changed.area, bbox=list(changed.xywh))   # self-consistent
    problems = [(p.path, p.problem) for p in validate_coco(coco, tmp_path / "c.json", read)]
    assert problems == [
        (str(tmp_path / "c.json"), f"annotation 1 (image {tile.image_path.name}): RLE matches no source mask pixel-exactly"),
        (str(export), f"object 0: no annotation in {tmp_path / 'c.json'} reproduces this mask")]


def test_large_region_annotation_is_rasterised_per_tile_only():
    from nucleus_seg.converters.geojson import QuPathObject, objects_in_tiles

    side = 200_000.0                      # a slide-sized square: as one array it would be 40 GB
    square = np.array([[0, 0], [side, 0], [side, side], [0, side], [0, 0]])
    obj = QuPathObject(0, "Region", [square], (0.0, 0.0, side, side), {})
    windows = tile_windows((1000, 2000, 1256, 2200), 128)
    per_tile, clipped, empty = objects_in_tiles([obj], windows)
    assert [[(n, c.x0, c.y0, c.mask.shape, c.area) for n, c in t] for t in per_tile] == [
        [("Region", 0, 0, (128, 128), 128 * 128)], [("Region", 0, 0, (128, 128), 128 * 128)],
        [("Region", 0, 0, (72, 128), 72 * 128)], [("Region", 0, 0, (72, 128), 72 * 128)]]
    assert (clipped, empty) == (4, 0)


def test_failed_validation_leaves_no_tiles_and_existing_ones_untouched(tmp_path):
    import cv2
    from nucleus_seg.validation import ProblemsError
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8))
    ring = np.ones((10, 10), bool)
    ring[3:7, 3:7] = False                              # COCO polygons cannot hold this hole
    export = tmp_path / "img.geojson"
    export.write_text(json.dumps([{"type": "Feature", "geometry": geojson_geometry(MaskCrop(5, 5, ring)),
                                   "properties": {"objectType": "detection"}}]))
    out = tmp_path / "new" / "out"
    with pytest.raises(ProblemsError, match="validation failed"):
        geojson2coco(image, export, out, tile=32, segmentation="polygon", validate=True)
    assert not (tmp_path / "new").exists()              # no tiles, no JSON, not even the folders

    out = tmp_path / "out"
    geojson2coco(image, export, out, tile=32, validate=True)     # RLE keeps the hole: passes
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert len(before) == 5                               # 4 tiles + instance_all.json
    cv2.imwrite(str(image), np.zeros((48, 64, 3), np.uint8))      # a rerun would write other tiles
    with pytest.raises(ProblemsError):
        geojson2coco(image, export, out, tile=32, segmentation="polygon", validate=True, overwrite=True)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
