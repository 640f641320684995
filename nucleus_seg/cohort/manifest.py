"""The cohort manifest: a CSV with a header row and one slide per line.

Columns (header names, any case, any order): ``slide`` (required: the slide file, absolute or
relative to the manifest's folder), ``mpp`` (optional: microns per pixel overriding the file's
metadata), ``tissue`` (optional: a mask image / QuPath GeoJSON of the region to process, relative
paths as for ``slide``). Empty cells mean "not given"; blank lines and lines starting with ``#``
are skipped.

A bad row (missing file, duplicate slide or output folder, bad MPP, missing tissue file) is one
``(line, path, problem)`` triple, the problem naming the manifest line; the other rows go on.
A manifest that cannot be read at all (no file, no ``slide`` column, unknown column) raises :class:`InputError`.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import InputError
from ..inference.batch import slide_name

COLUMNS = ("slide", "mpp", "tissue")
MAX_MPP = 100.0  # microns per pixel; coarser than any scan (a 1 mm thumbnail is ~ 10 um/px)


@dataclass(frozen=True)
class CohortSlide:
    """One valid manifest row."""

    index: int                 # 0-based position among the manifest's slide rows (shards, COCO ids)
    line: int                  # line number in the manifest file
    path: Path
    name: str                  # output folder DIR/<name>/ (the single-slide command's name)
    mpp: Optional[float] = None
    tissue: Optional[Path] = None


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: every count-th slide row of the manifest from row ``index``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        try:
            i, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard takes i/N (e.g. 0/4), got {text!r}") from None
        if n < 1 or not 0 <= i < n:
            raise ValueError(f"--shard i/N needs 0 <= i < N, got {text!r}")
        return cls(i, n)

    def holds(self, index: int) -> bool:
        return index % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _parse_mpp(text: str) -> Optional[float]:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"mpp {text!r} is not a number") from None
    if not math.isfinite(value) or not 0 < value <= MAX_MPP:
        raise ValueError(f"mpp {text!r} is not a positive number of microns per pixel "
                         f"(at most {MAX_MPP:g})")
    return value


def read_manifest(path, shard: Optional[Shard] = None
                  ) -> Tuple[List[CohortSlide], List[Tuple[int, str, str]], int]:
    """(valid slides of the shard, [(line, path, problem)] for its bad rows, slide rows in the
    manifest).

    Duplicates are judged over the whole manifest, so every shard agrees on which row of a
    duplicate pair is the one processed (the first)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "manifest not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the manifest: {exc}") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise InputError(path, "the manifest is empty (expected a header row with a 'slide' "
                               "column)")
    rows = list(csv.reader([line for _, line in lines]))
    header = [h.strip().lower() for h in rows[0]]
    unknown = [h for h in header if h not in COLUMNS]
    if "slide" not in header or unknown:
        problem = (f"unknown column(s) {unknown}" if unknown and "slide" in header
                   else "the first row must be a header with a 'slide' column")
        raise InputError(path, f"{problem}; columns: {', '.join(COLUMNS)} (mpp, tissue optional)")
    base = path.resolve().parent
    slides: List[CohortSlide] = []
    problems: List[Tuple[int, str, str]] = []
    first_by_path: Dict[Path, int] = {}
    first_by_name: Dict[str, Tuple[int, Path]] = {}
    for index, ((line_no, _), cells) in enumerate(zip(lines[1:], rows[1:])):
        where = f"{path}:{line_no}"
        values = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            if shard is None or shard.holds(index):
                problems.append((line_no, where, f"{len(cells)} cells for {len(header)} columns"))
            continue
        if not values["slide"]:
            if shard is None or shard.holds(index):
                problems.append((line_no, where, "no slide path"))
            continue
        slide = base / values["slide"]
        resolved = slide.resolve()
        name = slide_name(slide)
        duplicate = None
        if resolved in first_by_path:
            duplicate = f"duplicate of line {first_by_path[resolved]}: the slide is processed once"
        elif name in first_by_name:
            other_line, other = first_by_name[name]
            duplicate = (f"same output folder '{name}' as {other} (line {other_line}); rename one "
                         "of them")
        else:
            first_by_path[resolved] = line_no
            first_by_name[name] = (line_no, slide)
        if shard is not None and not shard.holds(index):
            continue
        if duplicate:
            problems.append((line_no, str(slide), f"{where}: {duplicate}"))
            continue
        if not slide.is_file():
            problems.append((line_no, str(slide), f"{where}: no such file"))
            continue
        try:
            mpp = _parse_mpp(values.get("mpp", ""))
        except ValueError as exc:
            problems.append((line_no, str(slide), f"{where}: {exc}"))
            continue
        tissue = base / values["tissue"] if values.get("tissue") else None
        if tissue is not None and not tissue.is_file():
            problems.append((line_no, str(tissue), f"{where}: tissue region file not found"))
            continue
        slides.append(CohortSlide(index, line_no, slide, name, mpp, tissue))
    return slides, problems, len(rows) - 1


__all__ = ["COLUMNS", "CohortSlide", "Shard", "read_manifest"]
