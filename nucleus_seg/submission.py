"""A checked CodaLab-style submission: COCO segm results validated against the test image list and
packed, byte for byte, as ``answer.json`` in a zip. ``tools/make_submission.py`` is its CLI."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from .fileio import atomic_write_bytes, check_writable
from .validation import Problem, ProblemsError, load_images_and_categories, load_results, validate_results

ANSWER_NAME = "answer.json"


def make_submission(results_path, images_path, out_path, overwrite: bool = False) -> Path:
    """Validate ``results_path`` (COCO segm results) against ``images_path`` (a ``test_img_ids.json``
    list or a COCO test JSON, whose categories are then used) and write the zip ``out_path``.

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
    raw = Path(results_path).read_bytes()  # submitted as given: nothing is re-serialised or fixed
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(ANSWER_NAME, raw)
    return atomic_write_bytes(out_path, buf.getvalue(), overwrite=overwrite)


__all__ = ["ANSWER_NAME", "make_submission"]
