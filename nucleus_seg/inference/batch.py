"""Inference over many slides and images: what ``tools/infer.py`` runs, importable for reuse.

Each input gets its own folder ``OUT/<name>/`` written by
:func:`nucleus_seg.slide_inference.infer_slide`. One bad input (unreadable, truncated, no MPP, no
tissue, outputs in the way) is recorded and the others go on; the caller reports the failures at the
end and exits non-zero.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from tqdm import tqdm

from ..errors import InputError
from .tiling import Predictor

# Whole-slide formats OpenSlide / tifffile open, taken from folders and globs beside the images.
SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".bif",
                  ".svslide", ".dcm")


def slide_name(path: Path) -> str:
    """The output folder name of an input: its file name without the suffix(es) of its format; for
    a DICOM WSI file, its folder's name (a series is a folder of files, one per pyramid level,
    often named by UIDs)."""
    folder = Path(path).resolve().parent.name if Path(path).suffix.lower() == ".dcm" else ""
    if folder:
        return folder
    name = Path(path).name
    for double in (".ome.tif", ".ome.tiff"):
        if name.lower().endswith(double):
            return name[:-len(double)]
    return Path(name).stem


def one_input_per_dicom_series(files: Sequence[Path]) -> List[Path]:
    """``files`` with the DICOM files of one whole-slide series (same folder, same
    SeriesInstanceUID: OpenSlide opens the whole series from any one of them) reduced to the first
    by name, so a folder of level files is one slide, not one run per level. Other files, and DICOM
    files OpenSlide does not read as a slide (they fail with their own error), stay as given."""
    from ..slide.opener import dicom_series_uid

    out: List[Path] = []
    seen = set()
    for path in files:
        path = Path(path)
        if path.suffix.lower() == ".dcm":
            series = dicom_series_uid(path)
            if series is not None:
                key = (str(path.resolve().parent), series)
                if key in seen:
                    continue
                seen.add(key)
        out.append(path)
    return out


@dataclass
class BatchReport:
    done: list = field(default_factory=list)    # SlideSummary per finished (or skipped) input
    failed: List[Tuple[str, str]] = field(default_factory=list)  # (path, problem)

    def format(self) -> str:
        lines = []
        if self.done:
            name_w = max(5, max(len(Path(s.slide).name) for s in self.done))
            lines.append(f"{'input':<{name_w}}  {'tiles':>11}  {'nuclei':>8}  {'per mm2':>8}  "
                         f"{'seconds':>8}  note")
            for s in self.done:
                density = f"{s.nuclei_per_mm2:.0f}" if s.nuclei_per_mm2 else "-"
                note = ("finished before: skipped" if s.skipped else
                        f"resumed at tile row {s.resumed_at_row}" if s.resumed_at_row is not None
                        else "")
                lines.append(f"{Path(s.slide).name:<{name_w}}  {f'{s.tiles}/{s.tiles_total}':>11}  "
                             f"{s.nuclei:>8}  {density:>8}  {s.seconds:>8.1f}  {note}".rstrip())
        lines.append(f"{len(self.done)} input(s) done, {len(self.failed)} failed")
        for path, problem in self.failed:
            lines.append(f"error: {path}: {problem}")
        return "\n".join(lines)


def infer_inputs(files: Sequence[Path], predictor: Predictor, out_dir, settings,
                 report: Optional[BatchReport] = None) -> BatchReport:
    """Run :func:`~nucleus_seg.slide_inference.infer_slide` on each file into
    ``out_dir/<name>/``. COCO image ids (``--format coco``) are 1-based positions in ``files``."""
    from ..slide_inference import infer_slide

    out_dir = Path(out_dir)
    report = report or BatchReport()
    claimed: Dict[str, Path] = {}  # output folder -> input that writes it
    for position, path in enumerate(tqdm(files, desc="inputs", unit="input", file=sys.stderr,
                                         disable=not settings.progress or len(files) < 2),
                                    start=1):
        path = Path(path)
        try:
            name = slide_name(path)
            if name in claimed:
                raise InputError(path, f"has the same name as {claimed[name]}; their output "
                                       f"folders would collide (run them separately)")
            claimed[name] = path
            report.done.append(infer_slide(path, predictor, out_dir / name,
                                           replace(settings, coco_image_id=position)))
        except InputError as exc:
            report.failed.append((exc.path or str(path), exc.problem))
        except MemoryError:
            report.failed.append((str(path), "not enough memory to process this input"))
    return report
