"""Deterministic train/val split of a COCO dict by image name.

Each image is ranked by SHA-256 of ``"<seed>:<name>"`` and the first ``round(ratio * N)`` names go to
val. No dependence on Python's hash randomisation, numpy's global state or the RNG algorithm of a
numpy version: the same names and seed give the same split on any machine, whatever order the
names come in.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, List, Tuple

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


def subset_coco(coco: dict, image_ids: Iterable[int]) -> dict:
    """The images with these ids and their annotations; ids are kept, so subsets never collide."""
    keep = set(image_ids)
    return {**{k: v for k, v in coco.items() if k not in ("images", "annotations")},
            "images": [im for im in coco["images"] if im["id"] in keep],
            "annotations": [a for a in coco["annotations"] if a["image_id"] in keep],
            "categories": coco["categories"]}
