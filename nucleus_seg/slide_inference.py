"""Whole-slide inference, one folder per slide, resumable: :func:`infer_slide`.

``infer_slide(slide, predictor, out_dir, settings) -> SlideSummary`` reads a slide (any format
:func:`nucleus_seg.slide.open_slide` opens; an ordinary image is a one-level slide) at the model's
microns per pixel, predicts the tiles that hold tissue in batches while DataLoader worker processes
read the next ones, merges seams as rows of tiles finish (:mod:`nucleus_seg.inference.seams`) and
streams the nuclei to disk. Outputs in ``out_dir``:

- ``nuclei.geojson`` (or ``.geojson.gz``): QuPath detections, coordinates in QuPath's frame;
- ``nuclei.parquet``: one row per nucleus (id, class, score, centroid, box, areas, WKB outline);
- ``summary.json``: counts, tissue area, density, time, resolution, frame, settings, versions;
  written last: its presence means the slide is finished (a finished slide is skipped);
- ``qc.png``: thumbnail with outlines; ``tissue.png``: the tissue mask (when one was computed);
- for ordinary images, on request: ``nuclei.labels.png``, ``overlay.png``, ``coco_results.json``.

Resume: the slide is processed in regions (bands of ``region_rows`` tile rows). A region's parts,
the seam merger's pending nuclei and a journal are committed atomically in ``out_dir/.partial/``;
a run killed at any point and started again continues after the last committed region and writes
the same files as an uninterrupted run (only timings in summary.json differ).

Issue 11's cohort runner calls this function per slide; it is idempotent.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import InputError
from .fileio import atomic_write_bytes, atomic_write_json, check_writable
from .inference.engine import RowDone, merge_score_thr, stream_tiles
from .inference.seams import DEFAULT_MATCH_IOU, DEFAULT_TOLERANCE, SeamMerger
from .inference.streamed_outputs import (NucleusRecords, OutputFrame, QcThumbnail, RegionParts,
                                         assemble_geojson, assemble_parquet, parquet_schema,
                                         region_part_paths)
from .inference.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, Predictor, Tile, TileGrid

JOURNAL_VERSION = 1
SUMMARY_NAME = "summary.json"
PARTIAL_NAME = ".partial"
EXTRAS = ("labels", "overlay", "coco")
EXTRAS_MAX_PIXELS = 100_000_000  # labels / overlay / COCO hold the whole image: ordinary images only


@dataclass
class SlideSettings:
    """How a slide is processed. Fields marked (*) decide the result; a resumed run must use the
    same ones (the journal checks), the others may change between runs."""

    target_mpp: Optional[float] = None  # (*) the model's microns per pixel; None: level 0 as is
    mpp: Optional[float] = None         # (*) the slide's microns per pixel, overriding the file
    tile: int = DEFAULT_TILE            # (*) model pixels
    overlap: int = DEFAULT_OVERLAP      # (*) > the largest nucleus diameter, model pixels
    match_iou: float = DEFAULT_MATCH_IOU  # (*)
    tolerance: int = DEFAULT_TOLERANCE  # (*)
    tissue: str = "auto"                # (*) 'auto' | 'detect' | 'all' | mask image / GeoJSON path
    min_tissue: float = 0.01            # (*) tiles with less tissue (fraction) are not predicted
    frame: str = "qupath"               # (*) 'qupath' | 'slide' (OpenSlide's level 0, bounds kept)
    region_rows: int = 1                # (*) tile rows per committed region
    gzip: bool = False                  # (*) nuclei.geojson.gz instead of nuclei.geojson
    extras: Tuple[str, ...] = ()        # (*) 'labels', 'overlay', 'coco' (ordinary images only)
    coco_image_id: int = 1              # (*) image_id of the COCO records
    batch_size: int = 2                 # tiles per forward pass
    workers: int = 2                    # reader processes (0: read in this process)
    thumbnail: int = 2048               # QC thumbnail, long side in pixels
    overwrite: bool = False             # replace a finished slide's outputs / discard a partial run
    progress: bool = True               # tqdm bar on stderr

    def result_fields(self) -> dict:
        d = asdict(self)
        for k in ("batch_size", "workers", "thumbnail", "overwrite", "progress"):
            d.pop(k)
        d["extras"] = list(d["extras"])
        return d


@dataclass
class SlideSummary:
    slide: str
    out_dir: str
    nuclei: int
    tiles: int                      # tiles predicted (tissue)
    tiles_total: int                # tiles of the grid (tissue + background)
    tissue_area_mm2: Optional[float]
    nuclei_per_mm2: Optional[float]
    seconds: float
    skipped: bool = False           # finished before: nothing was done
    resumed_at_row: Optional[int] = None
    outputs: List[str] = field(default_factory=list)


def output_names(settings: SlideSettings) -> Dict[str, str]:
    names = {"geojson": "nuclei.geojson.gz" if settings.gzip else "nuclei.geojson",
             "parquet": "nuclei.parquet", "qc": "qc.png", "tissue": "tissue.png"}
    if "labels" in settings.extras:
        names["labels"] = "nuclei.labels.png"  # nuclei.labels.npy with >= 65536 nuclei
    if "overlay" in settings.extras:
        names["overlay"] = "overlay.png"
    if "coco" in settings.extras:
        names["coco"] = "coco_results.json"
    return names


def versions() -> Dict[str, Optional[str]]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in ("nucleus-seg", "torch", "mmdet", "mmcv", "mmengine", "numpy", "opencv-python",
                 "openslide-python", "openslide-bin", "tifffile", "pyarrow", "shapely"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _open_view(spec, target_mpp):
    """Open a slide and its model-resolution view (module level: pickled to reader processes)."""
    from .slide import ResampledView, open_slide

    reader = open_slide(spec)
    return ResampledView(reader, target_mpp if reader.mpp else None)


def open_slide_view(slide, settings: SlideSettings):
    """(reader, view) for a path or SlideSpec. A file with a pyramid needs microns per pixel
    (the file's or ``settings.mpp``); a single-level image without it is processed at its own
    pixel size, as ordinary image tiles always were (recorded as mpp null)."""
    from .slide import ResampledView, SlideSpec, open_slide

    if isinstance(slide, SlideSpec):
        reader = open_slide(slide)
    else:
        reader = open_slide(slide, settings.mpp, require_mpp=False)
    if reader.mpp is None and reader.level_count > 1:
        path = reader.path
        reader.close()
        raise InputError(path, "no microns-per-pixel in the file; pass --mpp")
    target = settings.target_mpp if reader.mpp else None
    return reader, ResampledView(reader, target)


TISSUE_GRID = 512  # tissue mask cells on the slide's long side, at most (within 8..32 um/px)


def whole_level_mpp(reader, mpp: float, limit: Optional[float] = None) -> float:
    """``mpp`` moved (coarser, or finer if ``limit`` forbids) to a whole multiple of a pyramid
    level's pixel, so a view reduces that level by an integer factor: cv2.INTER_AREA on whole
    blocks, instead of the exact fractional resampler, whose float64 work arrays for a
    slide-wide read in 2,048-px chunks take ~100 MB."""
    from .slide import choose_level

    base = max(reader.mpp)
    level = choose_level(reader.level_downsamples, mpp / base)
    step = base * reader.level_downsamples[level]
    k = max(1, math.ceil(mpp / step - 1e-9))
    if limit is not None and k * step > limit:
        k = max(1, math.floor(limit / step))
    return k * step


def _tissue_for(reader, settings: SlideSettings):
    """The tissue mask: detected, from the user's region file, or all of the scanned area ('all';
    'auto' on a single-level file, an image tile rather than a scan, where detecting background
    in a field of tissue would only remove tissue). Empty: InputError naming the file.

    Detection runs on a grid of at most about TISSUE_GRID cells a side (8 um/px up to 4 mm,
    coarser beyond, at most 32 um/px, the coarsest it is tested at) at a whole multiple of a
    level's pixel: its working memory (~80 bytes a cell) would otherwise grow with the slide,
    150 MB at 8 um/px for a 16 mm (4 GP) slide, while a 512-px tile at 0.25 um/px is 128 um,
    four 32 um cells."""
    from .slide import tissue_mask
    from .slide.tissue import MASK_MPP, TissueMask

    choice = settings.tissue
    if choice == "all" or (choice == "auto" and reader.level_count == 1):
        return TissueMask.full(reader)
    mask_mpp = MASK_MPP
    if reader.mpp:
        long_side_um = max(reader.bounds[2] * reader.mpp[0], reader.bounds[3] * reader.mpp[1])
        mask_mpp = min(max(MASK_MPP, long_side_um / TISSUE_GRID), 4 * MASK_MPP)
        mask_mpp = whole_level_mpp(reader, mask_mpp, limit=4 * MASK_MPP)
    return tissue_mask(reader, region=None if choice in ("auto", "detect") else choice,
                       mask_mpp=mask_mpp)


def _tissue_filter(tissue, view, min_tissue: float) -> Optional[Callable[[Tile], bool]]:
    if tissue.source == "all":
        return None

    def keep(tile: Tile) -> bool:
        (x0, y0), (x1, y1) = view.to_slide(np.array([[tile.x0, tile.y0], [tile.x1, tile.y1]]))
        return tissue.fraction(x0, y0, x1, y1) >= min_tissue

    return keep


def _describe_predictor(predictor) -> dict:
    describe = getattr(predictor, "describe", None)
    return describe() if describe is not None else {"predictor": type(predictor).__name__}


def _fingerprint(reader_path: Path, view, settings: SlideSettings, model: dict) -> dict:
    """What a resumed run must share with the run it continues."""
    stat = Path(reader_path).stat()
    return {"slide": str(Path(reader_path).resolve()), "slide_bytes": stat.st_size,
            "slide_mtime_ns": stat.st_mtime_ns, "view": view.describe(),
            "settings": settings.result_fields(),
            "model": {k: v for k, v in model.items() if k != "device"}}


class _Journal:
    """The commit record of a partial run (``.partial/journal.json``), replaced atomically."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / "journal.json"

    def load(self) -> Optional[dict]:
        if not self.path.is_file():
            return None
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None  # never half-written (atomic), so this is not ours: start afresh
        return data if data.get("version") == JOURNAL_VERSION else None

    def save(self, data: dict) -> None:
        atomic_write_json(self.path, data, overwrite=True, indent=1)

    def state_path(self, regions: int) -> Path:
        return self.folder / f"merger_{regions:06d}.npz"


def _save_state(path: Path, state: Dict[str, np.ndarray]) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, **state)
    atomic_write_bytes(path, buf.getvalue(), overwrite=True)


def _load_state(path: Path) -> Dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:  # plain arrays only: nothing here runs code
        return {k: data[k] for k in data.files}


def _progress_bar(total: int, initial: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="tile", file=sys.stderr,
                disable=not enabled, dynamic_ncols=True, leave=False)


def infer_slide(slide: Union[str, Path, "object"], predictor: Predictor, out_dir,
                settings: Optional[SlideSettings] = None,
                class_names: Optional[Sequence[str]] = None,
                read_batches: Optional[Callable] = None) -> SlideSummary:
    """Segment every nucleus of one slide into ``out_dir`` (one folder per slide); resumable and
    idempotent. ``slide`` is a path or a :class:`nucleus_seg.slide.SlideSpec`. ``read_batches``
    replaces the reader processes (see :func:`nucleus_seg.inference.engine.stream_tiles`; the
    outputs do not depend on it). InputError (naming
    the file) for an unreadable or truncated slide, a missing MPP, an empty tissue mask, outputs
    that exist without ``overwrite``, or a partial run made with other settings."""
    settings = settings or SlideSettings()
    started = time.perf_counter()
    out_dir = Path(out_dir)
    class_names = list(class_names or getattr(predictor, "class_names", None) or ["nucleus"])
    unknown = sorted(set(settings.extras) - set(EXTRAS))
    if unknown:
        raise ValueError(f"unknown extras {unknown}; choose from {EXTRAS}")
    if settings.frame not in ("qupath", "slide"):
        raise ValueError(f"frame must be 'qupath' or 'slide', got {settings.frame!r}")
    names = output_names(settings)
    summary_path = out_dir / SUMMARY_NAME
    partial_dir = out_dir / PARTIAL_NAME
    journal = _Journal(partial_dir)

    if summary_path.is_file() and not settings.overwrite:
        return _finished_summary(summary_path, out_dir)

    reader, view = open_slide_view(slide, settings)
    try:
        model = _describe_predictor(predictor)
        fingerprint = _fingerprint(reader.path, view, settings, model)
        state = journal.load()
        if settings.overwrite:
            if summary_path.is_file():
                summary_path.unlink()  # no longer finished: the marker goes first
            if partial_dir.exists():
                shutil.rmtree(partial_dir)
            state = None
        elif state is not None and state["fingerprint"] != fingerprint:
            raise InputError(out_dir, "holds an unfinished run made with other settings or another "
                                      "model/slide; pass --overwrite to discard it")
        if state is None:
            for name in names.values():  # never replace what was there before this run
                check_writable(out_dir / name, settings.overwrite)
        partial_dir.mkdir(parents=True, exist_ok=True)
        return _run(reader, view, predictor, out_dir, settings, class_names, names, journal, state,
                    fingerprint, model, started, read_batches)
    finally:
        reader.close()


def _finished_summary(summary_path: Path, out_dir: Path) -> SlideSummary:
    data = json.loads(summary_path.read_text())
    return SlideSummary(data["slide"], str(out_dir), data["nuclei"], data["tiles"]["predicted"],
                        data["tiles"]["grid"], data["tissue_area_mm2"], data["nuclei_per_mm2"],
                        data["seconds"], skipped=True,  # the time it took when it was done
                        outputs=list(data["outputs"].values()))


def _run(reader, view, predictor, out_dir, settings, class_names, names, journal, state,
         fingerprint, model, started, read_batches=None) -> SlideSummary:
    grid = TileGrid(view.height, view.width, settings.tile, settings.overlap)
    tissue = _tissue_for(reader, settings)
    keep = _tissue_filter(tissue, view, settings.min_tissue)
    planned = sum(1 for t in grid if keep is None or keep(t))
    if planned == 0:
        raise InputError(reader.path, f"no tile holds {settings.min_tissue:.0%} tissue or more "
                                      "(tissue mask nearly empty)")
    extras = tuple(settings.extras)
    if extras and view.width * view.height > EXTRAS_MAX_PIXELS:
        raise InputError(reader.path, f"--format {' '.join(extras)} holds the whole image in memory; "
                                      f"this one is {view.width}x{view.height} model pixels (limit "
                                      f"{EXTRAS_MAX_PIXELS // 10**6} MP): use the GeoJSON / Parquet "
                                      "outputs")
    # the extras collect every nucleus in memory, which a resumed run would not have: one region,
    # predicted again if a run stopped after it
    region_rows = grid.rows if extras else max(1, settings.region_rows)
    if extras and state is not None and state["regions_done"]:
        state = None
    regions_total = -(-grid.rows // region_rows)

    frame = OutputFrame.of_view(view, settings.frame)
    describe = view.describe()
    tissue_info = _tissue_info(tissue, settings, reader)
    meta = {"nucleus_seg": {"slide": str(reader.path), "view": describe,
                            "coordinates": frame.describe(), "classes": class_names}}
    schema = parquet_schema(meta)
    records = NucleusRecords(frame, class_names)
    parts = RegionParts(journal.folder, records, schema)

    if state is None:
        state = {"version": JOURNAL_VERSION, "fingerprint": fingerprint, "regions_done": 0,
                 "next_id": 1, "tiles": 0, "predictions": 0, "seconds": 0.0, "runs": [],
                 "stage": "tiles"}
        journal.save(state)
    first_row = state["regions_done"] * region_rows
    resumed_at = first_row if state["runs"] else None
    state["runs"].append({"first_row": first_row, "tiles": 0})
    merge = dict(match_iou=settings.match_iou, tolerance=settings.tolerance,
                 score_thr=merge_score_thr(predictor))
    merger = (SeamMerger.from_state(grid, _load_state(journal.state_path(state["regions_done"])),
                                    **merge)
              if state["regions_done"] else SeamMerger(grid, **merge))
    collected = [] if extras else None
    run_started = started

    if state["stage"] == "tiles" and first_row < grid.rows:
        bar = _progress_bar(planned, state["tiles"], reader.path.name, settings.progress)
        open_view = partial(_open_view, reader.spec(), view.target_mpp if reader.mpp else None)
        region = first_row // region_rows
        parts.begin(region)
        row_tiles = row_predictions = 0
        try:
            for done in stream_tiles(view, grid, predictor, merger, keep=keep,
                                     batch_size=settings.batch_size, workers=settings.workers,
                                     open_view=open_view, first_row=first_row,
                                     progress=lambda n, k: bar.update(n),
                                     read_batches=read_batches):
                state["next_id"] = parts.add(done.nuclei, state["next_id"])
                if collected is not None:
                    collected.extend(done.nuclei)
                if not isinstance(done, RowDone):
                    continue  # nuclei released inside the row: written, committed with the row
                row_tiles += done.tiles
                row_predictions += done.instances
                if (done.row + 1) % region_rows and done.row + 1 < grid.rows:
                    continue
                # commit the region: parts, then the merger's pending nuclei, then the journal
                parts.commit()
                regions_done = region + 1
                _save_state(journal.state_path(regions_done), merger.state())
                state.update(regions_done=regions_done, tiles=state["tiles"] + row_tiles,
                             predictions=state["predictions"] + row_predictions,
                             seconds=state["seconds"] + time.perf_counter() - run_started)
                state["runs"][-1]["tiles"] += row_tiles
                run_started = time.perf_counter()
                if regions_done == regions_total:
                    state["stage"] = "assemble"
                journal.save(state)
                old = journal.state_path(region)
                if old.exists():
                    old.unlink()
                row_tiles = row_predictions = 0
                region = regions_done
                if region < regions_total:
                    parts.begin(region)
                bar.set_postfix(nuclei=state["next_id"] - 1, refresh=False)
        except BaseException:
            parts.abandon()
            raise
        finally:
            bar.close()

    outputs = _assemble(reader, view, frame, tissue, journal, state, regions_total, schema,
                        names, out_dir, settings, class_names, collected)
    seconds = state["seconds"] + time.perf_counter() - run_started
    nuclei = state["next_id"] - 1
    tissue_mm2 = tissue_info.get("area_mm2")
    summary = {
        "slide": str(reader.path), "status": "done", "nuclei": nuclei,
        "tissue_area_mm2": tissue_mm2,
        "nuclei_per_mm2": nuclei / tissue_mm2 if tissue_mm2 else None,
        "tiles": {"grid": len(grid), "predicted": state["tiles"],
                  "background": len(grid) - planned, "rows": grid.rows, "columns": grid.cols},
        "predictions_before_merge": state["predictions"],
        "seconds": round(seconds, 3), "runs": state["runs"],
        "view": describe, "coordinates": frame.describe(), "tissue": tissue_info,
        "model": model, "classes": class_names, "settings": asdict(settings),
        "outputs": {k: names[k] for k in outputs}, "versions": versions(),
    }
    summary["settings"]["extras"] = list(settings.extras)
    atomic_write_json(out_dir / SUMMARY_NAME, summary, overwrite=True, indent=1)
    shutil.rmtree(journal.folder, ignore_errors=True)
    return SlideSummary(str(reader.path), str(out_dir), nuclei, state["tiles"], len(grid),
                        tissue_mm2, summary["nuclei_per_mm2"], seconds, False, resumed_at,
                        [str(out_dir / names[k]) for k in outputs])


def _tissue_info(tissue, settings: SlideSettings, reader) -> dict:
    area_um2 = tissue.area_um2(reader.mpp) if reader.mpp else None
    return {**tissue.describe(), "min_tile_fraction": settings.min_tissue,
            "area_mm2": area_um2 / 1e6 if area_um2 is not None else None}


def _assemble(reader, view, frame, tissue, journal, state, regions_total, schema, names, out_dir,
              settings, class_names, collected) -> List[str]:
    """Final files from the committed parts: built in .partial/, then renamed into place."""
    final = journal.folder / "final"
    final.mkdir(exist_ok=True)
    parts = region_part_paths(journal.folder, regions_total)
    built = {}
    built["geojson"] = assemble_geojson([g for g, _ in parts], final / names["geojson"],
                                        settings.gzip)
    qc = QcThumbnail(reader, frame, settings.thumbnail)
    assemble_parquet([p for _, p in parts], final / names["parquet"], schema, qc.draw)
    built["parquet"] = final / names["parquet"]
    built["qc"] = qc.save(final / names["qc"])
    if tissue.source != "all":  # nothing for a person to check
        tissue.save_png(final / names["tissue"], overwrite=True)
        built["tissue"] = final / names["tissue"]
    if collected is not None:
        built.update(_write_extras(collected, view, final, names, settings, class_names))
    for key, path in built.items():
        path.replace(out_dir / names[key])
    return list(built)


def _write_extras(nuclei, view, final: Path, names, settings, class_names) -> Dict[str, Path]:
    from .inference.export import (coco_results_json, export_label_image, export_overlay)
    from .inference.instances import Instances

    instances = Instances(np.array([n.score for n in nuclei]), np.array([n.label for n in nuclei]),
                          [n.crop for n in nuclei], None, view.height, view.width)
    out = {}
    if "labels" in settings.extras:
        path = export_label_image(final / "nuclei", instances, overwrite=True)
        names["labels"] = path.name
        out["labels"] = path
    if "overlay" in settings.extras:
        image = view.read(0, 0, view.width, view.height)
        out["overlay"] = export_overlay(final / names["overlay"], image, instances, overwrite=True)
    if "coco" in settings.extras:
        text = "[" + coco_results_json(instances, settings.coco_image_id) + "]"
        out["coco"] = atomic_write_bytes(final / names["coco"], text.encode(), overwrite=True)
    return out
