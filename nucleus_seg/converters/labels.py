"""Instance label maps and binary masks -> COCO instances.

Most public nucleus datasets ship one label map per image instead of one mask per nucleus:

- CoNSeP, Kumar (HoVer-Net's release), Lizard: ``.mat`` with ``inst_map`` (+ ``type_map``, or
  per-instance ``inst_type`` / ``class`` vectors);
- NuInsSeg and many others: 8/16/32-bit label PNGs or TIFFs;
- HoVer-Net-style ``.npy`` label arrays: H x W ids, or H x W x 2 (ids, types).

A label map holds one id per pixel (0 = background). Every distinct non-zero id is one instance,
whatever the ids are (they need not be contiguous) and however many separate pieces its pixels
form: a nucleus cut in two by an annotation tool stays one instance (COCO RLE holds any pixel set).

Types come from a type map of the same size (each instance takes the most frequent non-zero type
among its pixels, ties to the smaller type id, type 0 only when it has no other: HoVer-Net's rule),
or from a vector of one type per instance (paired with an id vector, or with the sorted ids of the
map). A class map names the types; several type ids may share one name (CoNSeP's 3 and 4 are both
"epithelial" in HoVer-Net's grouping).

Binary masks (one mask per image, e.g. Kvasir-SEG's polyps) become instances by connected
components: right for separated objects, wrong for touching nuclei, which merge into one.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..categories import NUCLEUS_CLASSES, coco_categories
from ..errors import InputError
from ..geometry import MaskCrop, label_map_crops
from ..image_io import IMAGE_EXTENSIONS, decode_image_file, foreground_plane, is_image_file
from ..validation import Problem
from .annotations import instance_annotation
from .dsb import relative_file_name
from .validate import SourceInstance, SourceReader, _check_image_file

LABEL_EXTENSIONS = (".png", ".tif", ".tiff", ".npy", ".mat")
# Lossy formats change ids at object borders; binary masks only need a threshold.
BINARY_EXTENSIONS = IMAGE_EXTENSIONS
DEFAULT_INST_KEY = "inst_map"
DEFAULT_TYPE_KEY = "type_map"
DEFAULT_ID_KEY = "id"


@dataclass
class LabelOptions:
    """How label files are read and their types named.

    ``type_key`` is looked up in .mat files; when it is the default and absent, the file has no
    types (single class); a ``type_key`` the user named must exist. ``class_map``: type id -> class
    name (None: ``type_<id>`` for every type found). ``single_class`` ignores types. Binary masks:
    ``binary`` with foreground ``> threshold`` (after the max over colour channels), components of
    ``connectivity`` 4 or 8, components under ``min_area`` pixels dropped."""

    inst_key: str = DEFAULT_INST_KEY
    type_key: str = DEFAULT_TYPE_KEY
    type_key_required: bool = False
    id_key: str = DEFAULT_ID_KEY
    class_map: Optional[Dict[int, str]] = None
    single_class: bool = False
    binary: bool = False
    threshold: float = 0
    connectivity: int = 8
    min_area: int = 0


@dataclass
class LabelSample:
    """One image and its label file (and type map file, with ``--type-dir``)."""
    key: str
    image_path: Path
    label_path: Path
    type_path: Optional[Path] = None
    image_id: int = 0


@dataclass
class Labels:
    """What a label file says: the instance id map and the instances' types (one of: a type map,
    or ids -> type; neither for untyped data)."""
    inst: np.ndarray
    type_map: Optional[np.ndarray] = None
    type_of_id: Optional[Dict[int, int]] = None

    @property
    def typed(self) -> bool:
        return self.type_map is not None or self.type_of_id is not None


@dataclass
class LabelReport:
    """What a conversion did, for the user."""
    images: int = 0
    annotations: int = 0
    images_without_instances: int = 0
    multi_part: int = 0         # instances whose pixels form several separate pieces (kept as one)
    untyped: List[str] = field(default_factory=list)     # instances with type 0 only: skipped
    small_components: int = 0   # binary masks: components under min_area, dropped
    notes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.images} images, {self.annotations} annotations; "
                f"{self.images_without_instances} images without instances; "
                f"{self.multi_part} instances in several pieces (each kept as one instance)")
        if self.untyped:
            text += f"; {len(self.untyped)} instances without a type skipped"
        if self.small_components:
            text += f"; {self.small_components} components under the minimum area dropped"
        return text


# ---------------------------------------------------------------------------------- reading files
def as_label_array(array: np.ndarray, path, what: str) -> np.ndarray:
    """Non-negative integer ids (bool, integer, or float holding integers) as an integer array;
    InputError naming the file otherwise."""
    array = np.asarray(array)
    if array.dtype == bool:
        return array.view(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        if np.issubdtype(array.dtype, np.signedinteger) and array.size and array.min() < 0:
            raise InputError(path, f"{what} has negative values (min {array.min()})")
        return array
    if np.issubdtype(array.dtype, np.floating):
        if array.size and not np.isfinite(array).all():
            raise InputError(path, f"{what} has NaN or infinite values")
        if array.size and (array.min() < 0 or (array != np.round(array)).any()):
            raise InputError(path, f"{what} must hold non-negative whole numbers (found "
                             f"{array.min():g} .. {array.max():g}, not all whole)")
        return array.astype(np.int64)
    raise InputError(path, f"{what} has data type {array.dtype}, not integer ids")


def _one_plane(pixels: np.ndarray, path, what: str) -> np.ndarray:
    """A label image as one 2-D plane: grey as it is, colour only when every channel is equal (a
    grey map saved as RGB); a colour-coded map would need its own decoding."""
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 3:
        colour = pixels[..., :3] if pixels.shape[2] >= 3 else pixels[..., :1]
        if not (colour == colour[..., :1]).all():
            raise InputError(path, f"{what} is a colour image with differing channels; ids must be "
                             "one grey channel (8/16/32-bit)")
        pixels = colour[..., 0]
    if pixels.ndim != 2:
        raise InputError(path, f"{what} has shape {pixels.shape}, not a 2-D map")
    return pixels


def _read_tiff(path: Path, what: str) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]  # a label TIFF is one 2-D map (maybe with colour samples)
            array, axes = series.asarray(), series.axes
    except Exception as exc:  # tifffile raises many types for broken files
        raise InputError(path, f"cannot be read as a TIFF ({' '.join(str(exc).split())})") from None
    extra = [f"{axis}={size}" for axis, size in zip(axes, array.shape) if axis not in "YXS" and size > 1]
    if extra:
        raise InputError(path, f"{what} has more than one plane ({', '.join(extra)}); expected one 2-D map")
    keep = [size for axis, size in zip(axes, array.shape) if axis in "YXS"]
    return array.reshape(keep)


def read_label_image(path, what: str = "label map") -> np.ndarray:
    """A 2-D label image (PNG via OpenCV, TIFF via tifffile, .npy 2-D) as stored, ids not checked."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        array = _read_tiff(path, what)
    elif suffix == ".npy":
        array = _load_npy(path)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[..., 0]
        if array.ndim != 2:
            raise InputError(path, f"{what} has shape {array.shape}, not a 2-D map")
    else:
        array = decode_image_file(path, what)
    return _one_plane(array, path, what)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle: refuse rather than run pickled code
        raise InputError(path, f"cannot be loaded without pickle ({exc})") from None
    except OSError as exc:
        raise InputError(path, f"not a readable .npy file ({' '.join(str(exc).split())})") from None


def _load_mat(path: Path, keys: Sequence[str]) -> Dict[str, np.ndarray]:
    """The variables ``keys`` of a .mat file (those present); one-line errors for v7.3 and broken
    files."""
    import scipy.io

    if not path.is_file():
        raise InputError(path, "label file not found")
    try:
        names = [name for name, _, _ in scipy.io.whosmat(path)]
        present = [k for k in dict.fromkeys(keys) if k in names]
        data = scipy.io.loadmat(path, variable_names=present) if present else {}
    except NotImplementedError:
        # scipy reads MATLAB up to v7; v7.3 files are HDF5 (h5py is not part of this stack)
        raise InputError(path, "is a MATLAB v7.3 (HDF5) file, which scipy cannot read; resave it "
                         "with save(file, '-v7') in MATLAB or scipy.io.savemat") from None
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError, ...
        raise InputError(path, f"not a readable .mat file ({' '.join(str(exc).split())})") from None
    data = {k: v for k, v in data.items() if not k.startswith("__")}
    data["__names__"] = names
    return data


def _vector(array: np.ndarray, path, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise InputError(path, f"{what} has shape {array.shape}; expected one value per instance")
    return as_label_array(array, path, what)


def read_labels(path, options: LabelOptions, type_path=None) -> Labels:
    """The instance ids and types of one label file (see the module docstring for the formats)."""
    path = Path(path)
    suffix = path.suffix.lower()
    type_map = type_of_id = None
    if suffix == ".mat":
        data = _load_mat(path, [options.inst_key, options.type_key, options.id_key])
        if options.inst_key not in data:
            raise InputError(path, f"has no variable '{options.inst_key}' (variables: "
                             f"{', '.join(data['__names__']) or 'none'}); name it with --inst-key")
        inst = as_label_array(data[options.inst_key], path, f"'{options.inst_key}'")
        if inst.ndim != 2:
            raise InputError(path, f"'{options.inst_key}' has shape {inst.shape}, not a 2-D map")
        types = data.get(options.type_key)
        if types is None and options.type_key_required and not options.single_class:
            raise InputError(path, f"has no variable '{options.type_key}' (variables: "
                             f"{', '.join(data['__names__'])})")
        if types is not None and not options.single_class:
            types = np.asarray(types)
            if types.ndim == 2 and types.shape == inst.shape:
                type_map = as_label_array(types, path, f"'{options.type_key}'")
            else:
                type_of_id = _types_per_instance(inst, _vector(types, path, f"'{options.type_key}'"),
                                                 data.get(options.id_key), path, options)
    elif suffix == ".npy":
        array = _load_npy(path)
        if array.ndim == 3 and array.shape[2] == 2:  # HoVer-Net's label layout: ids, types
            inst = as_label_array(array[..., 0], path, "instance channel 0")
            if not options.single_class:
                type_map = as_label_array(array[..., 1], path, "type channel 1")
        elif array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1):
            inst = as_label_array(array.reshape(array.shape[:2]), path, "label map")
        else:
            raise InputError(path, f"label array has shape {array.shape}; expected H x W ids or "
                             "H x W x 2 (ids, types)")
    elif suffix in LABEL_EXTENSIONS:
        inst = as_label_array(read_label_image(path), path, "label map")
    else:
        raise InputError(path, f"is not a label file this reads ({', '.join(LABEL_EXTENSIONS)}); "
                         "lossy formats such as JPEG change ids at object borders")
    if type_path is not None and not options.single_class:
        type_map = as_label_array(read_label_image(type_path, "type map"), type_path, "type map")
    if type_map is not None and type_map.shape != inst.shape:
        where = type_path or path
        raise InputError(where, f"type map is {type_map.shape[1]}x{type_map.shape[0]} but the label "
                         f"map is {inst.shape[1]}x{inst.shape[0]}")
    return Labels(inst, type_map, type_of_id)


def _types_per_instance(inst: np.ndarray, types: np.ndarray, ids, path, options) -> Dict[int, int]:
    """id -> type from a vector of types: paired with the id vector (Lizard's ``id``) when the file
    has one, else with the map's ids in ascending order (CoNSeP's ``inst_type``: row k is id k+1)."""
    if ids is not None:
        ids = _vector(ids, path, f"'{options.id_key}'")
        if len(ids) != len(types):
            raise InputError(path, f"'{options.id_key}' lists {len(ids)} ids but "
                             f"'{options.type_key}' {len(types)} types")
        type_of_id = dict(zip(ids.tolist(), types.tolist()))
        missing = np.setdiff1d(np.unique(inst[inst != 0]), ids)
        if missing.size:
            raise InputError(path, f"instance id {int(missing[0])} of '{options.inst_key}' is not "
                             f"listed in '{options.id_key}'")
        return type_of_id
    present = np.unique(inst[inst != 0])
    if len(present) != len(types):
        raise InputError(path, f"'{options.type_key}' has {len(types)} types for "
                         f"{len(present)} instances of '{options.inst_key}' and there is no "
                         f"'{options.id_key}' vector to pair them")
    return dict(zip(present.tolist(), types.tolist()))


def majority_type(types: np.ndarray) -> int:
    """HoVer-Net's rule for an instance's pixels' types: the most frequent non-zero type, ties to
    the smaller id; 0 only when no pixel has another type."""
    values, counts = np.unique(types, return_counts=True)
    nonzero = values != 0
    if not nonzero.any():
        return 0
    values, counts = values[nonzero], counts[nonzero]
    return int(values[np.argmax(counts)])  # argmax takes the first (smallest) of equal counts


def binary_foreground(pixels: np.ndarray, threshold: float = 0) -> np.ndarray:
    """Boolean foreground of a binary mask image: any non-zero colour channel (threshold 0, the mask
    readers' rule) or the channels' maximum above ``threshold`` (lossy JPEG masks need one)."""
    if threshold > 0:
        grey = pixels if pixels.ndim == 2 else (pixels[..., :3] if pixels.shape[2] >= 3
                                                else pixels[..., :1]).max(axis=2)
        return grey > threshold
    return foreground_plane(pixels) != 0


def binary_components(pixels: np.ndarray, options: LabelOptions) -> Tuple[np.ndarray, int]:
    """(label map of the connected components of a binary mask image, number dropped as smaller
    than ``options.min_area``)."""
    foreground = binary_foreground(pixels, options.threshold)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(foreground.view(np.uint8),
                                                          connectivity=options.connectivity,
                                                          ltype=cv2.CV_32S)
    small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < options.min_area) + 1
    if small.size:
        labels[np.isin(labels, small)] = 0
    return labels, int(small.size)


# --------------------------------------------------------------------------------------- pairing
def _label_key(path: Path, suffix: str) -> Optional[str]:
    stem = path.stem
    if suffix:
        if not stem.endswith(suffix):
            return None
        stem = stem[:-len(suffix)]
    return stem


def pair_label_files(images_dir, labels_dir, extensions: Sequence[str] = LABEL_EXTENSIONS,
                     label_suffix: str = "", type_dir=None) -> Tuple[List[LabelSample], List[str]]:
    """Images of ``images_dir`` and label files of ``labels_dir`` paired by name (the label's stem
    without ``label_suffix``, e.g. "_label", equals the image's stem). Every image needs a label file
    and every label file an image; ids 1..N in sorted name order."""
    images_dir, labels_dir = Path(images_dir), Path(labels_dir)
    for folder in (images_dir, labels_dir) + ((Path(type_dir),) if type_dir else ()):
        if not folder.is_dir():
            raise InputError(folder, "not a folder")
    notes: List[str] = []
    labels: Dict[str, Path] = {}
    for entry in sorted(labels_dir.iterdir()):
        key = _label_key(entry, label_suffix) if entry.is_file() else None
        if key is None or entry.name.startswith(".") or entry.suffix.lower() not in extensions:
            if labels_dir != images_dir:
                notes.append(f"{entry}: ignored (not a label file {'/'.join(extensions)})")
            continue
        if key in labels:
            raise InputError(entry, f"second label file for {key!r} (also {labels[key].name})")
        labels[key] = entry
    images: Dict[str, Path] = {}
    for entry in sorted(images_dir.iterdir()):
        if labels_dir == images_dir and labels.get(_label_key(entry, label_suffix) or "") == entry:
            continue  # the label files themselves, when both share a folder
        if not (entry.is_file() and is_image_file(entry)):
            notes.append(f"{entry}: ignored (not an image)")
            continue
        if entry.stem in images:
            raise InputError(entry, f"second image named {entry.stem!r} (also {images[entry.stem].name})")
        images[entry.stem] = entry
    if not images:
        raise InputError(images_dir, "contains no images")
    for key, path in labels.items():
        if key not in images:
            raise InputError(path, f"label file without an image {key}.<ext> in {images_dir}")
    samples = []
    for key, image_path in images.items():
        if key not in labels:
            raise InputError(image_path, f"no label file {key}{label_suffix}.<"
                             f"{'|'.join(e.lstrip('.') for e in extensions)}> in {labels_dir}")
        type_path = _find_type_file(Path(type_dir), key) if type_dir else None
        samples.append(LabelSample(key, image_path, labels[key], type_path))
    for image_id, sample in enumerate(samples, start=1):
        sample.image_id = image_id
    return samples, notes


def _find_type_file(type_dir: Path, key: str) -> Path:
    found = [p for p in sorted(type_dir.glob(f"{glob_escape(key)}.*"))
             if p.suffix.lower() in LABEL_EXTENSIONS]
    if len(found) != 1:
        raise InputError(type_dir, f"expected one type map named {key}.<png|tif|npy>, found "
                         f"{len(found)}")
    return found[0]


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


# ------------------------------------------------------------------------------------ conversion
UNTYPED = -1  # an instance of a file without type information: the single nucleus class


def instance_type(labels: Labels, instance_id: int, crop: MaskCrop) -> int:
    """The type of one instance: the type map's majority over its pixels, the per-instance vector's
    entry, or UNTYPED."""
    if labels.type_map is not None:
        return majority_type(labels.type_map[crop.y0:crop.y1, crop.x0:crop.x1][crop.mask])
    if labels.type_of_id is not None:
        return int(labels.type_of_id[instance_id])
    return UNTYPED


def read_sample_labels(sample: LabelSample, options: LabelOptions) -> Tuple[Labels, int]:
    """The label map of one sample (binary masks: their components) and how many components were
    dropped as too small."""
    if options.binary:
        inst, dropped = binary_components(decode_image_file(sample.label_path, "mask"), options)
        return Labels(inst), dropped
    return read_labels(sample.label_path, options, sample.type_path), 0


def sample_instances(sample: LabelSample, options: LabelOptions, height: int, width: int
                     ) -> Tuple[List[Tuple[int, MaskCrop]], bool, int]:
    """(type, crop) of every instance of one sample (type 0: no type; UNTYPED: the file has no
    types), whether the file has types, and how many binary components were dropped."""
    labels, dropped = read_sample_labels(sample, options)
    if labels.inst.shape != (height, width):
        h, w = labels.inst.shape
        raise InputError(sample.label_path, f"{'mask' if options.binary else 'label map'} is "
                         f"{w}x{h} but its image {sample.image_path} is {width}x{height}")
    ids, crops = label_map_crops(labels.inst)
    out = [(instance_type(labels, i, crop), crop) for i, crop in zip(ids.tolist(), crops)]
    return out, labels.typed, dropped


def categories_for(types_found: Sequence[int], options: LabelOptions, where
                   ) -> Tuple[List[dict], Dict[int, int]]:
    """COCO categories and type -> category id. Untyped files and ``single_class``: the nucleus
    class. With a class map: its names, in order of their smallest type id (all of them, found or
    not, so every conversion with the map has the same categories); without: ``type_<id>`` for each
    type found, in id order."""
    typed = sorted(t for t in set(types_found) if t > 0)
    if options.single_class or (options.class_map is None and not typed):
        return coco_categories(NUCLEUS_CLASSES), {t: 1 for t in set(types_found) | {UNTYPED}}
    if options.class_map is None:
        names = {t: f"type_{t}" for t in typed}
    else:
        if UNTYPED in types_found:
            raise InputError(where, f"a class map was given but the label files have no types "
                             f"('{options.type_key}')")
        unknown = [t for t in typed if t not in options.class_map]
        if unknown:
            raise InputError(where, f"type id(s) {unknown} are not in the class map (it names "
                             f"{sorted(options.class_map)})")
        names = options.class_map
    ordered = list(dict.fromkeys(names[t] for t in sorted(names)))
    category_of_name = {n: i + 1 for i, n in enumerate(ordered)}
    return coco_categories(ordered), {t: category_of_name[names[t]] for t in names}


def convert_labels(samples: Sequence[LabelSample], image_root, options: LabelOptions,
                   segmentation: str = "rle") -> Tuple[dict, LabelReport, Dict[int, int]]:
    """COCO dict of paired images and label files (see :func:`pair_label_files`), the report, and
    the type -> category id map (for validation)."""
    image_root = Path(image_root)
    report = LabelReport()
    images, per_image, typed_files = [], [], {}
    for sample in samples:
        height, width = decode_image_file(sample.image_path, "image").shape[:2]
        images.append({"id": sample.image_id,
                       "file_name": relative_file_name(sample.image_path, image_root),
                       "height": int(height), "width": int(width)})
        instances, typed, dropped = sample_instances(sample, options, height, width)
        typed_files.setdefault(typed, sample.label_path)
        report.small_components += dropped
        per_image.append(instances)
    if len(typed_files) > 1 and not options.single_class:
        raise InputError(typed_files[False], f"has no types ('{options.type_key}') but "
                         f"{typed_files[True]} has: convert them apart or with --single-class")
    types_found = {kind for instances in per_image for kind, _ in instances if kind != 0}
    where = samples[0].label_path.parent if samples else None
    categories, category_of_type = categories_for(sorted(types_found), options, where)
    annotations = []
    for image, sample, instances in zip(images, samples, per_image):
        if not instances:
            report.images_without_instances += 1
        for kind, crop in instances:
            if kind == 0:
                report.untyped.append(f"{sample.label_path}: instance at {list(crop.xywh)} has no "
                                      "type (type 0 only): skipped")
                continue
            if cv2.connectedComponents(crop.mask.view(np.uint8), connectivity=8)[0] > 2:
                report.multi_part += 1
            ann = instance_annotation(crop, image["height"], image["width"], segmentation)
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"],
                                "category_id": category_of_type[kind], **ann})
    report.images, report.annotations = len(images), len(annotations)
    coco = {"images": images, "annotations": annotations, "categories": categories}
    return coco, report, category_of_type


def label_sources(samples: Sequence[LabelSample], image_root, options: LabelOptions,
                  category_of_type: Dict[int, int]) -> SourceReader:
    """Source instances for :func:`validate_coco`: each id's pixels found by comparing the whole map
    with it (binary masks: components by scipy.ndimage), independently of the converter's grouping,
    and its category by the same type rule."""
    from scipy import ndimage

    image_root = Path(image_root)
    by_name = {relative_file_name(s.image_path, image_root): s for s in samples}

    def read(image):
        image_path, problems = _check_image_file(image_root, image)
        sample = by_name.get(image["file_name"])
        if sample is None:
            problems.append(Problem(image_path, "no label file paired with this image"))
        if problems:
            return [], problems
        if options.binary:
            foreground = binary_foreground(decode_image_file(sample.label_path, "mask"),
                                           options.threshold)
            structure = np.ones((3, 3)) if options.connectivity == 8 else None
            labels = Labels(ndimage.label(foreground, structure=structure)[0])
        else:
            labels = read_labels(sample.label_path, options, sample.type_path)
        sources = []
        for instance_id in np.unique(labels.inst[labels.inst != 0]).tolist():
            crop = MaskCrop.from_mask(labels.inst == instance_id)
            kind = instance_type(labels, instance_id, crop)
            if crop.area < options.min_area or kind == 0:
                continue  # dropped by the converter, with a note
            sources.append(SourceInstance(str(sample.label_path), f"id {instance_id}: ",
                                          category_of_type[kind], crop))
        return sources, []
    return read


# ------------------------------------------------------------------------------------- class maps
def parse_class_map(text_or_path) -> Dict[int, str]:
    """Type id -> class name, from a JSON object file (``{"1": "neoplastic", ...}``), a text file of
    ``<id> <name>`` / ``<id>: <name>`` / ``<id>=<name>`` lines, or a list of ``id=name`` strings."""
    if isinstance(text_or_path, (list, tuple)):
        entries, where = list(text_or_path), "--classes"
    else:
        path = Path(text_or_path)
        if not path.is_file():
            raise InputError(path, "class map file not found")
        text, where = path.read_text(encoding="utf-8"), path
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            entries = [f"{k}={v}" for k, v in obj.items()]
        elif obj is not None:
            raise InputError(path, "a JSON class map must be an object {\"<type id>\": \"<name>\"}")
        else:
            entries = [line.split("#", 1)[0].strip() for line in text.splitlines()]
            entries = [e for e in entries if e]
    class_map: Dict[int, str] = {}
    for entry in entries:
        match = re.fullmatch(r"\s*(\d+)\s*(?:[=:]\s*|\s+)(\S.*?)\s*", str(entry))
        if not match:
            raise InputError(where, f"class map entry {entry!r} is not '<type id>=<name>'")
        type_id, name = int(match.group(1)), match.group(2)
        if type_id == 0:
            raise InputError(where, "type 0 is background and cannot be a class")
        if type_id in class_map:
            raise InputError(where, f"type {type_id} is named twice")
        class_map[type_id] = name
    if not class_map:
        raise InputError(where, "the class map is empty")
    return class_map
