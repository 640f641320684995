"""COCO results -> instance label maps, type maps and PanNuke-style ``masks.npy``, so the reference
evaluation scripts of other projects (HoVer-Net's ``compute_stats``, the PanNuke metrics, CellViT,
MoNuSeg scorers) can read this project's predictions.

Predictions overlap; label maps cannot. Each pixel goes to the highest-scoring prediction covering
it (:func:`nucleus_seg.overlaps.label_map_from_rles`, the same resolver the metrics use), after the
score threshold. Ids are score ranks: 1 is the most confident prediction of the image; a prediction
left with no pixel leaves its id unused, so ids may skip.

Outputs per image (``<stem>`` of its ``file_name``):

- ``inst/<stem>.png``: instance ids, 16-bit grey (``.npy`` uint32 when an id reaches 65536);
- ``types/<stem>.png``: the category id of each pixel's instance, 0 = background (8-bit, 16-bit
  above 255 categories);
- with ``pannuke``: ``masks.npy``, N x H x W x 6 float64 as the PanNuke release: channels 0-4 hold
  the instance ids of neoplastic, inflammatory, connective, dead, epithelial nuclei, channel 5 is 1
  on background; rows in the order of the image list. Categories map to channels by name (or the
  given channel map).
"""
from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..categories import PANNUKE_CHANNELS, PANNUKE_CLASSES
from ..errors import InputError
from ..fileio import atomic_output_path, atomic_write_bytes, check_writable, load_json
from ..geometry import crop_from_segmentation, crop_to_rle
from ..overlaps import label_map_from_rles

BACKGROUND_CHANNEL = PANNUKE_CHANNELS.index("background")


@dataclass
class LabelMapsReport:
    images: int = 0
    predictions: int = 0          # results read
    below_threshold: int = 0
    kept: int = 0                 # instances with pixels in the label maps
    covered: int = 0              # predictions that lost every pixel to higher-scoring ones
    outputs: List[Path] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.images} images: {self.kept} instances in the label maps from "
                f"{self.predictions} predictions ({self.below_threshold} below the score threshold, "
                f"{self.covered} wholly covered by higher-scoring ones)")


def read_results(path) -> List[dict]:
    """A COCO results list (``[{"image_id", "category_id", "segmentation", "score"}, ...]``), checked
    enough that the conversion cannot fail half-way."""
    results = load_json(path)
    if isinstance(results, dict) and "annotations" in results:
        raise InputError(path, "is a COCO dataset, not a results list; give the predictions "
                         "(a JSON list) and the dataset as the image list")
    if not isinstance(results, list):
        raise InputError(path, "not a COCO results list (a JSON list of predictions)")
    for k, r in enumerate(results):
        if not isinstance(r, dict):
            raise InputError(path, f"result {k} is not a JSON object")
        missing = [key for key in ("image_id", "category_id", "segmentation", "score") if key not in r]
        if missing:
            raise InputError(path, f"result {k} has no {', '.join(missing)}")
    return results


def read_image_list(path) -> Tuple[List[dict], List[dict]]:
    """The ``images`` (id, file_name, size) and ``categories`` of a COCO file (ground truth, or
    images2coco's list)."""
    coco = load_json(path)
    images = coco.get("images") if isinstance(coco, dict) else None
    if not isinstance(images, list):
        raise InputError(path, "has no 'images' list (give the COCO ground truth or image list)")
    if not images:
        raise InputError(path, "lists no images")
    for k, image in enumerate(images):
        if not isinstance(image, dict) or any(key not in image for key in ("id", "file_name",
                                                                            "height", "width")):
            raise InputError(path, f"image {k} lacks id, file_name, height or width")
    categories = coco.get("categories") or []
    return images, categories if isinstance(categories, list) else []


def _compressed_rle(segmentation, height: int, width: int, results_path, index: int) -> Optional[dict]:
    """A compressed RLE of any COCO segmentation (RLE, uncompressed RLE, polygons); None if empty."""
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), str):
        size = [int(v) for v in segmentation.get("size", ())]
        if size != [height, width]:
            raise InputError(results_path, f"result {index}: RLE size {size} but the image is "
                             f"{height} x {width} (height x width)")
        return segmentation
    try:
        crop = crop_from_segmentation(segmentation, height, width)
    except Exception as exc:  # pycocotools raises several types for malformed input
        raise InputError(results_path, f"result {index}: unreadable segmentation "
                         f"({' '.join(str(exc).split())})") from None
    return None if crop is None else crop_to_rle(crop, height, width)


def results_label_map(results: Sequence[Tuple[int, dict]], height: int, width: int,
                      score_thr: float = 0.0, results_path=None
                      ) -> Tuple[np.ndarray, np.ndarray, Dict[str, int]]:
    """(instance ids, category id per pixel, counts) of one image's ``(index, result)`` pairs:
    results under ``score_thr`` dropped, the rest ranked by score (ties in list order) and resolved
    by :func:`label_map_from_rles`; id k is the k-th most confident."""
    counts = {"below_threshold": 0, "kept": 0, "covered": 0}
    kept = [(i, r) for i, r in results if float(r["score"]) >= score_thr]
    counts["below_threshold"] = len(results) - len(kept)
    kept.sort(key=lambda item: -float(item[1]["score"]))  # stable: ties keep list order
    rles, categories = [], []
    for index, r in kept:
        rle = _compressed_rle(r["segmentation"], height, width, results_path, index)
        if rle is not None:
            rles.append(rle)
            categories.append(int(r["category_id"]))
    if not rles:
        return np.zeros((height, width), np.int32), np.zeros((height, width), np.int32), counts
    # scores=None: the list is already in rank order, so id k + 1 is rles[k]
    inst = np.ascontiguousarray(label_map_from_rles(rles, height, width))
    present = np.unique(inst)
    counts["kept"] = int(np.count_nonzero(present))
    counts["covered"] = len(rles) - counts["kept"]
    category_of_id = np.asarray([0] + categories, dtype=np.int32)
    return inst, category_of_id[inst], counts


def pannuke_channel_of(categories: Sequence[dict], channel_map: Optional[Dict[str, int]] = None
                       ) -> Dict[int, int]:
    """category id -> PanNuke channel (0-4): the channel map's entry, else the channel of the same
    name (case-insensitive). ValueError naming the categories that have neither."""
    channel_map = {k.lower(): v for k, v in (channel_map or {}).items()}
    out, unknown = {}, []
    for c in categories:
        name = str(c["name"]).lower()
        if name in channel_map:
            out[int(c["id"])] = channel_map[name]
        elif name in PANNUKE_CLASSES:
            out[int(c["id"])] = PANNUKE_CLASSES.index(name)
        else:
            unknown.append(c["name"])
    if unknown:
        raise ValueError(f"categories {unknown} are not PanNuke classes ({', '.join(PANNUKE_CLASSES)}); "
                         "map them with --channel NAME=INDEX")
    return out


def parse_channel_map(entries: Sequence[str]) -> Dict[str, int]:
    """``["nucleus=0", ...]`` -> {"nucleus": 0}; channels 0-4 only (5 is background)."""
    out = {}
    for entry in entries:
        name, sep, index = str(entry).rpartition("=")
        if not sep or not name or not index.strip().isdigit() or int(index) >= BACKGROUND_CHANNEL:
            raise InputError(None, f"--channel {entry!r} is not NAME=INDEX with INDEX 0-4")
        out[name] = int(index)
    return out


def _write_png(path: Path, array: np.ndarray, overwrite: bool) -> Path:
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise InputError(path, "could not encode as PNG")
    return atomic_write_bytes(path, buf.tobytes(), overwrite)


def coco_results_to_label_maps(results_path, images_path, out_dir, score_thr: float = 0.0,
                               pannuke: bool = False, channel_map: Optional[Dict[str, int]] = None,
                               overwrite: bool = False) -> LabelMapsReport:
    """Write the label maps (and ``masks.npy`` with ``pannuke``) of ``results_path``'s predictions
    on the images of ``images_path``; see the module docstring. Every input is checked and every
    output name claimed before the first file is written."""
    from ..inference.export import write_label_array

    results = read_results(results_path)
    images, categories = read_image_list(images_path)
    out_dir = Path(out_dir)
    by_image = defaultdict(list)
    known = {image["id"] for image in images}
    for index, r in enumerate(results):
        if r["image_id"] not in known:
            raise InputError(results_path, f"result {index}: image_id {r['image_id']} is not in "
                             f"{images_path}")
        by_image[r["image_id"]].append((index, r))
    stems = {}
    for image in images:
        stem = Path(image["file_name"]).stem
        if stem in stems:
            raise InputError(images_path, f"two images named {stem!r} ({stems[stem]} and "
                             f"{image['file_name']}): label maps are named by stem")
        stems[stem] = image["file_name"]
    channel_of = None
    masks_path = out_dir / "masks.npy"
    if pannuke:
        sizes = {(int(im["height"]), int(im["width"])) for im in images}
        if len(sizes) > 1:
            raise InputError(images_path, f"images of {len(sizes)} sizes; masks.npy needs one size")
        used = {int(r["category_id"]) for r in results}
        try:
            channel_of = pannuke_channel_of([c for c in categories if int(c["id"]) in used],
                                            channel_map)
        except ValueError as exc:
            raise InputError(images_path, str(exc)) from None
        missing = used - {int(c["id"]) for c in categories}
        if missing:
            raise InputError(images_path, f"category ids {sorted(missing)} of the results are not "
                             "in its categories")
        check_writable(masks_path, overwrite)
    report = LabelMapsReport(images=len(images), predictions=len(results))
    for image in images:  # claim every name first: a clash stops before anything is written
        stem = Path(image["file_name"]).stem
        for sub in ("inst", "types"):
            for suffix in (".png", ".npy"):
                if (out_dir / sub / (stem + suffix)).exists() and not overwrite:
                    raise InputError(out_dir / sub / (stem + suffix),
                                     "already exists; pass --overwrite to replace it")
    with (atomic_output_path(masks_path, overwrite) if pannuke else contextlib.nullcontext()) as tmp:
        masks = None
        if pannuke:
            height, width = int(images[0]["height"]), int(images[0]["width"])
            masks = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float64,
                                              shape=(len(images), height, width, 6))
        for row, image in enumerate(images):
            height, width = int(image["height"]), int(image["width"])
            inst, types, counts = results_label_map(by_image.get(image["id"], []), height, width,
                                                    score_thr, results_path)
            report.below_threshold += counts["below_threshold"]
            report.kept += counts["kept"]
            report.covered += counts["covered"]
            stem = Path(image["file_name"]).stem
            report.outputs.append(write_label_array(out_dir / "inst" / stem, inst, overwrite))
            type_dtype = np.uint8 if types.max(initial=0) < 256 else np.uint16
            report.outputs.append(_write_png(out_dir / "types" / f"{stem}.png",
                                             types.astype(type_dtype), overwrite))
            if masks is not None:
                masks[row] = pannuke_patch(inst, types, channel_of)
        if masks is not None:
            masks.flush()
            del masks  # closes the memory map before the rename
    if pannuke:
        report.outputs.append(masks_path)
    return report


def pannuke_patch(inst: np.ndarray, types: np.ndarray, channel_of: Dict[int, int]) -> np.ndarray:
    """H x W x 6 float64 of one image: each instance's id in its class's channel, 1 on background
    in channel 5 (the PanNuke release's layout)."""
    patch = np.zeros(inst.shape + (6,), dtype=np.float64)
    for category_id, channel in channel_of.items():
        where = types == category_id
        patch[..., channel][where] = inst[where]
    patch[..., BACKGROUND_CHANNEL] = inst == 0
    return patch


__all__ = ["LabelMapsReport", "read_results", "read_image_list", "results_label_map",
           "pannuke_channel_of", "parse_channel_map", "coco_results_to_label_maps", "pannuke_patch"]
