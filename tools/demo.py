#!/usr/bin/env python
"""End-to-end demo on the bundled DSB H&E sample, CPU only, no download.

    python tools/demo.py [--time-budget 600] [--out work_dirs/demo] [--fresh]

Runs the same commands a user would (each is printed before it runs):
convert masks -> split train/val -> convert the unlabeled test tiles with their fixed ids -> train the
CPU-sized Mask R-CNN for a bounded time -> evaluate on val (COCO AP at 1,000 detections, AJI, PQ,
Dice) with overlay PNGs -> format-only results on the test tiles -> checked answer.zip -> tiled
inference with GeoJSON + overlays. A step whose outputs exist is skipped, so a second run is quick and
changes nothing; ``--fresh`` moves the old demo folder aside (nothing is deleted) and starts over.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nucleus_seg.errors import InputError, run_cli  # noqa: E402

SAMPLE = Path("data/sample/dsb2018_he")
CONFIG = "configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py"
SHOWN = [("coco/segm_mAP", "segm AP (maxDets 1000)"), ("coco/segm_mAP_50", "segm AP50 (maxDets 1000)"),
         ("coco/segm_mAP_75", "segm AP75 (maxDets 1000)"), ("coco/segm_mAP@100", "segm AP (maxDets 100)"),
         ("coco/bbox_mAP", "bbox AP (maxDets 1000)"), ("coco/bbox_mAP@100", "bbox AP (maxDets 100)"),
         ("nucleus/AJI", "AJI"), ("nucleus/AJI_plus", "AJI+"), ("nucleus/PQ", "PQ"), ("nucleus/DQ", "DQ"),
         ("nucleus/SQ", "SQ"), ("nucleus/F1", "F1 (IoU > 0.5)"), ("nucleus/Dice", "Dice (foreground)")]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="work_dirs/demo", help="demo folder (default: work_dirs/demo)")
    p.add_argument("--time-budget", type=float, default=600,
                   help="training wall time in seconds (default: 600)")
    p.add_argument("--fresh", action="store_true",
                   help="move an existing demo folder aside (to <out>.old-<time>) and start over")
    return p.parse_args(argv)


def step(title: str, cmd, outputs) -> None:
    """Run one tool as a user would, unless all its outputs already exist."""
    outputs = [Path(o) for o in outputs]
    print(f"\n== {title}")
    if outputs and all(o.exists() for o in outputs):
        print(f"   done already: {', '.join(map(str, outputs))}")
        return
    print("   $ " + " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    start = time.monotonic()
    res = subprocess.run([sys.executable, *map(str, cmd)], cwd=REPO)
    if res.returncode != 0:
        raise InputError(cmd[0], f"demo step '{title}' failed with exit status {res.returncode}")
    print(f"   ({time.monotonic() - start:.0f}s)")


def link(path: Path, target: Path) -> None:
    """``path`` -> ``target`` as a relative symlink (the config expects <root>/train, <root>/test)."""
    if path.is_symlink() or path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(os.path.relpath(REPO / target, (REPO / path).parent))


def last_checkpoint(work_dir: Path):
    marker = REPO / work_dir / "last_checkpoint"
    if not marker.is_file():
        return None
    ckpt = Path(marker.read_text().strip())
    return ckpt if ckpt.is_file() else None


def main(argv=None) -> int:
    args = parse_args(argv)
    os.chdir(REPO)
    if not (SAMPLE / "train").is_dir():
        raise InputError(SAMPLE, "bundled sample missing (is this a full checkout?)")
    out = Path(args.out)
    if args.fresh and out.exists():
        aside = out.with_name(f"{out.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        out.rename(aside)
        print(f"moved the previous demo to {aside}")
    data, ann = out / "data", out / "data" / "annotations"
    link(data / "train", SAMPLE / "train")
    link(data / "test", SAMPLE / "test")
    started = time.monotonic()

    step("1. masks -> COCO, deterministic 75/25 train/val split",
         ["converters/mask2coco.py", SAMPLE / "train", "--out-dir", ann, "--val-ratio", "0.25",
          "--seed", "0", "--validate"],
         [ann / "instance_train.json", ann / "instance_val.json"])
    step("2. unlabeled test tiles -> COCO with the fixed ids of test_img_ids.json",
         ["converters/images2coco.py", SAMPLE / "test", "--ids", SAMPLE / "test_img_ids.json",
          "--out", ann / "instance_test.json"],
         [ann / "instance_test.json"])

    train_dir = out / "train"
    ckpt = last_checkpoint(train_dir)
    if ckpt is None:
        step(f"3. train the CPU-sized Mask R-CNN from scratch for {args.time_budget:.0f}s",
             ["tools/train.py", CONFIG, "--data-root", data, "--work-dir", train_dir,
              "--time-budget", args.time_budget, "--no-validate", "--seed", "0"], [])
        ckpt = last_checkpoint(train_dir)
        if ckpt is None:
            raise InputError(train_dir, "training finished without a checkpoint")
    else:
        print(f"\n== 3. train: done already ({ckpt})")

    metrics_file = out / "val_metrics.json"
    step("4. evaluate on val: COCO AP at 1,000 and 100 detections + AJI / PQ / Dice on label maps, overlays",
         ["tools/test.py", CONFIG, ckpt, "--data-root", data, "--eval", "segm", "bbox",
          "--out-prefix", out / "val", "--out-metrics", metrics_file,
          "--show-dir", out / "overlays_val", "--work-dir", out / "test_logs"],
         [metrics_file, Path(f"{out / 'val'}.segm.json")])
    step("5. format-only results on the unlabeled test tiles",
         ["tools/test.py", CONFIG, ckpt, "--format-only", "--ann-file", ann / "instance_test.json",
          "--img-dir", data / "test", "--out-prefix", out / "test", "--work-dir", out / "test_logs"],
         [Path(f"{out / 'test'}.segm.json"), Path(f"{out / 'test'}.bbox.json")])
    step("6. checked submission answer.zip",
         ["tools/make_submission.py", "--results", f"{out / 'test'}.segm.json",
          "--images", SAMPLE / "test_img_ids.json", "--out", out / "answer.zip"],
         [out / "answer.zip"])
    step("7. tiled inference on the test tiles: GeoJSON for QuPath, label PNGs, overlays",
         ["tools/infer.py", CONFIG, ckpt, SAMPLE / "test", "--out", out / "infer",
          "--format", "geojson", "labels", "overlay", "coco", "--tile", "256", "--overlap", "64",
          "--no-progress"],
         [out / "infer"])

    scores = json.loads(metrics_file.read_text())
    n_val = len(json.loads((ann / "instance_val.json").read_text())["images"])
    results = json.loads(Path(f"{out / 'test'}.segm.json").read_text())
    print(f"\n== Scores on the {n_val} validation tiles (model trained {args.time_budget:.0f}s on CPU)")
    for line in scores.get("evaluation", []):
        print(f"   {line}")
    for key, label in SHOWN:
        value = scores.get(key)
        print(f"   {label:<24} {'n/a' if value is None else f'{value:.3f}'}")
    print(f"\n== Outputs ({time.monotonic() - started:.0f}s this run)")
    for label, path in [("checkpoint", ckpt), ("val metrics", metrics_file),
                        ("val overlays", out / "overlays_val"),
                        ("test results", f"{out / 'test'}.segm.json ({len(results)} nuclei)"),
                        ("submission", out / "answer.zip"), ("inference exports", out / "infer")]:
        print(f"   {label:<18} {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
