"""Reading QuPath GeoJSON exports: the features of a file, each object's type and class name.

QuPath writes objects as a ``FeatureCollection`` (File > Export objects as GeoJSON) or as a bare JSON
list of features (``exportObjectsToGeoJson`` without the collection option, and the common
``gson.toJson(objects)`` scripts); single features and bare geometries occur in hand-made files.
The forms QuPath itself has written and reads back:

- object type: ``properties.objectType`` ("annotation", "detection", "cell", "tile", "tmaCore"; since
  v0.3), ``properties.object_type`` or ``properties.type`` (aliases it accepts), or, from v0.2, the
  feature's ``id`` ("PathAnnotationObject", "PathDetectionObject", "PathCellObject", ...). Without
  any of these QuPath imports the object as an annotation, and so do we;
- class: ``properties.classification`` as ``{"name": ..., "color": [r, g, b]}`` (v0.4+), with a
  ``colorRGB`` integer instead of ``color`` (v0.2-0.3), as ``{"names": [...]}`` for a derived class,
  as ``{"name": child, "parentClass": {...}}`` (v0.2 derived classes), or as a plain string; derived
  classes read as QuPath displays them, ``"Tumor: Positive"``;
- cells: ``geometry`` is the cell boundary and ``nucleusGeometry`` (a top-level key) the nucleus.

Coordinates are image pixels of the full-resolution image, origin at the top-left corner of the
top-left pixel (QuPath's ROI convention; for OpenSlide formats with bounds, the bounds' corner).
"""
from __future__ import annotations

from typing import List, Optional

from .errors import InputError
from .fileio import load_json

# QuPath v0.2 stored the object type in the feature's "id".
LEGACY_TYPE_IDS = {
    "PathAnnotationObject": "annotation", "PathDetectionObject": "detection",
    "PathCellObject": "cell", "PathTileObject": "tile", "TMACoreObject": "tmaCore",
    "PathRootObject": "root",
}
GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
                  "GeometryCollection")


def read_geojson_features(path) -> List[dict]:
    """The features of a QuPath GeoJSON file (FeatureCollection, list of features, one feature, or a
    bare geometry, which becomes a feature without properties). InputError naming the file for
    anything else."""
    data = load_json(path)
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        items = data.get("features")
        if not isinstance(items, list):
            raise InputError(path, "FeatureCollection without a 'features' list")
    elif isinstance(data, list):
        items = data
    elif isinstance(data, dict):
        items = [data]
    else:
        raise InputError(path, "not a GeoJSON FeatureCollection, feature list or feature")
    features = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(path, f"feature {index} is a {type(item).__name__}, not a JSON object")
        if item.get("type") in GEOMETRY_TYPES:
            item = {"type": "Feature", "geometry": item, "properties": {}}
        elif "geometry" not in item:
            raise InputError(path, f"feature {index} has no 'geometry'")
        features.append(item)
    return features


def properties(feature: dict) -> dict:
    props = feature.get("properties")
    return props if isinstance(props, dict) else {}


def object_type(feature: dict) -> str:
    """"annotation", "detection", "cell", "tile", ... as QuPath would import the feature."""
    props = properties(feature)
    for key in ("objectType", "object_type", "type"):
        if isinstance(props.get(key), str):
            return props[key]
    return LEGACY_TYPE_IDS.get(feature.get("id"), "annotation")


def _class_names(classification) -> List[str]:
    if isinstance(classification, str):
        return [classification] if classification else []
    if not isinstance(classification, dict):
        return []
    names = classification.get("names")
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    parent = _class_names(classification.get("parentClass"))
    name = classification.get("name")
    return parent + ([str(name)] if name not in (None, "") else [])


def class_name(feature: dict) -> Optional[str]:
    """The object's classification as QuPath displays it ("Tumor", "Tumor: Positive"); None when
    unclassified."""
    names = _class_names(properties(feature).get("classification"))
    return ": ".join(names) if names else None


__all__ = ["LEGACY_TYPE_IDS", "read_geojson_features", "properties", "object_type", "class_name"]
