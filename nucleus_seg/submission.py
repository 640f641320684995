"""A checked CodaLab-style submission: COCO segm results validated against the test image list and
packed, byte for byte, as ``answer.json`` in a zip. ``tools/make_submission.py`` is its CLI."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import NamedTuple

from .fileio import atomic_write_bytes, check_writable
from .validation import Problem, ProblemsError, load_images_and_categories, load_results, validate_results

ANSWER_NAME = "answer.json"


class Submission(NamedTuple):
    """What :func:`make_submission` wrote: the zip, the detections in the results file, how many of
    them were submitted, and the number of images they are on."""
    path: Path
    detections: int
    submitted: int
    images: int


def make_submission(results_path, images_path, out_path, overwrite: bool = False, clean=None) -> Submission:
    """Validate ``results_path`` (COCO segm results) against ``images_path`` (a ``test_img_ids.json``
    list or a COCO test JSON, whose categories are then used) and write the zip ``out_path``.

    ``clean`` (a :class:`~nucleus_seg.calibration.CleanUp`): the submitted nuclei are the cleaned,
    non-overlapping output (score threshold, overlaps resolved by score, slivers and near-duplicates
    dropped); None submits the results file byte for byte (raw detections).

    Raises :class:`~nucleus_seg.validation.ProblemsError` listing every problem (nothing is written),
    or InputError for unreadable input or an existing ``out_path`` without ``overwrite``.
    """
    check_writable(out_path, overwrite)  # fail before the checks, not after
    images, categories = load_images_and_categories(images_path)
    results = load_results(results_path)
    problems = validate_results(results, images, categories, iou_type="segm", require_compressed_rle=True)
    if not results:
        problems.insert(0, Problem(None, "no results at all (empty list)"))
    if problems:
        raise ProblemsError(results_path, problems)
    if clean is None:
        raw = Path(results_path).read_bytes()  # submitted as given: nothing is re-serialised or fixed
        submitted = len(results)
    else:
        from .calibration import clean_results
        cleaned = clean_results(results, images, clean)
        raw, submitted = json.dumps(cleaned).encode("utf-8"), len(cleaned)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(ANSWER_NAME, raw)
    path = atomic_write_bytes(out_path, buf.getvalue(), overwrite=overwrite)
    return Submission(path, len(results), submitted, len({r["image_id"] for r in results}))


__all__ = ["ANSWER_NAME", "Submission", "make_submission"]
