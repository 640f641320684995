"""End-to-end conversions behind the CLIs: refuse to clobber, convert, optionally validate, write.

Every output path is checked before any work starts (an existing file is an error unless
``overwrite``), validation runs before anything is written (PanNuke images and GeoJSON tiles are
staged until it passes: :class:`nucleus_seg.fileio.StagedOutputs`), and each JSON is written atomically.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import InputError
from ..fileio import StagedOutputs, atomic_write_json, check_writable, load_json
from ..image_io import is_image_file
from ..validation import Problem, limit_lines, raise_problems
from .dsb import ConversionReport, as_root_list, convert_dsb, default_image_root
from .geojson import GeojsonOptions, GeojsonReport, convert_geojson, geojson_sources, pair_geojson_files
from .images import convert_image_folder
from .labels import (BINARY_EXTENSIONS, LABEL_EXTENSIONS, LabelOptions, LabelReport, convert_labels,
                     label_sources, pair_label_files)
from .pannuke import convert_pannuke, find_fold_arrays, fold_name
from .split import check_val_ratio, merge_coco, split_names, split_names_stratified, subset_coco
from .validate import DEFAULT_MIN_POLYGON_IOU, dsb_sources, image_files, pannuke_sources, validate_coco

MAX_LISTED = 20  # notes/problems printed one per line before the rest are only counted


def print_lines(lines: Sequence[str], prefix: str, stream=None) -> None:
    for line in limit_lines(lines, MAX_LISTED):
        print(f"{prefix}{line}", file=stream or sys.stderr)


def raise_if_problems(problems: List[Problem], subject) -> None:
    """Print every problem (``problem: <file>: <what>``), then raise ProblemsError naming ``subject``."""
    if problems:
        print_lines(problems, "problem: ")
        raise_problems(subject, problems, "validation failed")


def _check_outputs(paths, overwrite: bool) -> None:
    for path in paths:
        check_writable(path, overwrite)


def coco_outputs(out_dir, val_ratio: float) -> List[Path]:
    """``instance_all.json``, or ``instance_train.json`` + ``instance_val.json`` with a split."""
    names = ["instance_train.json", "instance_val.json"] if val_ratio else ["instance_all.json"]
    return [Path(out_dir) / n for n in names]


def write_coco_split(coco: dict, outputs: Sequence[Path], name_of_image: Dict[int, str],
                     val_ratio: float, seed: int, overwrite: bool) -> None:
    """Write ``coco`` whole, or split by image name (:func:`split_names`, ids kept) into the two
    outputs of :func:`coco_outputs`."""
    if val_ratio:
        train_names, val_names = split_names(name_of_image.values(), val_ratio, seed)
        id_of = {name: image_id for image_id, name in name_of_image.items()}
        parts = [subset_coco(coco, [id_of[n] for n in train_names]),
                 subset_coco(coco, [id_of[n] for n in val_names])]
    else:
        parts = [coco]
    for path, part in zip(outputs, parts):
        atomic_write_json(path, part, overwrite)


def mask2coco(inputs, out_dir, image_root=None, segmentation: str = "rle",
              val_ratio: float = 0.0, seed: int = 0, workers: int = 0, validate: bool = False,
              overwrite: bool = False, progress: bool = True,
              min_polygon_iou: float = DEFAULT_MIN_POLYGON_IOU) -> Tuple[List[Path], ConversionReport]:
    """DSB folders -> ``instance_all.json``, or ``instance_train.json`` + ``instance_val.json``
    when ``val_ratio`` > 0. Returns the written paths and the report."""
    outputs = coco_outputs(out_dir, val_ratio)
    _check_outputs(outputs, overwrite)
    if val_ratio:
        check_val_ratio(val_ratio)  # before the slow part
    coco, report, samples = convert_dsb(inputs, image_root, segmentation, workers, progress)
    if validate:
        root = Path(image_root) if image_root is not None else default_image_root(
            as_root_list(inputs))
        raise_if_problems(validate_coco(coco, out_dir, dsb_sources(root), min_polygon_iou), out_dir)
    write_coco_split(coco, outputs, {s.image_id: s.sample_id for s in samples}, val_ratio, seed,
                     overwrite)
    return outputs, report


def labels2coco(images_dir, labels_dir, out_dir, options: Optional[LabelOptions] = None,
                image_root=None, label_suffix: str = "", type_dir=None, segmentation: str = "rle",
                val_ratio: float = 0.0, seed: int = 0, validate: bool = False,
                overwrite: bool = False, min_polygon_iou: float = DEFAULT_MIN_POLYGON_IOU
                ) -> Tuple[List[Path], LabelReport, dict]:
    """Images + label maps (or binary masks with ``options.binary``) paired by name ->
    ``instance_all.json`` or a train/val split, as :func:`mask2coco`. Returns the written paths, the
    report and the COCO dict."""
    options = options or LabelOptions()
    outputs = coco_outputs(out_dir, val_ratio)
    _check_outputs(outputs, overwrite)
    if val_ratio:
        check_val_ratio(val_ratio)
    extensions = BINARY_EXTENSIONS if options.binary else LABEL_EXTENSIONS
    samples, notes = pair_label_files(images_dir, labels_dir, extensions, label_suffix, type_dir)
    image_root = Path(image_root) if image_root is not None else Path(images_dir)
    coco, report, category_of_type = convert_labels(samples, image_root, options, segmentation)
    report.notes = notes + report.untyped
    if validate:
        sources = label_sources(samples, image_root, options, category_of_type)
        raise_if_problems(validate_coco(coco, out_dir, sources, min_polygon_iou), out_dir)
    write_coco_split(coco, outputs, {s.image_id: s.key for s in samples}, val_ratio, seed, overwrite)
    return outputs, report, coco


def geojson2coco(images, geojsons, out_dir, options: Optional[GeojsonOptions] = None,
                 image_root=None, suffix: str = "", region=None, tile: Optional[int] = None,
                 segmentation: str = "rle", val_ratio: float = 0.0, seed: int = 0,
                 validate: bool = False, overwrite: bool = False, skip_empty: bool = False,
                 min_polygon_iou: float = DEFAULT_MIN_POLYGON_IOU) -> Tuple[List[Path], GeojsonReport, dict]:
    """QuPath GeoJSON exports -> ``instance_all.json`` or a train/val split, as :func:`mask2coco`.

    ``images`` / ``geojsons``: an image or slide file and its export, or two folders paired by name.
    Ordinary images are referred to where they are; with ``region`` (x, y, w, h in QuPath's frame)
    or ``tile``, and always for slides, the region is cut into tiles written to
    ``<out_dir>/images/`` (file_name relative to it by default)."""
    options = options or GeojsonOptions()
    outputs = coco_outputs(out_dir, val_ratio)
    if val_ratio:
        check_val_ratio(val_ratio)
    if tile is not None and tile <= 0:
        raise InputError(None, f"--tile must be a positive number of pixels, got {tile}")
    # Tiles and COCO files are staged: they appear (the COCO files last) only once validation has
    # passed, and a refused or failed run leaves nothing behind.
    with StagedOutputs(out_dir, overwrite) as staging:
        staged_outputs = [staging.path(path, last=True) for path in outputs]  # refused before the work
        sources, notes = pair_geojson_files(images, geojsons, suffix)
        cut_tiles = tile is not None or region is not None or any(
            not is_image_file(s.image_path) for s in sources)
        for source in sources:
            source.region, source.tile = region, tile
        tiles_dir = Path(out_dir) / "images"
        if image_root is None:
            image_root = tiles_dir if cut_tiles else (Path(images) if Path(images).is_dir()
                                                      else Path(images).parent)
        coco, report, placements = convert_geojson(sources, image_root, tiles_dir, options, segmentation,
                                                   cut_tiles, skip_empty, overwrite, staging)
        report.notes = notes + report.notes
        if validate:
            read = _staged_images(geojson_sources(placements, coco, image_root, options.min_area),
                                  staging, image_root)
            raise_if_problems(validate_coco(coco, out_dir, read, min_polygon_iou), out_dir)
        write_coco_split(coco, staged_outputs, {im["id"]: im["file_name"] for im in coco["images"]},
                         val_ratio, seed, overwrite)
    return outputs, report, coco


def _staged_images(read, staging: StagedOutputs, image_root):
    """The source reader ``read``, pointed at the staged copy of each image not yet in place."""
    def read_staged(image):
        staged = staging.staged_path(Path(image_root) / image["file_name"])
        if staged is None:
            return read(image)
        return read(dict(image, file_name=os.path.relpath(staged, image_root)))
    return read_staged


def images2coco(folder, out, ids_file=None, image_root=None, validate: bool = False,
                overwrite: bool = False) -> Tuple[Path, dict, List[str]]:
    """Unlabeled image folder -> COCO file with ``annotations: []``."""
    out = Path(out)
    check_writable(out, overwrite)
    coco, notes = convert_image_folder(folder, ids_file, image_root)
    if validate:
        raise_if_problems(validate_coco(coco, out), out)
    atomic_write_json(out, coco, overwrite)
    return out, coco, notes


def pannuke2coco(fold_dir, out_dir, name: Optional[str] = None, single_class: bool = False,
                 segmentation: str = "rle", validate: bool = False, overwrite: bool = False,
                 progress: bool = True, min_polygon_iou: float = DEFAULT_MIN_POLYGON_IOU
                 ) -> Tuple[Path, ConversionReport]:
    """PanNuke fold -> ``<out_dir>/images/*.png`` + ``<out_dir>/instance_<name>.json``. The images
    are staged and appear, JSON last, only once conversion and validation have passed."""
    arrays = find_fold_arrays(fold_dir)
    name = name or fold_name(fold_dir)
    out = Path(out_dir) / f"instance_{name}.json"
    with StagedOutputs(out_dir, overwrite) as staging:
        staged_json = staging.path(out, last=True)  # refuses an existing JSON before the slow part
        coco, report = convert_pannuke(fold_dir, out_dir, name, single_class, segmentation,
                                       overwrite, progress, arrays, staging)
        if validate:
            raise_if_problems(validate_coco(coco, out, pannuke_sources(fold_dir, coco["categories"]),
                                            min_polygon_iou), out)
        atomic_write_json(staged_json, coco)
    return out, report


# The PanNuke 3-fold protocol: split k trains on two folds and tests on the third.
PANNUKE_SPLITS = {1: ((1, 2), 3), 2: ((2, 3), 1), 3: ((3, 1), 2)}
DEFAULT_PANNUKE_VAL_RATIO = 0.1


def pannuke_splits(coco_dir, val_ratio: float = DEFAULT_PANNUKE_VAL_RATIO, seed: int = 0,
                   overwrite: bool = False) -> List[Path]:
    """``split<k>_train.json`` + ``split<k>_val.json`` in ``coco_dir`` for each split of the 3-fold protocol,
    from the converted ``instance_fold<i>.json``: the two training folds merged, then ``val_ratio`` of their
    images (by image, in proportion within each tissue, fixed ``seed``) held out for validation and
    checkpoint selection, so the test fold is never looked at before the final evaluation."""
    coco_dir = Path(coco_dir)
    check_val_ratio(val_ratio)
    outputs = []
    for k in PANNUKE_SPLITS:
        outputs += [coco_dir / f"split{k}_train.json", coco_dir / f"split{k}_val.json"]
    _check_outputs(outputs, overwrite)
    folds = {}
    for i in (1, 2, 3):
        path = coco_dir / f"instance_fold{i}.json"
        if not path.is_file():
            raise InputError(path, "not found: convert the three folds with converters/pannuke2coco.py first")
        folds[i] = load_json(path)
        if not all("tissue" in im for im in folds[i].get("images", [])):
            raise InputError(path, "images without 'tissue': not a PanNuke fold written by pannuke2coco.py")
    parts = []
    for k, (train_folds, _) in PANNUKE_SPLITS.items():
        try:
            merged = merge_coco([folds[i] for i in train_folds])
        except ValueError as exc:
            raise InputError(coco_dir, f"split {k}: {exc}") from None
        by_name = {im["file_name"]: im for im in merged["images"]}
        if len(by_name) != len(merged["images"]):
            raise InputError(coco_dir, f"split {k}: folds {train_folds} share image file names")
        train, val = split_names_stratified({n: im["tissue"] for n, im in by_name.items()}, val_ratio, seed)
        if not val:
            raise InputError(coco_dir, f"split {k}: no tissue has two images to hold one out for validation")
        for role, names in (("training", train), ("validation", val)):
            part = subset_coco(merged, [by_name[n]["id"] for n in names])
            part["info"] = {"description": f"PanNuke split {k}, {role} part of folds {train_folds[0]}"
                            f"+{train_folds[1]}", "val_ratio": val_ratio, "seed": seed, "stratified_by": "tissue"}
            parts.append(part)
    for path, part in zip(outputs, parts):
        atomic_write_json(path, part, overwrite)
    return outputs


def validate_file(json_path, image_root=None, pannuke_fold=None,
                  min_polygon_iou: float = DEFAULT_MIN_POLYGON_IOU) -> Tuple[dict, List[Problem]]:
    """Load a COCO file and validate it (against DSB masks or a PanNuke fold when given)."""
    coco = load_json(json_path)
    if image_root is not None and pannuke_fold is not None:
        raise InputError(None, "give either --image-root (DSB masks) or --pannuke, not both")
    read_sources = None
    if image_root is not None and isinstance(coco, dict) and coco.get("annotations") == []:
        read_sources = image_files(image_root)  # an unlabeled set: check the images only
    elif image_root is not None:
        read_sources = dsb_sources(image_root)
    elif pannuke_fold is not None:
        categories = coco.get("categories", []) if isinstance(coco, dict) else []
        read_sources = pannuke_sources(pannuke_fold, categories)
    return coco, validate_coco(coco, json_path, read_sources, min_polygon_iou)
