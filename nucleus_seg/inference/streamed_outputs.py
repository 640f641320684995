"""Slide outputs written while nuclei are released: QuPath GeoJSON, a Parquet table, a QC thumbnail.

Nuclei are turned into records (outline, centroid, box, areas) as soon as the seam merger releases
them, and written to the current *region*'s part files under the slide's ``.partial/`` folder; a
region's parts appear under their names only when the region is committed. At the end the parts are
concatenated into the final files (the GeoJSON text part after part, the Parquet table row group
by row group), so no step holds more than one row group of records (``ROW_GROUP`` nuclei).

Coordinates: level-0 pixels of the slide in the frame QuPath shows for the file (x right, y down,
pixel edges: a model pixel (i, j) is the square [j, j+1) x [i, i+1) before scaling).
:class:`OutputFrame` maps model pixels there: ``out = model * scale + offset``.
"""
from __future__ import annotations

import gzip
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..fileio import atomic_stream
from ..geometry import MaskCrop, geojson_geometry
from .export import class_color
from .seams import Nucleus

GEOJSON_HEADER = b'{"type": "FeatureCollection", "features": [\n'
GEOJSON_FOOTER = b"\n]}\n"
COORD_DECIMALS = 3  # 1/1000 px: exact for every scale a pyramid level gives, short text


@dataclass(frozen=True)
class OutputFrame:
    """Model pixels -> output coordinates (level-0 pixels in QuPath's frame, or OpenSlide's)."""

    scale: Tuple[float, float]            # level-0 pixels per model pixel (x, y)
    offset: Tuple[float, float]           # output coordinate of model pixel corner (0, 0)
    origin: Tuple[float, float]           # level-0 coordinate of the output frame's (0, 0)
    mpp: Optional[Tuple[float, float]]    # microns per level-0 pixel; None if unknown
    name: str                             # 'qupath' or 'slide'

    @classmethod
    def of_view(cls, view, name: str = "qupath") -> "OutputFrame":
        reader = view.reader
        origin = tuple(float(v) for v in reader.qupath_origin) if name == "qupath" else (0.0, 0.0)
        offset = (view.offset[0] - origin[0], view.offset[1] - origin[1])
        mpp = tuple(float(v) for v in reader.mpp) if reader.mpp else None
        return cls(tuple(float(v) for v in view.scale_xy), offset, origin, mpp, name)

    def describe(self) -> dict:
        return {"frame": self.name, "units": "level-0 pixels (x right, y down, pixel edges)",
                "origin_level0": list(self.origin), "model_to_output_scale": list(self.scale),
                "model_to_output_offset": list(self.offset)}


def outline_polygons(crop: MaskCrop) -> List[List[np.ndarray]]:
    """A nucleus outline as polygons (lists of closed rings, (k, 2) float arrays) in model-pixel
    coordinates: :func:`nucleus_seg.geometry.geojson_geometry`'s rings along the pixel edges,
    every part of the mask, holes included, so the outline rasterises back to the mask."""
    geometry = geojson_geometry(crop)
    polygons = ([geometry["coordinates"]] if geometry["type"] == "Polygon"
                else geometry["coordinates"])
    return [[np.asarray(ring, dtype=np.float64) for ring in rings] for rings in polygons]


def _ring_text(ring: np.ndarray) -> str:
    if np.all(ring == np.round(ring)):
        return json.dumps(ring.astype(np.int64).tolist())  # integer corners: exact and short
    return json.dumps(np.round(ring, COORD_DECIMALS).tolist())


def _geometry_text(polygons: List[List[np.ndarray]]) -> str:
    """GeoJSON geometry text (Polygon, or MultiPolygon for several parts)."""
    parts = ["[" + ",".join(_ring_text(r) for r in rings) + "]" for rings in polygons]
    if len(parts) == 1:
        return '{"type": "Polygon", "coordinates": ' + parts[0] + "}"
    return '{"type": "MultiPolygon", "coordinates": [' + ",".join(parts) + "]}"


def _wkb(polygons: List[List[np.ndarray]]) -> bytes:
    """ISO WKB (little-endian) of the same geometry, written directly (shapely per nucleus would
    cost more than tracing it)."""
    def polygon(rings):
        return b"".join([b"\x01", struct.pack("<II", 3, len(rings))]
                        + [struct.pack("<I", len(r)) + np.ascontiguousarray(r, "<f8").tobytes()
                           for r in rings])

    if len(polygons) == 1:
        return polygon(polygons[0])
    return b"\x01" + struct.pack("<II", 6, len(polygons)) + b"".join(polygon(p) for p in polygons)


PARQUET_COLUMNS = ("id", "class", "class_id", "score", "centroid_x", "centroid_y",
                   "centroid_x_um", "centroid_y_um", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1",
                   "area_px", "area_um2", "tile", "seen_by", "outline")


def parquet_schema(metadata: Dict[str, dict]):
    import pyarrow as pa

    fields = [("id", pa.int64()), ("class", pa.string()), ("class_id", pa.int16()),
              ("score", pa.float32()), ("centroid_x", pa.float64()), ("centroid_y", pa.float64()),
              ("centroid_x_um", pa.float64()), ("centroid_y_um", pa.float64()),
              ("bbox_x0", pa.float64()), ("bbox_y0", pa.float64()), ("bbox_x1", pa.float64()),
              ("bbox_y1", pa.float64()), ("area_px", pa.float64()), ("area_um2", pa.float64()),
              ("tile", pa.int32()), ("seen_by", pa.int16()), ("outline", pa.binary())]
    # GeoParquet 1.0 metadata: geopandas.read_parquet gives a GeoDataFrame; crs null = pixel frame
    geo = {"version": "1.0.0", "primary_column": "outline",
           "columns": {"outline": {"encoding": "WKB", "geometry_types": ["Polygon", "MultiPolygon"],
                                   "crs": None}}}
    meta = {b"geo": json.dumps(geo).encode()}
    meta.update({k.encode(): json.dumps(v, sort_keys=True).encode() for k, v in metadata.items()})
    return pa.schema(fields, metadata=meta)


def _wkb_exterior_rings(wkb: bytes) -> List[np.ndarray]:
    """The exterior ring of each polygon in a WKB written by :func:`_wkb`, as (k, 2) float arrays
    (read with numpy: shapely geometries for a whole region stay allocated in GEOS's heap)."""
    def polygon(offset):
        n_rings = struct.unpack_from("<I", wkb, offset + 5)[0]
        offset += 9
        rings = []
        for _ in range(n_rings):
            n = struct.unpack_from("<I", wkb, offset)[0]
            rings.append(np.frombuffer(wkb, "<f8", 2 * n, offset + 4).reshape(n, 2))
            offset += 4 + 16 * n
        return rings[0], offset

    kind = struct.unpack_from("<I", wkb, 1)[0]
    if kind == 3:
        return [polygon(0)[0]]
    out, offset = [], 9
    for _ in range(struct.unpack_from("<I", wkb, 5)[0]):
        ring, offset = polygon(offset)
        out.append(ring)
    return out


class NucleusRecords:
    """Turns released nuclei into GeoJSON feature text and Parquet columns (no masks kept)."""

    def __init__(self, frame: OutputFrame, class_names: Sequence[str]):
        self.frame = frame
        self.class_names = list(class_names)

    def class_name(self, label: int) -> str:
        return self.class_names[label] if label < len(self.class_names) else f"class_{label}"

    def record(self, nucleus: Nucleus, nucleus_id: int) -> Tuple[bytes, dict]:
        crop, f = nucleus.crop, self.frame
        (sx, sy), (ox, oy) = f.scale, f.offset
        moments = cv2.moments(crop.mask.view(np.uint8), binaryImage=True)
        count = moments["m00"]
        area = count * sx * sy
        cx = (crop.x0 + moments["m10"] / count + 0.5) * sx + ox  # mean of pixel centres
        cy = (crop.y0 + moments["m01"] / count + 0.5) * sy + oy
        scale, offset = np.array([sx, sy]), np.array([ox, oy])
        polygons = [[ring * scale + offset for ring in rings] for rings in outline_polygons(crop)]
        name = self.class_name(nucleus.label)
        r, g, b = class_color(nucleus.label)
        # the Feature of export.geojson_feature, written as text directly (json.dumps of nested
        # coordinate lists dominated the slide pipeline's time)
        text = ('{"type": "Feature", "geometry": ' + _geometry_text(polygons)
                + ', "properties": {"objectType": "detection", "classification": {"name": '
                + json.dumps(name) + f', "color": [{r}, {g}, {b}]}}, "score": '
                + f"{round(float(nucleus.score), 5)!r}, \"nucleus_id\": {nucleus_id}}}}}")
        row = {
            "id": nucleus_id, "class": name, "class_id": nucleus.label,
            "score": float(nucleus.score),
            "centroid_x": cx, "centroid_y": cy,
            "centroid_x_um": cx * f.mpp[0] if f.mpp else None,
            "centroid_y_um": cy * f.mpp[1] if f.mpp else None,
            "bbox_x0": crop.x0 * sx + ox, "bbox_y0": crop.y0 * sy + oy,
            "bbox_x1": crop.x1 * sx + ox, "bbox_y1": crop.y1 * sy + oy,
            "area_px": area, "area_um2": area * f.mpp[0] * f.mpp[1] if f.mpp else None,
            "tile": nucleus.tile, "seen_by": nucleus.seen_by,
            "outline": _wkb(polygons),
        }
        return text.encode(), row


ROW_GROUP = 4096  # nuclei per Parquet row group: a few MB of Python rows at most, whatever the slide


class RegionParts:
    """Writes one region at a time: ``begin(k)``, ``add(nuclei)`` (as they are released),
    ``commit()`` (the region's two part files appear under their names). Parts live in
    ``folder``: ``r000000.geojson`` (features separated by ",\\n") and ``r000000.parquet``.

    Both parts are streamed to their temporary files as nuclei arrive; at most ``ROW_GROUP``
    records wait in memory for the next Parquet row group, so a region of any width (a tile row of
    a wide slide holds tens of thousands of nuclei) costs a fixed amount of memory."""

    def __init__(self, folder: Path, records: NucleusRecords, schema,
                 row_group: Optional[int] = None):
        self.folder = Path(folder)
        self.records = records
        self.schema = schema
        self.row_group = row_group or ROW_GROUP
        self.region: Optional[int] = None
        self._streams: list = []  # the open atomic streams (GeoJSON, Parquet) of the region
        self._geojson = None
        self._parquet = None
        self._columns: Dict[str, list] = {}
        self.count = 0

    @staticmethod
    def names(region: int) -> Tuple[str, str]:
        return f"r{region:06d}.geojson", f"r{region:06d}.parquet"

    def begin(self, region: int) -> None:
        import pyarrow.parquet as pq

        self.region = region
        geojson_name, parquet_name = self.names(region)
        self._streams = [atomic_stream(self.folder / geojson_name, overwrite=True),
                         atomic_stream(self.folder / parquet_name, overwrite=True)]
        self._geojson = self._streams[0].__enter__()
        self._parquet = pq.ParquetWriter(self._streams[1].__enter__(), self.schema)
        self._columns = {c: [] for c in PARQUET_COLUMNS}
        self.count = 0

    def add(self, nuclei: Iterable[Nucleus], first_id: int) -> int:
        """Write ``nuclei`` with ids from ``first_id``; returns the next free id."""
        nucleus_id = first_id
        for nucleus in nuclei:
            text, row = self.records.record(nucleus, nucleus_id)
            if self.count:
                self._geojson.write(b",\n")
            self._geojson.write(text)
            for c in PARQUET_COLUMNS:
                self._columns[c].append(row[c])
            self.count += 1
            nucleus_id += 1
            if len(self._columns["id"]) >= self.row_group:
                self._flush()
        return nucleus_id

    def _flush(self) -> None:
        import pyarrow as pa

        if self._columns["id"]:
            self._parquet.write_batch(pa.RecordBatch.from_pydict(self._columns, schema=self.schema))
            self._columns = {c: [] for c in PARQUET_COLUMNS}

    def commit(self) -> None:
        import pyarrow as pa

        self._flush()
        self._parquet.close()
        for stream in self._streams:
            stream.__exit__(None, None, None)
        self._streams, self._geojson, self._parquet = [], None, None
        pa.default_memory_pool().release_unused()

    def abandon(self) -> None:
        """Drop the open region (an error): its temporary files are removed."""
        for stream in self._streams:
            try:
                stream.__exit__(RuntimeError, RuntimeError("abandoned"), None)
            except RuntimeError:
                pass
        self._streams, self._geojson, self._parquet = [], None, None


def assemble_geojson(parts: Sequence[Path], dest: Path, compress: bool) -> Path:
    """One FeatureCollection from the region parts, copied part by part (gzip without a time
    stamp, so the same nuclei always give the same bytes)."""
    with atomic_stream(dest, overwrite=True) as raw:
        out = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if compress else raw
        out.write(GEOJSON_HEADER)
        first = True
        for part in parts:
            if os.path.getsize(part) == 0:
                continue
            if not first:
                out.write(b",\n")
            with open(part, "rb") as f:
                while chunk := f.read(1 << 20):
                    out.write(chunk)
            first = False
        out.write(GEOJSON_FOOTER)
        if compress:
            out.close()
    return dest


def assemble_parquet(parts: Sequence[Path], dest: Path, schema, on_table=None) -> int:
    """One Parquet file from the region parts, row group by row group (each at most ``ROW_GROUP``
    nuclei, so memory does not follow a region's size); ``on_table(table)`` sees each row group
    (e.g. to draw the QC thumbnail). Returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    with atomic_stream(dest, overwrite=True) as f:
        writer = pq.ParquetWriter(f, schema)
        for part in parts:
            # one thread, no dataset scanner: its per-thread heaps would stay allocated
            with pq.ParquetFile(part) as pf:
                for group in range(pf.num_row_groups):
                    table = pf.read_row_group(group, use_threads=False)
                    if table.num_rows == 0:
                        continue
                    writer.write_table(table, row_group_size=table.num_rows)
                    rows += table.num_rows
                    if on_table is not None:
                        on_table(table)
                    del table
                    pa.default_memory_pool().release_unused()  # mimalloc keeps freed pages otherwise
        writer.close()
    return rows


class QcThumbnail:
    """The slide's scanned area at a fixed small size (``max_size`` px on the long side) with every
    nucleus outline drawn in its class colour. Read through a coarse view in chunks, never a whole
    pyramid level (a 1 GP slide's level 1 alone is 180 MB)."""

    def __init__(self, reader, frame: OutputFrame, max_size: int = 2048):
        from ..slide import ResampledView
        from ..slide.tissue import _low_res_rgb  # the chunked whole-view read tissue masks use
        from ..slide_inference import whole_level_mpp

        bx, by, bw, bh = reader.bounds
        factor = max(bw, bh) / float(max_size)  # level-0 pixels per thumbnail pixel
        if reader.mpp and factor > 1:
            # at most max_size px: a whole multiple of a level's pixel at or above the factor
            # small chunks: a 2,048-px read costs ~45 MB of reader buffers for a moment
            image = _low_res_rgb(ResampledView(reader, whole_level_mpp(reader, max(reader.mpp)
                                                                       * factor)), 512)
        else:
            image = _low_res_rgb(ResampledView(reader, None), 512)
            if factor > 1:  # a single-level image without MPP: already in memory whole
                size = (max(1, round(bw / factor)), max(1, round(bh / factor)))
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        self.image = np.ascontiguousarray(image[:, :, ::-1])  # BGR for cv2
        self.corner = (float(bx), float(by))
        self.factor = (self.image.shape[1] / bw, self.image.shape[0] / bh)
        self.frame = frame

    def draw(self, table) -> None:
        labels = table.column("class_id").to_numpy()
        shift = np.asarray(self.frame.origin) - self.corner  # output frame -> level 0 -> thumbnail
        by_label: Dict[int, list] = {}
        for wkb, label in zip(table.column("outline").to_pylist(), labels.tolist()):
            by_label.setdefault(label, []).extend(
                np.round((ring + shift) * self.factor).astype(np.int32)
                for ring in _wkb_exterior_rings(wkb))
        for label, rings in by_label.items():
            r, g, b = class_color(int(label))
            cv2.polylines(self.image, rings, True, (b, g, r), 1)

    def save(self, path: Path) -> Path:
        ok, buf = cv2.imencode(".png", self.image)
        if not ok:
            raise ValueError("could not encode the QC thumbnail")
        with atomic_stream(path, overwrite=True) as f:
            f.write(buf.tobytes())
        return path


def region_part_paths(folder: Path, regions: int) -> List[Tuple[Path, Path]]:
    return [tuple(Path(folder) / n for n in RegionParts.names(k)) for k in range(regions)]
