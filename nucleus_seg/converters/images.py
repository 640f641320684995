"""Unlabeled image folder -> COCO with images and categories only (for test-set inference).

With an ids file (``test_img_ids.json``: ``[{file_name, id, height, width}]``) the image ids are those
of the file, because results scored by a challenge server must use them; the folder and the list
must then agree exactly (same files, same sizes). Without one, ids are 1..N in sorted name order.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

from ..categories import NUCLEUS_CLASSES, coco_categories
from ..errors import InputError
from ..fileio import load_json
from ..image_io import decode_image_file, is_image_file
from .dsb import relative_file_name


def _load_ids_file(ids_file: Path) -> dict:
    entries = load_json(ids_file)
    if not isinstance(entries, list):
        raise InputError(ids_file, "must be a JSON list of {file_name, id, height, width}")
    by_name, ids = {}, set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"file_name", "id", "height", "width"} <= entry.keys():
            raise InputError(ids_file, f"entry {i} must have file_name, id, height and width")
        if entry["file_name"] in by_name:
            raise InputError(ids_file, f"file_name {entry['file_name']!r} is listed twice")
        if entry["id"] in ids:
            raise InputError(ids_file, f"image id {entry['id']} is listed twice")
        by_name[entry["file_name"]] = entry
        ids.add(entry["id"])
    return by_name


def convert_image_folder(folder, ids_file=None, image_root=None,
                         class_names=NUCLEUS_CLASSES) -> Tuple[dict, List[str]]:
    """COCO dict with ``annotations: []`` for the images in ``folder``, and notes on ignored files."""
    folder = Path(folder)
    image_root = Path(image_root) if image_root is not None else folder
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    notes, paths = [], []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and is_image_file(entry):
            paths.append(entry)
        else:
            notes.append(f"{entry}: ignored (not an image)")
    listed = _load_ids_file(Path(ids_file)) if ids_file is not None else None
    if listed is not None:
        on_disk = {p.name for p in paths}
        for name in listed:
            if name not in on_disk:
                raise InputError(folder / name, f"listed in {ids_file} but not found")
        for path in paths:
            if path.name not in listed:
                raise InputError(path, f"not listed in {ids_file}")
    elif not paths:
        raise InputError(folder, "contains no images")

    images = []
    for index, path in enumerate(paths, start=1):
        height, width = decode_image_file(path, "image").shape[:2]
        image_id = index
        if listed is not None:
            entry = listed[path.name]
            if (entry["height"], entry["width"]) != (height, width):
                raise InputError(path, f"image is {width}x{height} but {ids_file} lists it as "
                                 f"{entry['width']}x{entry['height']}")
            image_id = entry["id"]
        images.append({"id": image_id, "file_name": relative_file_name(path, image_root),
                       "height": int(height), "width": int(width)})
    images.sort(key=lambda im: im["id"])
    return {"images": images, "annotations": [], "categories": coco_categories(class_names)}, notes
