"""Deterministic train/val split of a COCO dict by image name, optionally stratified (PanNuke: by tissue).

Each image is ranked by SHA-256 of ``"<seed>:<name>"`` and the first ``round(ratio * N)`` names go to
val. No dependence on Python's hash randomisation, numpy's global state or the RNG algorithm of a
numpy version: the same names and seed give the same split on any machine, whatever order the
names come in.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Dict, Iterable, List, Sequence, Tuple

from ..errors import InputError


def _rank(name: str, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}:{name}".encode("utf-8")).digest()


def check_val_ratio(val_ratio: float) -> None:
    if not 0.0 < val_ratio < 1.0:
        raise InputError(None, f"--val-ratio must be between 0 and 1 (exclusive), got {val_ratio}")


def split_names(names: Iterable[str], val_ratio: float, seed: int = 0) -> Tuple[List[str], List[str]]:
    """(train, val) lists of names, each sorted; val has round(val_ratio * N) names, at least one."""
    names = sorted(names)
    check_val_ratio(val_ratio)
    if len(names) < 2:
        raise InputError(None, f"cannot split {len(names)} image(s) into train and val")
    n_val = min(max(int(round(val_ratio * len(names))), 1), len(names) - 1)
    ranked = sorted(names, key=lambda n: _rank(n, seed))
    val = set(ranked[:n_val])
    return [n for n in names if n not in val], sorted(val)


def split_names_stratified(groups: Dict[str, str], val_ratio: float, seed: int = 0) -> Tuple[List[str], List[str]]:
    """(train, val) names, each sorted, splitting every group (name -> group, e.g. image -> tissue) on its
    own with :func:`split_names`, so val holds each group in proportion; a group of one image trains."""
    check_val_ratio(val_ratio)
    members = defaultdict(list)
    for name, group in groups.items():
        members[group].append(name)
    train, val = [], []
    for group in sorted(members):
        if len(members[group]) < 2:
            train += members[group]
            continue
        t, v = split_names(members[group], val_ratio, seed)
        train += t
        val += v
    return sorted(train), sorted(val)


def merge_coco(parts: Sequence[dict]) -> dict:
    """One COCO dict from several with the same categories (e.g. PanNuke folds, whose ids all start at 1):
    images and annotations renumbered 1..N in order, so ids never collide; file names are kept."""
    if not parts:
        raise ValueError("nothing to merge")
    categories = parts[0]["categories"]
    images, annotations = [], []
    for part in parts:
        if part["categories"] != categories:
            raise ValueError("cannot merge COCO files with different categories")
        new_id = {}
        for im in part["images"]:
            new_id[im["id"]] = len(images) + 1
            images.append(dict(im, id=new_id[im["id"]]))
        for ann in part["annotations"]:
            annotations.append(dict(ann, id=len(annotations) + 1, image_id=new_id[ann["image_id"]]))
    return {"images": images, "annotations": annotations, "categories": categories}


def subset_coco(coco: dict, image_ids: Iterable[int]) -> dict:
    """The images with these ids and their annotations; ids are kept, so subsets never collide."""
    keep = set(image_ids)
    return {**{k: v for k, v in coco.items() if k not in ("images", "annotations")},
            "images": [im for im in coco["images"] if im["id"] in keep],
            "annotations": [a for a in coco["annotations"] if a["image_id"] in keep],
            "categories": coco["categories"]}
