"""Check COCO segm results against the test image list and pack them as ``answer.zip``.

    python tools/make_submission.py --results PREFIX.segm.json --images test_img_ids.json \
                                    --out answer.zip [--overwrite] [--max-problems 20]

``--images`` is a ``test_img_ids.json`` list of {file_name, id, height, width} or a COCO test JSON (whose
``categories`` are then used; otherwise the nucleus category table). Every result is checked (known
image_id, valid category_id, finite [x,y,w,h] bbox with w,h >= 0, score in [0,1], compressed RLE decodable
at the image's size). Any problem: they are listed (up to --max-problems, then a count), nothing is
written, exit status 2. Otherwise ``answer.zip`` holds ``answer.json``: the non-overlapping nuclei of the
results (score at least the threshold -- --score-thr, else --calibration's, else the calibration.json beside
--results, else 0.5, printed with its source -- each pixel to the highest score, slivers and near-duplicates
dropped), or with ``--raw`` the results file's bytes, unchanged. It is written atomically and an existing
file is kept unless --overwrite.
The work is done by :func:`nucleus_seg.submission.make_submission`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nucleus_seg.calibration import CleanUp, threshold_for_results  # noqa: E402
from nucleus_seg.errors import EXIT_BAD_INPUT, run_cli  # noqa: E402
from nucleus_seg.submission import ANSWER_NAME, make_submission  # noqa: E402
from nucleus_seg.validation import ProblemsError, limit_lines  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Validate COCO segm results and write answer.zip (answer.json).")
    ap.add_argument("--results", required=True, help="COCO segm results JSON (e.g. PREFIX.segm.json)")
    ap.add_argument("--images", required=True, help="test_img_ids.json or a COCO test JSON")
    ap.add_argument("--out", required=True, help="zip to write, e.g. answer.zip")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    ap.add_argument("--max-problems", type=int, default=20, help="list at most this many problems")
    ap.add_argument("--score-thr", type=float, default=None,
                    help="keep nuclei scoring at least this (default: calibrated, else 0.5)")
    ap.add_argument("--calibration", help="calibration.json or checkpoint whose threshold to use "
                                          "(default: calibration.json beside --results, if any)")
    ap.add_argument("--raw", action="store_true",
                    help="submit the raw detections (overlapping, every score) byte for byte")
    args = ap.parse_args(argv)
    clean = None
    if not args.raw:
        threshold = threshold_for_results(args.score_thr, args.calibration, args.results)
        print(threshold.describe())
        clean = CleanUp(threshold.value)
    try:
        out = make_submission(args.results, args.images, args.out, overwrite=args.overwrite, clean=clean)
    except ProblemsError as exc:
        for line in limit_lines(exc.problems, args.max_problems):
            print(f"error: {exc.path}: {line}", file=sys.stderr)
        print(f"error: {exc.path}: {len(exc.problems)} problem(s); nothing written", file=sys.stderr)
        return EXIT_BAD_INPUT
    if clean is None:
        print(f"wrote {out.path} ({ANSWER_NAME}: {out.detections} raw detections on {out.images} images)")
    else:
        print(f"wrote {out.path} ({ANSWER_NAME}: {out.submitted} of {out.detections} detections on "
              f"{out.images} images; {clean.describe()})")
    return 0


if __name__ == "__main__":
    run_cli(main)
