"""A cohort from a manifest to per-slide folders: :func:`run_cohort`.

Each slide goes through :func:`nucleus_seg.slide_inference.infer_slide` into ``OUT/<name>/``
(exactly the single-slide command's folder and files), so finished slides are skipped and partial
ones resume per region on a rerun. The slides run on Ray (:mod:`.ray_engine`: model actors reused
across slides, tiles read in Ray tasks, dead workers' slides retried) or, with ``engine='local'``,
in a plain loop in this process (no Ray). Either way one bad slide is recorded with its reason and
the others go on; the end is a summary table, printed and written to ``OUT/cohort_summary.csv``.
"""
from __future__ import annotations

import csv
import io
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, TextIO, Tuple

from ..errors import InputError
from ..fileio import atomic_write_text
from ..slide_inference import SlideSettings, infer_slide
from .manifest import CohortSlide, Shard, read_manifest

SUMMARY_COLUMNS = ("line", "slide", "folder", "status", "nuclei", "tissue_area_mm2",
                   "nuclei_per_mm2", "seconds", "attempts", "resumed_at_row", "error")
DONE, SKIPPED, FAILED = "done", "skipped", "failed"
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class SlideJob:
    """What a worker needs to process one slide (picklable: it travels to Ray actors)."""

    slide: CohortSlide
    out_dir: Path
    settings: SlideSettings


def slide_jobs(slides: Iterable[CohortSlide], out_dir, settings: SlideSettings) -> List[SlideJob]:
    """One job per slide: the manifest's MPP and tissue file override the command's; COCO image
    ids are manifest positions (1-based), the same in every shard."""
    out_dir = Path(out_dir)
    jobs = []
    for s in slides:
        per_slide = replace(settings, mpp=s.mpp if s.mpp is not None else settings.mpp,
                            tissue=str(s.tissue) if s.tissue is not None else settings.tissue,
                            coco_image_id=s.index + 1, progress=False)
        jobs.append(SlideJob(s, out_dir / s.name, per_slide))
    return jobs


def failed_row(line: int, slide: str, folder: str, problem: str, attempts: int = 0) -> dict:
    return {"line": line, "slide": slide, "folder": folder, "status": FAILED, "nuclei": None,
            "tissue_area_mm2": None, "nuclei_per_mm2": None, "seconds": None,
            "attempts": attempts, "resumed_at_row": None, "error": problem}


def run_job(job: SlideJob, predictor, read_batches: Optional[Callable] = None,
            attempt: int = 1) -> dict:
    """Process one slide (``attempt``: its try, counting from 1); a summary row. Bad input
    (unreadable, truncated, no MPP, no tissue, outputs in the way) is a failed row with its
    reason, not an exception."""
    path = str(job.slide.path)
    settings = job.settings
    if attempt > 1 and settings.overwrite:  # --overwrite discarded the old outputs on the first
        settings = replace(settings, overwrite=False)  # try; a retry resumes that try's work
    try:
        s = infer_slide(job.slide.path, predictor, job.out_dir, settings,
                        read_batches=read_batches)
    except InputError as exc:
        return failed_row(job.slide.line, exc.path or path, str(job.out_dir), exc.problem, attempt)
    except MemoryError:
        return failed_row(job.slide.line, path, str(job.out_dir),
                          "not enough memory to process this slide", attempt)
    return {"line": job.slide.line, "slide": path, "folder": str(job.out_dir),
            "status": SKIPPED if s.skipped else DONE,
            "nuclei": s.nuclei, "tissue_area_mm2": s.tissue_area_mm2,
            "nuclei_per_mm2": s.nuclei_per_mm2, "seconds": round(s.seconds, 3),
            "attempts": attempt, "resumed_at_row": s.resumed_at_row, "error": None}


class CohortProgress:
    """One status line on ``stream``: slides done / failed / running, nuclei so far, ETA.

    Rewritten in place on a terminal, a new line per change otherwise (log files of batch jobs).
    The ETA extrapolates from the slides processed in this run (skipped ones cost nothing)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, enabled: bool = True):
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.started = time.perf_counter()
        self.done = self.failed = self.running = self.nuclei = self.processed = 0
        self._tty = enabled and getattr(stream, "isatty", lambda: False)()
        self._last = None

    def finished(self, row: dict) -> None:
        if row["status"] == FAILED:
            self.failed += 1
        else:
            self.done += 1
            self.nuclei += row["nuclei"] or 0
        if row["status"] == DONE:
            self.processed += 1
        self.show()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.started
        remaining = self.total - self.done - self.failed
        eta = (_clock(elapsed / self.processed * remaining) if self.processed and remaining
               else "0:00:00" if not remaining else "-")
        return (f"cohort: {self.done}/{self.total} done, {self.failed} failed, {self.running} "
                f"running, {self.nuclei:,} nuclei, {_clock(elapsed)} elapsed, ETA {eta}")

    def show(self) -> None:
        if not self.enabled:
            return
        line = self.line()
        key = line.split(", ")[:5]  # a line per change of counts, not per clock tick
        if key == self._last:
            return
        self._last = key
        self.stream.write(("\r" + line + "\x1b[K") if self._tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run_local(jobs: Sequence[SlideJob], predictor, progress: CohortProgress) -> List[dict]:
    """The plain loop: each slide in turn in this process (the reference the Ray engine is
    measured against, and the engine of ``--no-ray`` shards)."""
    rows = []
    for job in jobs:
        progress.running = 1
        progress.show()
        row = run_job(job, predictor)
        progress.running = 0
        progress.finished(row)
        rows.append(row)
    return rows


@dataclass
class CohortReport:
    rows: List[dict] = field(default_factory=list)  # every manifest row of the shard, in order
    summary_csv: Optional[Path] = None
    manifest_rows: int = 0

    @property
    def failed(self) -> List[dict]:
        return [r for r in self.rows if r["status"] == FAILED]

    def table(self) -> str:
        """The summary as aligned text (what the command prints at the end)."""
        heads = ("slide", "status", "nuclei", "tissue mm2", "per mm2", "seconds", "tries")
        body = []
        for r in self.rows:
            body.append((Path(r["slide"]).name, r["status"], _num(r["nuclei"], "d"),
                         _num(r["tissue_area_mm2"], ".3f"), _num(r["nuclei_per_mm2"], ".0f"),
                         _num(r["seconds"], ".1f"), str(r["attempts"] or "")))
        widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(heads)]
        lines = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in
                           enumerate(zip(heads, widths)))]
        for b in body:
            lines.append("  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in
                                   enumerate(zip(b, widths))).rstrip())
        counts = {k: sum(r["status"] == k for r in self.rows) for k in (DONE, SKIPPED, FAILED)}
        lines.append(f"{counts[DONE]} slide(s) done, {counts[SKIPPED]} finished before (skipped), "
                     f"{counts[FAILED]} failed; summary: {self.summary_csv}")
        for r in self.failed:
            lines.append(f"error: {r['slide']}: {r['error']}")
        return "\n".join(lines)


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def summary_csv_name(shard: Optional[Shard]) -> str:
    """Each shard writes its own summary (they share the output folder)."""
    return ("cohort_summary.csv" if shard is None else
            f"cohort_summary.shard-{shard.index}-of-{shard.count}.csv")


def write_summary_csv(rows: Sequence[dict], path) -> Path:
    """The run's summary, replaced atomically on each run: it reports this run (finished slides
    skipped by it are listed with the numbers they were finished with), nothing the slides'
    folders do not hold."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r[k] is None else r[k] for k in SUMMARY_COLUMNS})
    return atomic_write_text(path, buf.getvalue(), overwrite=True)


def run_cohort(manifest, out_dir, settings: SlideSettings,
               make_predictor: Callable[[], object], *, shard: Optional[Shard] = None,
               engine: str = "ray", address: Optional[str] = None, workers: Optional[int] = None,
               cpus_per_worker: float = 1.0, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
               prefetch: int = 4, num_cpus: Optional[int] = None, progress: bool = True,
               stream: TextIO = sys.stderr) -> CohortReport:
    """Process the manifest's slides (the shard's, with ``shard``) into ``out_dir/<name>/``.

    ``make_predictor()`` builds the model: once per Ray actor (``engine='ray'``) or once here
    (``engine='local'``); it must be picklable for Ray (e.g. :class:`.ModelLoader`). ``address``
    joins a running Ray cluster ('auto', 'ray://host:10001'); without it Ray starts on this
    machine for the run with ``num_cpus`` CPUs (default all), or the Ray this process started
    before is used. ``workers``:
    model actors (default one per GPU, or one per ``cpus_per_worker`` CPUs). A worker that dies
    costs its slide at most the region in progress; the slide is tried ``max_attempts`` times in
    all, then reported failed. Bad manifest rows and failed slides are in ``report.failed``."""
    if engine not in ("ray", "local"):
        raise ValueError(f"engine must be 'ray' or 'local', got {engine!r}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    out_dir = Path(out_dir)
    slides, problems, manifest_rows = read_manifest(manifest, shard)
    jobs = slide_jobs(slides, out_dir, settings)
    bar = CohortProgress(len(jobs) + len(problems), stream, progress)
    bad = [failed_row(line, path, "", problem) for line, path, problem in problems]
    for row in bad:
        bar.finished(row)
    rows = []
    if jobs:
        out_dir.mkdir(parents=True, exist_ok=True)
        if engine == "local":
            rows = run_local(jobs, make_predictor(), bar)
        else:
            from .ray_engine import run_on_ray

            rows = run_on_ray(jobs, make_predictor, bar, address=address, workers=workers,
                              cpus_per_worker=cpus_per_worker, max_attempts=max_attempts,
                              prefetch=prefetch, num_cpus=num_cpus)
    bar.close()
    report = CohortReport(sorted(rows + bad, key=lambda r: r["line"]), manifest_rows=manifest_rows)
    if jobs:
        report.summary_csv = write_summary_csv(report.rows, out_dir / summary_csv_name(shard))
    return report


@dataclass(frozen=True)
class ModelLoader:
    """A picklable recipe for the model: each Ray actor builds its own predictor with it, once."""

    config: str
    checkpoint: str
    device: Optional[str] = None  # None: cuda:0 where the worker sees a GPU, else cpu
    score_thr: float = 0.5
    max_per_img: int = 1000
    scale_factor: Optional[float] = None
    trust_checkpoint: Tuple[str, ...] = ()  # --trust-pickle-global names: see nucleus_seg.checkpoints

    def __call__(self):
        from ..checkpoints import trusted_checkpoints
        from ..inference.predictor import load_predictor

        device = self.device
        if device is None:
            import torch
            device = "cuda:0" if torch.cuda.is_available() else "cpu"
        with trusted_checkpoints(self.trust_checkpoint):
            return load_predictor(self.config, self.checkpoint, device, self.score_thr,
                                  self.max_per_img, self.scale_factor)


__all__ = ["CohortProgress", "CohortReport", "ModelLoader", "SlideJob", "run_cohort", "run_job",
           "slide_jobs", "summary_csv_name", "write_summary_csv"]
