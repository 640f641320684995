"""QuPath GeoJSON exports -> COCO instances of the matching images or tiles.

A pathologist's QuPath objects (annotations, detections, cells; exported with File > Export objects
as GeoJSON or a script) become training data: each Polygon / MultiPolygon object is one instance
(a MultiPolygon's parts and holes stay one object with its holes), its classification name its
class. Coordinates are QuPath's: full-resolution image pixels, origin at the top-left corner of the
top-left pixel (for OpenSlide formats with bounds, the corner of the bounds).

Rasterising samples pixel centres (:func:`nucleus_seg.geometry.rasterise_rings`), the inverse of the
project's own GeoJSON export, which traces pixel edges: export -> import gives back exactly the
exported pixels. Objects are checked first: a polygon shapely finds invalid (self-intersecting,
ring not closed, ...) or with a point outside the image is an error naming the file and the object.

Two targets: a whole image (COCO refers to the image file itself), or a region of an image or
slide cut into tiles (written as PNGs; each object clipped to each tile it reaches).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..categories import NUCLEUS_CLASSES, coco_categories
from ..errors import InputError
from ..fileio import StagedOutputs, atomic_write_bytes, check_writable
from ..geometry import MaskCrop, geojson_rings, rasterise_rings
from ..image_io import is_image_file
from ..qupath import class_name, object_type, properties, read_geojson_features
from .annotations import instance_annotation
from .dsb import relative_file_name

GEOJSON_EXTENSIONS = (".geojson", ".json")
DEFAULT_OBJECT_TYPES = ("annotation", "detection", "cell")
DEFAULT_SLIDE_TILE = 512


@dataclass
class GeojsonOptions:
    """Which objects become instances and how they are named.

    ``object_types``: QuPath object types kept (others are counted in a note). ``cell_boundary``:
    a cell's whole boundary instead of its nucleus (``nucleusGeometry``, the default where present).
    ``classes``: the categories in this order; objects of other classes are skipped (counted);
    None: every class found, sorted by name. ``unclassified``: the class of unclassified objects
    (None: skip them). ``single_class``: every kept object is a "nucleus". ``min_area``: instances
    (after clipping to a tile) with fewer pixels are dropped (counted)."""

    object_types: Sequence[str] = DEFAULT_OBJECT_TYPES
    cell_boundary: bool = False
    classes: Optional[Sequence[str]] = None
    unclassified: Optional[str] = "nucleus"
    single_class: bool = False
    min_area: int = 0


@dataclass
class QuPathObject:
    """One polygon object of an export: its index in the file, class name and rings."""
    index: int
    name: str
    rings: List[np.ndarray]
    bounds: Tuple[float, float, float, float]  # x0, y0, x1, y1
    geometry: dict


@dataclass
class GeojsonReport:
    images: int = 0
    annotations: int = 0
    objects: int = 0                    # polygon objects kept from the files
    clipped: int = 0                    # instances cut by a tile edge (kept as the part inside)
    small: int = 0                      # instances under min_area, dropped
    empty: int = 0                      # objects covering no pixel centre
    skipped: Dict[str, int] = field(default_factory=dict)   # reason -> count
    notes: List[str] = field(default_factory=list)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def summary(self) -> str:
        text = (f"{self.images} images, {self.annotations} annotations from {self.objects} polygon "
                f"objects")
        if self.clipped:
            text += f"; {self.clipped} instances clipped at tile edges"
        if self.small:
            text += f"; {self.small} under the minimum area dropped"
        if self.empty:
            text += f"; {self.empty} objects covering no pixel centre"
        for reason, n in sorted(self.skipped.items()):
            text += f"; {n} skipped ({reason})"
        return text


# ----------------------------------------------------------------------------------- reading
def _object_geometry(feature: dict, options: GeojsonOptions) -> Optional[dict]:
    if object_type(feature) == "cell" and not options.cell_boundary:
        nucleus = feature.get("nucleusGeometry") or properties(feature).get("nucleusGeometry")
        if isinstance(nucleus, dict):
            return nucleus
    geometry = feature.get("geometry")
    return geometry if isinstance(geometry, dict) else None


def _object_name(feature: dict, options: GeojsonOptions) -> Optional[str]:
    """The class an object gets, or None when it is skipped (unclassified without a default)."""
    if options.single_class:
        return NUCLEUS_CLASSES[0]
    name = class_name(feature)
    return name if name is not None else options.unclassified


def check_polygon(path, index: int, rings: List[np.ndarray], geometry: dict,
                  width: int, height: int) -> Tuple[float, float, float, float]:
    """Bounds of a valid polygon object lying inside a ``width`` x ``height`` image; InputError
    naming the file and the object otherwise (shapely's explanation for invalid ones)."""
    from shapely.geometry import shape
    from shapely.validation import explain_validity

    points = np.concatenate(rings)
    if not np.isfinite(points).all():
        raise InputError(path, f"object {index}: coordinates are not all finite numbers")
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise InputError(path, f"object {index}: coordinates reach ({x0:g}, {y0:g}) .. ({x1:g}, "
                         f"{y1:g}), outside the {width}x{height} image")
    try:
        polygon = shape(geometry)
    except Exception as exc:  # shapely raises several types for malformed rings
        raise InputError(path, f"object {index}: not a valid {geometry.get('type')} "
                         f"({' '.join(str(exc).split())})") from None
    if not polygon.is_valid:
        raise InputError(path, f"object {index}: invalid {geometry.get('type')}: "
                         f"{explain_validity(polygon)}")
    return float(x0), float(y0), float(x1), float(y1)


def read_qupath_objects(path, width: int, height: int, options: GeojsonOptions,
                        report: Optional[GeojsonReport] = None) -> List[QuPathObject]:
    """The polygon objects of one QuPath export that ``options`` keeps, checked against a
    ``width`` x ``height`` image (see :func:`check_polygon`)."""
    report = report if report is not None else GeojsonReport()
    objects = []
    for index, feature in enumerate(read_geojson_features(path)):
        kind = object_type(feature)
        if kind not in options.object_types:
            report.skip(f"object type {kind}")
            continue
        geometry = _object_geometry(feature, options)
        if geometry is None or geometry.get("type") not in ("Polygon", "MultiPolygon"):
            report.skip(f"{geometry.get('type') if geometry else 'no'} geometry, not a polygon")
            continue
        name = _object_name(feature, options)
        if name is None:
            report.skip("unclassified")
            continue
        if options.classes is not None and name not in options.classes:
            report.skip(f"class {name!r} not in --classes")
            continue
        try:
            rings = geojson_rings(geometry)
        except ValueError as exc:
            raise InputError(path, f"object {index}: {exc}") from None
        if not rings:
            report.skip("polygon without coordinates")
            continue
        bounds = check_polygon(path, index, rings, geometry, width, height)
        objects.append(QuPathObject(index, name, rings, bounds, geometry))
    report.objects += len(objects)
    return objects


# ------------------------------------------------------------------------------------ tiles
Window = Tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels


def tile_windows(region: Window, tile: Optional[int]) -> List[Window]:
    """The tiles covering ``region`` row by row (the last row / column as large as what is left);
    the region itself when ``tile`` is None."""
    x0, y0, x1, y1 = region
    if tile is None:
        return [region]
    return [(x, y, min(x + tile, x1), min(y + tile, y1))
            for y in range(y0, y1, tile) for x in range(x0, x1, tile)]


def objects_in_tiles(objects: Sequence[QuPathObject], windows: Sequence[Window]
                     ) -> Tuple[List[List[Tuple[str, MaskCrop]]], int, int]:
    """(class name, crop in tile coordinates) of every object reaching each tile (a grid from
    :func:`tile_windows`), how many instances were cut by a tile edge, and how many objects inside
    the tiles cover no pixel centre at all.

    Each object is rasterised tile by tile, only in the tiles its bounds reach, so a large region
    annotation never becomes a slide-sized array."""
    from bisect import bisect_left, bisect_right

    per_tile: List[List[Tuple[str, MaskCrop]]] = [[] for _ in windows]
    index = {(w[0], w[1]): k for k, w in enumerate(windows)}
    xs, ys = sorted({w[0] for w in windows}), sorted({w[1] for w in windows})
    clipped = empty = 0
    for obj in objects:
        # the pixels whose centres the bounds can contain: columns [px0, px1), rows [py0, py1)
        px0, py0, px1, py1 = (int(np.ceil(v - 0.5)) for v in obj.bounds)
        found = False
        for ty in ys[max(bisect_right(ys, py0) - 1, 0):bisect_left(ys, py1)]:
            for tx in xs[max(bisect_right(xs, px0) - 1, 0):bisect_left(xs, px1)]:
                k = index.get((tx, ty))
                if k is None:
                    continue
                x0, y0, x1, y1 = windows[k]
                if px1 <= x0 or py1 <= y0 or px0 >= x1 or py0 >= y1:
                    continue
                part = rasterise_rings(obj.rings, windows[k])
                if part is None:
                    continue
                found = True
                if px0 < x0 or py0 < y0 or px1 > x1 or py1 > y1:
                    clipped += any(  # a pixel at the window's edge the object may continue past
                        edge for edge in (part.x0 == x0 and px0 < x0, part.y0 == y0 and py0 < y0,
                                          part.x1 == x1 and px1 > x1, part.y1 == y1 and py1 > y1))
                per_tile[k].append((obj.name, part.shifted(-x0, -y0)))
        if not found and windows and _inside(obj.bounds, windows):
            empty += 1
    return per_tile, clipped, empty


def _inside(bounds, windows: Sequence[Window]) -> bool:
    return (bounds[0] >= min(w[0] for w in windows) and bounds[1] >= min(w[1] for w in windows)
            and bounds[2] <= max(w[2] for w in windows) and bounds[3] <= max(w[3] for w in windows))


# ------------------------------------------------------------------------------------ sources
@dataclass
class GeojsonSource:
    """One image or slide and its QuPath export. ``region``: (x, y, w, h) in QuPath's frame, None
    for all of it; ``tile``: tile side (None: one image per region; slides default to
    :data:`DEFAULT_SLIDE_TILE`)."""
    image_path: Path
    geojson_path: Path
    region: Optional[Tuple[int, int, int, int]] = None
    tile: Optional[int] = None


def pair_geojson_files(images, geojsons, suffix: str = "") -> Tuple[List[GeojsonSource], List[str]]:
    """One image / slide file with one GeoJSON file, or a folder of images with a folder of
    exports paired by name (``<stem><suffix>.geojson|.json``)."""
    from .labels import pair_label_files

    images, geojsons = Path(images), Path(geojsons)
    if images.is_file() or geojsons.is_file():
        for path in (images, geojsons):
            if not path.is_file():
                raise InputError(path, "file not found (give an image and its GeoJSON file, or two "
                                 "folders)")
        return [GeojsonSource(images, geojsons)], []
    samples, notes = pair_label_files(images, geojsons, GEOJSON_EXTENSIONS, suffix)
    return [GeojsonSource(s.image_path, s.label_path) for s in samples], notes


def _frame(reader) -> Tuple[int, int, int, int]:
    """(origin x, origin y, width, height) of the frame QuPath shows, in level-0 pixels."""
    ox, oy = reader.qupath_origin
    if (ox, oy) != (0, 0):
        return ox, oy, reader.bounds[2], reader.bounds[3]
    return 0, 0, reader.dimensions[0], reader.dimensions[1]


def _check_region(path, region, width: int, height: int) -> Window:
    if region is None:
        return 0, 0, width, height
    x, y, w, h = (int(v) for v in region)
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise InputError(path, f"region x={x} y={y} {w}x{h} is not inside the {width}x{height} image")
    return x, y, x + w, y + h


def _write_png(path: Path, rgb: np.ndarray, overwrite: bool) -> None:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise InputError(path, "could not encode the tile as PNG")
    atomic_write_bytes(path, buf.tobytes(), overwrite)


def convert_geojson(sources: Sequence[GeojsonSource], image_root, tiles_dir, options: GeojsonOptions,
                    segmentation: str = "rle", cut_tiles: bool = False, skip_empty: bool = False,
                    overwrite: bool = False, staging: Optional[StagedOutputs] = None
                    ) -> Tuple[dict, GeojsonReport, Dict[int, tuple]]:
    """COCO dict of the images / tiles of ``sources`` with their QuPath objects, and the report.

    Without ``cut_tiles`` each source is an ordinary image referred to where it is (``file_name``
    relative to ``image_root``). With it, each source's region is cut into tiles written as
    ``<tiles_dir>/<stem>_x<X>_y<Y>.png`` (X, Y in QuPath's frame; ``file_name`` relative to
    ``image_root``). Every export is read and checked before any tile is written, so bad input
    leaves nothing behind. With ``staging`` (:class:`nucleus_seg.fileio.StagedOutputs`) the tiles
    are written into it and appear only when the caller's block ends (after validation, in
    ``geojson2coco``). ``skip_empty`` leaves out tiles without any instance. Also returns, per
    image id, (export path, its objects, the image's window) for :func:`geojson_sources`."""
    from ..slide import open_slide

    image_root, tiles_dir = Path(image_root), Path(tiles_dir)
    report = GeojsonReport()
    plans = []  # (source, frame origin, windows, instances per window)
    for source in sources:
        with open_slide(source.image_path, require_mpp=False) as reader:
            ox, oy, width, height = _frame(reader)
            if not cut_tiles and (reader.level_count > 1 or not is_image_file(source.image_path)):
                raise InputError(source.image_path, "is a slide, not an ordinary image: give --tile "
                                 "(and --region) to cut it into tiles")
        region = _check_region(source.geojson_path, source.region, width, height)
        objects = read_qupath_objects(source.geojson_path, width, height, options, report)
        tile = source.tile if cut_tiles else None
        windows = tile_windows(region, tile or (DEFAULT_SLIDE_TILE if cut_tiles else None))
        per_tile, clipped, empty = objects_in_tiles(objects, windows)
        report.clipped += clipped
        report.empty += empty
        kept_per_tile = []
        for instances in per_tile:
            kept = [(n, c) for n, c in instances if c.area >= options.min_area]
            report.small += len(instances) - len(kept)
            kept_per_tile.append(kept)
        plans.append((source, (ox, oy), windows, kept_per_tile, objects))
    tile_path = {}
    for source, _, windows, kept_per_tile, _ in plans:
        for (x0, y0, _, _), kept in zip(windows, kept_per_tile):
            if cut_tiles and (kept or not skip_empty):
                path = tiles_dir / f"{source.image_path.stem}_x{x0}_y{y0}.png"
                if path in tile_path.values():
                    raise InputError(source.image_path, f"a second source writes tile {path.name} "
                                     "(sources need distinct file names)")
                if staging is not None:
                    staging.path(path)  # claimed now, written into the staging folder
                tile_path[(id(source), x0, y0)] = check_writable(path, overwrite)
    images, pending, placements = [], [], {}
    for source, (ox, oy), windows, kept_per_tile, objects in plans:
        reader = open_slide(source.image_path, require_mpp=False) if cut_tiles else None
        try:
            for (x0, y0, x1, y1), kept in zip(windows, kept_per_tile):
                if skip_empty and not kept:
                    continue
                if cut_tiles:
                    image_path = tile_path[(id(source), x0, y0)]
                    _write_png(image_path if staging is None else staging.staged_path(image_path),
                               reader.read_region(x0 + ox, y0 + oy, 0, x1 - x0, y1 - y0), overwrite)
                else:
                    image_path = source.image_path
                image = {"id": len(images) + 1, "file_name": relative_file_name(image_path, image_root),
                         "height": y1 - y0, "width": x1 - x0}
                images.append(image)
                pending.append((image, kept))
                placements[image["id"]] = (source.geojson_path, objects, (x0, y0, x1, y1))
        finally:
            if reader is not None:
                reader.close()
    names = _category_names(pending, options)
    category_of = {n: i + 1 for i, n in enumerate(names)}
    annotations = []
    for image, instances in pending:
        for name, crop in instances:
            ann = instance_annotation(crop, image["height"], image["width"], segmentation)
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"],
                                "category_id": category_of[name], **ann})
    report.images, report.annotations = len(images), len(annotations)
    coco = {"images": images, "annotations": annotations, "categories": coco_categories(names)}
    return coco, report, placements


def geojson_sources(placements: Dict[int, tuple], coco: dict, image_root, min_area: int = 0):
    """Source instances for :func:`validate_coco`, found independently of the converter's
    rasteriser: shapely's point-in-polygon test on every pixel centre of each object's box (nudged
    right and down by far less than a pixel, which is the converter's rule for a centre exactly on
    an edge)."""
    import shapely
    from shapely.geometry import shape

    from .validate import SourceInstance, _check_image_file

    image_root = Path(image_root)
    category_of = {c["name"]: c["id"] for c in coco["categories"]}

    def read(image):
        _, problems = _check_image_file(image_root, image)
        if problems:
            return [], problems
        path, objects, (x0, y0, x1, y1) = placements[image["id"]]
        sources = []
        for obj in objects:
            bx0, by0, bx1, by1 = obj.bounds
            c0, r0 = max(x0, int(np.floor(bx0))), max(y0, int(np.floor(by0)))
            c1, r1 = min(x1, int(np.ceil(bx1))), min(y1, int(np.ceil(by1)))
            if c1 <= c0 or r1 <= r0 or obj.name not in category_of:
                continue
            ys, xs = np.mgrid[r0:r1, c0:c1].astype(np.float64)
            inside = shapely.contains_xy(shape(obj.geometry), xs + (0.5 + 1e-7), ys + (0.5 + 1e-9))
            crop = MaskCrop.from_mask(inside, c0 - x0, r0 - y0)
            if crop is not None and crop.area >= min_area:
                sources.append(SourceInstance(str(path), f"object {obj.index}: ",
                                              category_of[obj.name], crop))
        return sources, []
    return read


def _category_names(pending, options: GeojsonOptions) -> List[str]:
    """``--classes`` in their order (all of them, so every conversion with them agrees), the
    nucleus class with ``single_class``, else the classes found sorted by name."""
    if options.single_class:
        return list(NUCLEUS_CLASSES)
    if options.classes is not None:
        return list(dict.fromkeys(options.classes))
    found = sorted({name for _, instances in pending for name, _ in instances})
    return found or list(NUCLEUS_CLASSES)


__all__ = ["GEOJSON_EXTENSIONS", "DEFAULT_OBJECT_TYPES", "DEFAULT_SLIDE_TILE", "GeojsonOptions",
           "QuPathObject", "GeojsonReport", "check_polygon", "read_qupath_objects", "tile_windows",
           "objects_in_tiles", "GeojsonSource", "pair_geojson_files", "convert_geojson", "geojson_sources"]
