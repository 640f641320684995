"""Check COCO segm results against the test image list and pack them as ``answer.zip``.

    python tools/make_submission.py --results PREFIX.segm.json --images test_img_ids.json \
                                    --out answer.zip [--overwrite] [--max-problems 20]

``--images`` is a ``test_img_ids.json`` list of {file_name, id, height, width} or a COCO test JSON (whose
``categories`` are then used; otherwise the nucleus category table). Every result is checked (known
image_id, valid category_id, finite [x,y,w,h] bbox with w,h >= 0, score in [0,1], compressed RLE decodable
at the image's size). Any problem: they are listed (up to --max-problems, then a count), nothing is
written, exit status 2. Otherwise ``answer.zip`` holds exactly ``answer.json`` = the results file's
bytes, unchanged; it is written atomically and an existing file is kept unless --overwrite.
"""
from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nucleus_seg.errors import EXIT_BAD_INPUT, InputError, run_cli  # noqa: E402
from nucleus_seg.fileio import atomic_write_bytes, check_writable  # noqa: E402
from nucleus_seg.results import (Problem, format_problems, load_images_and_categories, load_results,  # noqa: E402
                             validate_results)

ANSWER_NAME = "answer.json"


class InvalidResults(InputError):
    """The results file has problems; ``problems`` lists all of them."""

    def __init__(self, path, problems: List[Problem]):
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "invalid"
        more = f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
        super().__init__(path, f"{first}{more}")


def make_submission(results_path, images_path, out_path, overwrite: bool = False) -> Path:
    """Validate ``results_path`` (COCO segm results) and write ``out_path`` zip with ``answer.json``.

    Raises :class:`InvalidResults` (an InputError) listing every problem, or InputError for unreadable
    input or an existing ``out_path`` without ``overwrite``.
    """
    check_writable(out_path, overwrite)  # fail before the checks, not after
    images, categories = load_images_and_categories(images_path)
    results = load_results(results_path)
    problems = validate_results(results, images, categories, iou_type="segm", require_compressed_rle=True)
    if not results:
        problems.insert(0, Problem(None, None, "no results at all (empty list)"))
    if problems:
        raise InvalidResults(results_path, problems)
    raw = Path(results_path).read_bytes()  # submitted as given: nothing is re-serialised or fixed
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(ANSWER_NAME, raw)
    return atomic_write_bytes(out_path, buf.getvalue(), overwrite=overwrite)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Validate COCO segm results and write answer.zip (answer.json).")
    ap.add_argument("--results", required=True, help="COCO segm results JSON (e.g. PREFIX.segm.json)")
    ap.add_argument("--images", required=True, help="test_img_ids.json or a COCO test JSON")
    ap.add_argument("--out", required=True, help="zip to write, e.g. answer.zip")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    ap.add_argument("--max-problems", type=int, default=20, help="list at most this many problems")
    args = ap.parse_args(argv)
    try:
        out = make_submission(args.results, args.images, args.out, overwrite=args.overwrite)
    except InvalidResults as exc:
        for line in format_problems(exc.problems, args.max_problems):
            print(f"error: {args.results}: {line}", file=sys.stderr)
        print(f"error: {args.results}: {len(exc.problems)} problem(s); nothing written", file=sys.stderr)
        return EXIT_BAD_INPUT
    results = load_results(args.results)
    n_images = len({r["image_id"] for r in results})
    print(f"wrote {out} ({ANSWER_NAME}: {len(results)} results on {n_images} images)")
    return 0


if __name__ == "__main__":
    run_cli(main)
