#!/usr/bin/env python
"""Benchmark (not a test): memory and time of one training step per config on dense synthetic input.

    python benchmarks/bench_train_memory.py                      # every model config, both inputs
    python benchmarks/bench_train_memory.py --inputs tile --configs configs/nucleus/point-rend_*.py
    python benchmarks/bench_train_memory.py --device cuda --amp both   # where a GPU is present

Inputs: ``tile``, a 1000 x 1000 H&E-like tile with 1,000 nuclei (10-20 px ellipses); ``patch``, a
256 x 256 PanNuke-sized patch with 150 nuclei. Each goes through the config's own training pipeline
(polygons from the dataset, the x2 rescale with its random ratio pinned to 1, the crop where the
config has one, flips) ``--batch`` times (two different augmentations make a batch of 2) and
``model.train_step`` runs with the config's optimizer, from random initialisation (no checkpoint
is downloaded; a fine-tuned model proposes more positive RoIs than an untrained one, up to the
sampler's 1,024 per image).

Each (config, input, device, AMP) case runs in a fresh child process. Columns: image size and GT
nuclei per image after the pipeline; peak RSS of the process and its rise during the steps (CPU);
``torch.cuda.max_memory_allocated`` (GPU); positive RoIs the mask head ran on (both images; an
untrained RPN proposes few beyond the GT boxes); seconds per step: wall and CPU time of the last step
(the first also warms up; with ``--steps 1`` it is the only one). ``--threads`` sets torch's CPU
threads (default 1: on a shared machine more threads measure the neighbours' load). A child that
exceeds ``--max-gb`` of address space stops with a MemoryError and its row says so.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODEL_CONFIGS = [
    "configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py",
    "configs/nucleus/mask-rcnn_r50-caffe_fpn_ms-poly-3x_nucleus.py",
    "configs/nucleus/mask-rcnn_x101-32x8d_fpn_ms-poly-3x_nucleus.py",
    "configs/nucleus/cascade-mask-rcnn_r50-caffe_fpn_ms-3x_nucleus.py",
    "configs/nucleus/cascade-mask-rcnn_x101-32x4d_fpn_ms-3x_nucleus.py",
    "configs/nucleus/point-rend_r50-caffe_fpn_ms-3x_nucleus.py",
    "configs/nucleus/ms-rcnn_x101-32x4d_fpn_1x_nucleus.py",
]
INPUTS = {"tile": dict(size=1000, nuclei=1000), "patch": dict(size=256, nuclei=150)}


def write_dataset(root: Path, size: int, nuclei: int, classes) -> Path:
    """One image + COCO polygons (what NucleusCocoDataset hands the pipeline) under ``root``."""
    import cv2
    import numpy as np
    from synthetic_nuclei import ellipse_polygons, nucleus_layout, polygon_boxes
    centres, semi_axes = nucleus_layout(nuclei, size)
    rings = ellipse_polygons(centres, semi_axes)
    boxes = polygon_boxes(rings)
    rng = np.random.default_rng(0)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = (205, 170, 230)  # eosin-pink background (BGR)
    img = np.clip(img + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
    cv2.fillPoly(img, [np.round(r.reshape(-1, 2)).astype(np.int32) for r in rings], (140, 60, 70))
    (root / "train").mkdir(parents=True)
    cv2.imwrite(str(root / "train" / "tile.png"), img)
    anns = [dict(id=k + 1, image_id=1, category_id=1 + k % len(classes), iscrowd=0,
                 segmentation=[[float(v) for v in ring]], area=float(np.pi * a * b),
                 bbox=[float(x1), float(y1), float(x2 - x1), float(y2 - y1)])
            for k, (ring, (x1, y1, x2, y2), (a, b)) in enumerate(zip(rings, boxes, semi_axes))]
    coco = dict(images=[dict(id=1, file_name="tile.png", height=size, width=size)], annotations=anns,
                categories=[dict(id=k + 1, name=c) for k, c in enumerate(classes)])
    (root / "instance_train.json").write_text(json.dumps(coco))
    return root


def child(config: str, input_name: str, batch: int, device: str, amp: bool, steps: int,
          threads: int, max_gb: float) -> dict:
    import resource
    if max_gb > 0:
        limit = int(max_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import numpy as np
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    import nucleus_seg.register  # noqa: F401
    from nucleus_seg.config_utils import load_config
    from nucleus_seg.datasets import NucleusCocoDataset
    from peak_memory import peak_rss_bytes, reset_peak_rss

    torch.set_num_threads(threads)
    register_all_modules(init_default_scope=True)
    cfg = load_config(config)
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg = dataset_cfg.datasets[0] if dataset_cfg.type == "ConcatDataset" else dataset_cfg
    pipeline = dataset_cfg.pipeline
    for t in pipeline:
        if t.type == "RandomRescale":
            t.ratio_range = (1.0, 1.0)  # the nominal zoom, every run
    out = dict(config=Path(config).stem, input=input_name, batch=batch, device=device, amp=amp,
               threads=threads, crop=[tuple(t.crop_size) for t in pipeline if t.type == "RandomCrop"])
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp) / "data", **INPUTS[input_name],
                             classes=tuple(dataset_cfg.metainfo.classes))
        dataset = NucleusCocoDataset(data_root=str(root), ann_file="instance_train.json",
                                     data_prefix=dict(img="train/"), metainfo=dataset_cfg.metainfo,
                                     pipeline=pipeline)
        np.random.seed(0)
        data = pseudo_collate([dataset[0] for _ in range(batch)])
    out["image"] = list(data["data_samples"][0].img_shape)
    out["gt_per_image"] = [len(s.gt_instances) for s in data["data_samples"]]

    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device).train()
    optim_cfg = cfg.optim_wrapper
    if amp:
        optim_cfg.type, optim_cfg.loss_scale = "AmpOptimWrapper", "dynamic"
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    # Positive RoIs of the step (both images): what the (first) mask head is run on.
    mask_head = model.roi_head.mask_head
    mask_head = mask_head[0] if isinstance(mask_head, torch.nn.ModuleList) else mask_head
    positives = []
    mask_head.register_forward_hook(lambda module, args, output: positives.append(len(args[0])))
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        out["gpu_before_mb"] = torch.cuda.memory_allocated() / 2**20
    out["rss_before_mb"] = reset_peak_rss() / 2**20
    walls, cpus = [], []
    try:
        for _ in range(steps):
            wall, cpu = time.perf_counter(), time.process_time()
            losses = model.train_step(data, optim_wrapper)
            if cuda:
                torch.cuda.synchronize()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        out["loss"] = sum(float(torch.as_tensor(v).detach()) for k, v in losses.items() if "loss" in k)
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "alloc" not in str(exc).lower():
            raise
        # Where it ran out and how much it asked for (torch's message is long and says neither first).
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        asked = re.search(r"allocate (\d+) bytes", str(exc))
        out["error"] = (f"{type(exc).__name__} in {frame.name} ({Path(frame.filename).name}:{frame.lineno})"
                        + (f": could not allocate {int(asked.group(1)) / 2**30:.1f} GB more" if asked
                           else f": {str(exc).splitlines()[0][:120]}"))
    out["peak_rss_mb"] = peak_rss_bytes() / 2**20
    if cuda:
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if walls:
        out["wall_s"], out["cpu_s"], out["steps"] = walls[-1], cpus[-1], len(walls)
        out["positives"] = positives[-1] if positives else 0
    return out


def _row(r: dict) -> str:
    gt = "/".join(str(n) for n in r.get("gt_per_image", [])) or "-"
    image = "x".join(str(v) for v in r.get("image", [])) or "-"
    mem = (f"{r['gpu_peak_mb'] / 1024:.1f} GB GPU" if "gpu_peak_mb" in r
           else f"{r['peak_rss_mb'] / 1024:.1f} GB (+{(r['peak_rss_mb'] - r['rss_before_mb']) / 1024:.1f})")
    if "error" in r:
        return (f"| {r['config']} | {r['input']} | {image} | {gt} | {r['device']}{' AMP' if r['amp'] else ''} "
                f"| failed after {mem}: {r['error']} | | | |")
    return (f"| {r['config']} | {r['input']} | {image} | {gt} | {r['device']}{' AMP' if r['amp'] else ''} "
            f"| {mem} | {r.get('positives', '-')} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=MODEL_CONFIGS)
    p.add_argument("--inputs", nargs="+", choices=sorted(INPUTS), default=["tile", "patch"])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--amp", choices=["off", "on", "both"], default="off",
                   help="automatic mixed precision (CUDA only; 'both' runs each case twice)")
    p.add_argument("--steps", type=int, default=None, help="steps per case (default 1 on CPU, 3 on CUDA)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-gb", type=float, default=20.0,
                   help="address-space limit per child in GB (0: none; default 20)")
    p.add_argument("--out-json", help="also write the rows here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    steps = args.steps or (3 if args.device.startswith("cuda") else 1)
    if args.child:
        case = json.loads(args.child)
        print(json.dumps(child(**case)))
        return 0
    amps = {"off": [False], "on": [True], "both": [False, True]}[args.amp]
    if any(amps) and not args.device.startswith("cuda"):
        raise SystemExit("--amp needs --device cuda")
    configs = [c for pattern in args.configs for c in sorted(glob.glob(pattern, root_dir=REPO))]
    rows = []
    for config in configs:
        for input_name in args.inputs:
            for amp in amps:
                case = dict(config=config, input_name=input_name, batch=args.batch, device=args.device,
                            amp=amp, steps=steps, threads=args.threads, max_gb=args.max_gb)
                res = subprocess.run([sys.executable, __file__, "--child", json.dumps(case)], cwd=REPO,
                                     capture_output=True, text=True,
                                     env=dict(os.environ, PYTHONPATH=str(Path(__file__).parent)))
                if res.returncode != 0:
                    rows.append(dict(config=Path(config).stem, input=input_name, device=args.device,
                                     amp=amp, error=res.stderr.strip().splitlines()[-1][-200:],
                                     peak_rss_mb=0, rss_before_mb=0))
                else:
                    rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
                print(_row(rows[-1]), flush=True)
    import torch
    print(f"\ntorch {torch.__version__}, batch {args.batch}, {steps} step(s) per case, "
          f"{args.threads} CPU thread(s)")
    print("| config | input | image after pipeline | GT per image | device | peak memory (rise in step) "
          "| positive RoIs | wall s/step | CPU s/step |")
    print("|---|---|---|---|---|---|---:|---:|---:|")
    for r in rows:
        print(_row(r))
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
