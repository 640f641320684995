"""PanNuke fold (images.npy, masks.npy, types.npy) -> PNG images + COCO instances.

On-disk format of a fold: ``images.npy`` float64 N x H x W x 3 (RGB, 0..255); ``masks.npy`` float64
N x H x W x 6 with channels named in ``PANNUKE_CHANNELS`` (the last is background); instance ids are
unique within a channel only, so (channel, id) is the instance key; ``types.npy`` N tissue names.
The arrays are memory-mapped: a full fold (several GB) is read one patch at a time.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from ..categories import NUCLEUS_CLASSES, PANNUKE_CHANNELS, PANNUKE_CLASSES, coco_categories
from ..errors import InputError
from ..fileio import StagedOutputs, atomic_write_bytes
from ..geometry import MaskCrop, label_map_crops
from .annotations import instance_annotation
from .dsb import ConversionReport

ARRAY_NAMES = ("images.npy", "masks.npy", "types.npy")


def find_fold_arrays(fold_dir) -> Dict[str, Path]:
    """Paths of images.npy, masks.npy, types.npy under ``fold_dir`` (the released nesting varies)."""
    fold_dir = Path(fold_dir)
    if not fold_dir.is_dir():
        raise InputError(fold_dir, "not a folder")
    found = {}
    for name in ARRAY_NAMES:
        matches = sorted(p for p in fold_dir.rglob(name) if p.is_file())
        if not matches:
            raise InputError(fold_dir, f"no {name} found in it or its subfolders")
        if len(matches) > 1:
            raise InputError(fold_dir, f"several {name} files found ({', '.join(map(str, matches))}); "
                             "point to one fold")
        found[name] = matches[0]
    return found


def _load_array(path: Path, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle; refuse them rather than run pickled code
        raise InputError(path, f"cannot be loaded without pickle ({exc})") from None
    except OSError as exc:
        raise InputError(path, f"not a readable .npy file ({exc})") from None


def load_fold(arrays: Dict[str, Path]) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Memory-mapped images and masks, and tissue names; shapes checked against each other."""
    images = _load_array(arrays["images.npy"], mmap=True)
    masks = _load_array(arrays["masks.npy"], mmap=True)
    types = _load_array(arrays["types.npy"], mmap=False)
    if images.ndim != 4 or images.shape[3] != 3:
        raise InputError(arrays["images.npy"], f"shape {images.shape} is not N x H x W x 3")
    expected = images.shape[:3] + (len(PANNUKE_CHANNELS),)
    if masks.shape != expected:
        raise InputError(arrays["masks.npy"], f"shape {masks.shape} does not match images "
                         f"{images.shape}; expected {expected} (channels {', '.join(PANNUKE_CHANNELS)})")
    if types.ndim != 1 or types.shape[0] != images.shape[0] or types.dtype.kind not in "US":
        raise InputError(arrays["types.npy"], f"expected {images.shape[0]} tissue names, got an "
                         f"array of shape {types.shape} and dtype {types.dtype}")
    tissues = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in types.tolist()]
    return images, masks, tissues


def patch_instances(mask_patch: np.ndarray, masks_path="masks.npy", index: int = 0
                    ) -> Iterator[Tuple[str, int, MaskCrop]]:
    """(class name, instance id, mask crop) of every nucleus in one H x W x 6 patch.

    Channels are looked up by name in PANNUKE_CHANNELS; each is a label map of its class's instances
    (:func:`nucleus_seg.geometry.label_map_crops`).
    """
    for class_name in PANNUKE_CLASSES:
        plane = np.asarray(mask_patch[..., PANNUKE_CHANNELS.index(class_name)])
        values = plane[plane != 0]
        if (values < 0).any() or (values != np.round(values)).any():
            raise InputError(masks_path, f"patch {index}, channel {class_name}: instance ids must be "
                             "non-negative integers")
        ids, crops = label_map_crops(plane)
        for instance_id, crop in zip(ids, crops):
            yield class_name, int(instance_id), crop


def fold_name(fold_dir) -> str:
    """A file-name-safe prefix from the fold folder: "Fold 1" -> "fold1"."""
    return re.sub(r"[^a-z0-9]+", "", Path(fold_dir).resolve().name.lower()) or "pannuke"


def convert_pannuke(fold_dir, out_dir, name: Optional[str] = None, single_class: bool = False,
                    segmentation: str = "rle", overwrite: bool = False, progress: bool = True,
                    arrays: Optional[Dict[str, Path]] = None,
                    staging: Optional[StagedOutputs] = None) -> Tuple[dict, ConversionReport]:
    """Write ``<out_dir>/images/<name>_<index>.png`` and return the COCO dict (file_name relative
    to ``out_dir``). Every patch becomes an image, with or without nuclei.

    The images are written into ``staging`` (:class:`nucleus_seg.fileio.StagedOutputs`), so a caller
    can validate the result before any of them appears (``pannuke2coco``); without one they are moved
    into place when the whole fold has converted. Either way a failed run leaves nothing behind and
    files that existed are untouched."""
    if staging is None:
        with StagedOutputs(out_dir, overwrite) as own:
            return convert_pannuke(fold_dir, out_dir, name, single_class, segmentation, overwrite,
                                   progress, arrays, own)
    arrays = arrays or find_fold_arrays(fold_dir)
    images, masks, tissues = load_fold(arrays)
    name = name or fold_name(fold_dir)
    out_dir = Path(out_dir)
    class_names = NUCLEUS_CLASSES if single_class else PANNUKE_CLASSES
    category_ids = {c: (1 if single_class else class_names.index(c) + 1) for c in PANNUKE_CLASSES}
    n, height, width = images.shape[:3]
    file_names = [f"images/{name}_{i:05d}.png" for i in range(n)]
    staged = [staging.path(out_dir / f) for f in file_names]  # refuses existing files before any work

    report = ConversionReport()
    coco_images, annotations = [], []
    for i in tqdm(range(n), desc="patches", unit="patch", disable=None if progress else True):
        rgb = np.asarray(images[i])
        if not np.isfinite(rgb).all() or rgb.min() < 0 or rgb.max() > 255:
            raise InputError(arrays["images.npy"], f"patch {i}: values outside 0..255")
        for class_name, _, crop in patch_instances(masks[i], arrays["masks.npy"], i):
            ann = instance_annotation(crop, height, width, segmentation)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": category_ids[class_name], **ann})
        bgr = np.ascontiguousarray(np.rint(rgb[..., ::-1]).astype(np.uint8))
        ok, png = cv2.imencode(".png", bgr)
        if not ok:
            raise InputError(out_dir / file_names[i], "PNG encoding failed")
        atomic_write_bytes(staged[i], png.tobytes())
        coco_images.append({"id": i + 1, "file_name": file_names[i], "height": int(height),
                            "width": int(width), "tissue": tissues[i], "pannuke_index": i})
    report.images, report.annotations = len(coco_images), len(annotations)
    coco = {"images": coco_images, "annotations": annotations,
            "categories": coco_categories(class_names)}
    return coco, report
