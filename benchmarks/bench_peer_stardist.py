"""Benchmark (not a test): the CPU-sized Mask R-CNN against StarDist 2D at an equal wall-clock budget.

    bash benchmarks/peers/setup_stardist.sh                       # once: StarDist's own venv (optional peer)
    .venv/bin/python benchmarks/bench_peer_stardist.py [--budget 600] [--out work_dirs/bench_peer_stardist]

Both models train from scratch on the same tiles of the fixed split benchmarks/peers/dsb2018_he_split.json
(46 train / 6 val / 12 held-out test of the 64 shared DSB 2018 H&E tiles), each for the same budget,
one after the other while holding /tmp/nucleus-bench.lock (so no other timed benchmark overlaps):

* ours: tools/train.py on configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py with --time-budget
  (budget - reserve), then its threshold choice on the val tiles;
* StarDist 0.9.2 (benchmarks/peers/stardist_train_predict.py in its own venv): training stops at
  (budget - reserve), then ``optimize_thresholds`` on the same val tiles.

Then both predict the 12 test tiles and one scorer, tools/evaluate.py, scores both results files
against the same GT: AP@1000 over the raw ranked list, PQ/DQ/SQ/AJI over each model's output
instances. The table is printed and written to <out>/table.md; every intermediate file stays in <out>,
and a step whose output exists is not run again (delete the file, or use another --out, to redo it).
Figures depend on the machine: the README's were measured on a shared 2-core CPU machine.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nucleus_seg.errors import InputError, run_cli  # noqa: E402
from nucleus_seg.fileio import atomic_write_json, atomic_write_text, load_json  # noqa: E402

SPLIT_FILE = REPO / "benchmarks/peers/dsb2018_he_split.json"
CONFIG = "configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py"
STARDIST_SCRIPT = REPO / "benchmarks/peers/stardist_train_predict.py"
SETUP_STARDIST = REPO / "benchmarks/peers/setup_stardist.sh"
COLUMNS = [("AP@1000", "coco", "segm_mAP"), ("AP50", "coco", "segm_mAP_50"), ("PQ", "summary", "PQ"),
           ("DQ", "summary", "DQ"), ("SQ", "summary", "SQ"), ("AJI", "summary", "AJI")]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared/data/dsb2018_he"),
                   help="DSB H&E folder with train/<id>/ (default: ../shared/data/dsb2018_he)")
    p.add_argument("--out", default="work_dirs/bench_peer_stardist", help="benchmark folder")
    p.add_argument("--budget", type=float, default=600,
                   help="seconds per model for training + threshold choice (default 600)")
    p.add_argument("--reserve", type=float, default=60,
                   help="seconds of the budget left for the threshold choice: training stops at budget - reserve")
    p.add_argument("--models", nargs="+", choices=["ours", "stardist"], default=["ours", "stardist"])
    p.add_argument("--stardist-python",
                   help="python of the StarDist venv (default: run benchmarks/peers/setup_stardist.sh and use its)")
    p.add_argument("--lock", default="/tmp/nucleus-bench.lock",
                   help="lock file held while the models train, so timed runs never overlap")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides for our model (train, calibration and test), e.g. for recipe experiments")
    return p.parse_args(argv)


def show(cmd) -> str:
    return " ".join(shlex.quote(str(c)) for c in cmd)


def run(cmd, log: Path, env=None) -> float:
    """Run a command with its output in ``log`` (and echoed); seconds it took."""
    print(f"   $ {show(cmd)}", flush=True)
    start = time.monotonic()
    with open(log, "a") as f:
        f.write(f"$ {show(cmd)}\n")
        f.flush()
        res = subprocess.run([str(c) for c in cmd], cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                             env={**os.environ, **(env or {})})
    if res.returncode != 0:
        tail = "".join(open(log).readlines()[-5:]).strip().replace("\n", " | ")
        raise InputError(log, f"{Path(str(cmd[1])).name} failed with exit status {res.returncode}: {tail}")
    return time.monotonic() - start


@contextmanager
def bench_lock(path: str):
    with open(path, "a") as f:
        print(f"== waiting for {path} (other timed benchmarks)", flush=True)
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- data
def prepare_data(data_root: Path, out: Path) -> dict:
    """COCO files of the split under <out>/data/annotations, <out>/data/train -> the shared tiles."""
    from nucleus_seg.converters.dsb import convert_dsb
    from nucleus_seg.converters.split import subset_coco

    split = load_json(SPLIT_FILE)
    train_root = data_root / "train"
    ann_dir = out / "data" / "annotations"
    files = {name: ann_dir / f"instance_{name}.json" for name in ("train", "val", "test")}
    link = out / "data" / "train"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(train_root.resolve())
    if all(f.exists() for f in files.values()):
        return files
    missing = [n for part in ("train", "val", "test") for n in split[part] if not (train_root / n).is_dir()]
    if missing:
        raise InputError(train_root, f"{len(missing)} tile(s) of {SPLIT_FILE.name} missing, e.g. {missing[0]}")
    coco, _, samples = convert_dsb([train_root], progress=False)
    id_of = {s.sample_id: s.image_id for s in samples}
    for name, path in files.items():
        part = subset_coco(coco, [id_of[n] for n in split[name]])
        atomic_write_json(path, part)
        print(f"   {path}: {len(part['images'])} tiles, {len(part['annotations'])} nuclei")
    return files


def stardist_tiles(files: dict, out: Path) -> Path:
    """The split as arrays for the StarDist environment: RGB tiles and GT label maps."""
    import numpy as np

    from nucleus_seg.geometry import decode_segmentation
    from nucleus_seg.image_io import read_image

    path = out / "stardist" / "tiles.npz"
    if path.exists():
        return path
    arrays = {}
    for name in ("train", "val", "test"):
        coco = load_json(files[name])
        by_image = {}
        for ann in coco["annotations"]:
            by_image.setdefault(ann["image_id"], []).append(ann)
        for i, info in enumerate(coco["images"]):
            arrays[f"{name}_img_{i}"] = read_image(out / "data" / "train" / info["file_name"])
            if name == "test":
                continue  # StarDist never sees the test labels
            labels = np.zeros((info["height"], info["width"]), np.int32)
            for k, ann in enumerate(by_image.get(info["id"], []), start=1):
                labels[decode_segmentation(ann["segmentation"], info["height"], info["width"]) > 0] = k
            arrays[f"{name}_lab_{i}"] = labels
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


def label_maps_to_results(pred_npz: Path, test_json: Path, out_json: Path) -> Path:
    """StarDist's test label maps -> COCO results, each nucleus scored by its object probability."""
    import numpy as np

    from nucleus_seg.inference.export import to_coco_results
    from nucleus_seg.geometry import MaskCrop
    from nucleus_seg.inference.instances import Instances

    if out_json.exists():
        return out_json
    pred = np.load(pred_npz)
    results = []
    for i, info in enumerate(load_json(test_json)["images"]):
        labels, prob = pred[f"lab_{i}"], pred[f"prob_{i}"]
        ids = [k for k in np.unique(labels) if k]
        crops = [MaskCrop.from_mask(labels == k) for k in ids]
        instances = Instances(prob[np.asarray(ids, dtype=np.int64) - 1], np.zeros(len(ids)), crops,
                              None, info["height"], info["width"])
        results += to_coco_results(instances, info["id"])
    atomic_write_json(out_json, results)
    return out_json


# ----------------------------------------------------------------------------- models
def last_checkpoint(work_dir: Path):
    marker = work_dir / "last_checkpoint"
    if not marker.is_file():
        return None
    ckpt = Path(marker.read_text().strip())
    return ckpt if ckpt.is_file() else None


def train_ours(args, out: Path) -> dict:
    work = out / "ours"
    timing = work / "timing.json"
    if timing.exists():
        return load_json(timing)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    options = ["--cfg-options", *args.cfg_options] if args.cfg_options else []
    # Calibration is timed on its own (train.py would otherwise run it at the end, inside train_s).
    train_s = run([sys.executable, "tools/train.py", CONFIG, "--data-root", out / "data", "--work-dir", work,
                   "--time-budget", args.budget - args.reserve, "--no-validate", "--no-calibrate",
                   "--seed", args.seed, *options], log)
    ckpt = last_checkpoint(work)
    if ckpt is None:
        raise InputError(work, "training finished without a checkpoint")
    thresholds_s = run([sys.executable, "tools/test.py", CONFIG, ckpt, "--calibrate", "--data-root", out / "data",
                        "--work-dir", work / "calibrate_logs", *options], log)
    calib = load_json(work / "calibration.json")
    iters = int(ckpt.stem.split("_")[-1]) if ckpt.stem.startswith("iter_") else None
    info = {"checkpoint": str(ckpt), "iterations": iters, "train_s": train_s, "thresholds_s": thresholds_s,
            "calibration": calib, "cfg_options": args.cfg_options}
    atomic_write_json(timing, info, indent=1)
    return info


def predict_ours(info: dict, files: dict, out: Path) -> Path:
    prefix = out / "ours" / "test"
    segm = Path(f"{prefix}.segm.json")
    if not segm.exists():
        options = ["--cfg-options", *info["cfg_options"]] if info.get("cfg_options") else []
        run([sys.executable, "tools/test.py", CONFIG, info["checkpoint"], "--format-only",
             "--ann-file", files["test"], "--img-dir", out / "data" / "train", "--out-prefix", prefix,
             "--work-dir", out / "ours" / "test_logs", *options], out / "ours" / "log.txt")
    return segm


def stardist_python(args) -> str:
    if args.stardist_python:
        return args.stardist_python
    res = subprocess.run(["bash", str(SETUP_STARDIST)], stdout=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise InputError(SETUP_STARDIST, "could not set up the StarDist environment (see its messages above)")
    return res.stdout.strip().splitlines()[-1]


def train_stardist(args, python: str, tiles: Path, out: Path) -> dict:
    pred = out / "stardist" / "pred.npz"
    info_file = pred.with_suffix(".json")
    if not (pred.exists() and info_file.exists()):
        run([python, STARDIST_SCRIPT, "--data", tiles, "--out", pred, "--budget", args.budget,
             "--reserve", args.reserve, "--seed", args.seed, "--threads", 2], out / "stardist" / "log.txt")
    return load_json(info_file)


# ----------------------------------------------------------------------------- scoring
def score(gt: Path, pred: Path, out_json: Path, *options) -> dict:
    if not out_json.exists():
        run([sys.executable, "tools/evaluate.py", "--gt", gt, "--pred", pred, "--out-json", out_json, *options],
            out_json.with_suffix(".log"))
    return load_json(out_json)


def table(rows) -> str:
    head = ["model", *[c[0] for c in COLUMNS], "train s", "threshold s", "threshold"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, scores, info in rows:
        cells = [name] + [f"{scores[sec][key]:.3f}" if scores[sec].get(key) is not None else "n/a"
                          for _, sec, key in COLUMNS]
        cells += [f"{info['train_s']:.0f}", f"{info['thresholds_s']:.0f}", info["threshold"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.chdir(REPO)
    out = Path(args.out)
    data_root = Path(args.data)
    if not (data_root / "train").is_dir():
        raise InputError(data_root, "no train/ folder (the shared DSB H&E tiles)")
    if not 0 <= args.reserve < args.budget:
        raise InputError(None, f"--reserve must be in [0, --budget), got {args.reserve}")
    out.mkdir(parents=True, exist_ok=True)
    print("== data: fixed split", SPLIT_FILE.relative_to(REPO))
    files = prepare_data(data_root, out)
    python = stardist_python(args) if "stardist" in args.models else None
    tiles = stardist_tiles(files, out) if python else None

    infos = {}
    with bench_lock(args.lock):
        for model in args.models:
            print(f"== {model}: train for {args.budget - args.reserve:.0f}s + thresholds "
                  f"(budget {args.budget:.0f}s)", flush=True)
            infos[model] = train_ours(args, out) if model == "ours" else train_stardist(args, python, tiles, out)
    rows = []
    if "ours" in infos:
        info = infos["ours"]
        segm = predict_ours(info, files, out)
        # evaluate.py finds the calibration.json beside the results (the work dir) by itself.
        scores = score(files["test"], segm, out / "ours" / "test_scores.json")
        calib = info["calibration"]
        info["threshold"] = (f"score >= {scores['settings']['score_thr']:g} (calibrated: val PQ "
                             f"{calib['PQ']:.3f}, {calib['PQ_at_default']:.3f} at 0.5; {info['iterations']} iterations)")
        rows.append(("this project (CPU config)", scores, info))
    if "stardist" in infos:
        info = infos["stardist"]
        segm = label_maps_to_results(out / "stardist" / "pred.npz", files["test"], out / "stardist" / "test.segm.json")
        # The label maps already hold StarDist's chosen prob threshold and do not overlap: score every
        # nucleus in them as it is.
        scores = score(files["test"], segm, out / "stardist" / "test_scores.json", "--score-thr", 0, "--raw")
        th = info["thresholds"]
        info["threshold"] = f"prob >= {th['prob']:.3f}, nms {th['nms']:g} (optimize_thresholds)"
        rows.append(("StarDist 0.9.2", scores, info))
    n_gt = rows[0][1]["summary"].get("n_gt") if rows else 0
    text = (f"Held-out test: {len(load_json(files['test'])['images'])} tiles, {n_gt} nuclei; budget "
            f"{args.budget:.0f}s per model (training stops at {args.budget - args.reserve:.0f}s); "
            f"scored by tools/evaluate.py (AP@1000 on the raw ranked list, PQ/DQ/SQ/AJI on the output "
            f"instances)\n\n" + table(rows) + "\n")
    atomic_write_text(out / "table.md", text, overwrite=True)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    run_cli(main)
