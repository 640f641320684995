#!/usr/bin/env python
"""Benchmark (not a test): the MaxIoUAssigner step of a dense tile, IoU on the GPU or on the CPU.

    python benchmarks/bench_assigner.py [--gts 300 1000] [--max-gb 8]

For the two assigners of the nucleus configs (RPN: every anchor of the image; R-CNN: 2,000
proposals + the GT boxes, which mmdet adds as proposals) and nuclei counts ``--gts``, on a
1024 x 1024 training crop and on a whole 1000 px tile rescaled x2 (2000 x 2000), it times one
``assign`` with mmdet's ``BboxOverlaps2D`` and with ``ChunkedBboxOverlaps2D`` and records the peak
memory it allocates. Each case runs in a fresh child process; memory is the rise of the peak RSS
over the RSS before the call, which counts the same tensors the GPU path allocates (the GPU's
caching allocator rounds up to 2 MB blocks). A case whose predicted peak exceeds ``--max-gb`` is
not run (its prediction, from the measured bytes per (GT, prior) pair, is printed instead), and each
child runs under an address-space limit of ``--max-gb`` + 2 GB (a failed case is a row). With
CUDA available the GPU path is timed too, with ``torch.cuda.max_memory_allocated``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Measured here with bench_assigner.py itself (1 thread; 26M-262M pairs): the upstream peak is
# nine float32 intermediates per pair; the chunked one is the result plus one block.
UPSTREAM_BYTES_PER_PAIR = 36
CHUNKED_BYTES_PER_PAIR = 4

RPN = dict(type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
           match_low_quality=True, ignore_iof_thr=-1)
RCNN = dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
            match_low_quality=False, ignore_iof_thr=-1)
ANCHORS = dict(type="AnchorGenerator", scales=[8], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64])
PROPOSALS = 2000


def nucleus_boxes(n: int, size: int, seed: int = 0):
    """Boxes of ``n`` nuclei on a ``size`` px image at the configs' x2 zoom (20-40 px across)."""
    import torch
    from synthetic_nuclei import ellipse_polygons, nucleus_layout, polygon_boxes
    centres, semi_axes = nucleus_layout(n, size / 2, seed)
    boxes = polygon_boxes(ellipse_polygons(centres * 2, semi_axes * 2))
    return torch.tensor(boxes.clip(0, size), dtype=torch.float32)


def priors_for(stage: str, size: int, gt, device):
    import torch
    from mmdet.registry import TASK_UTILS
    if stage == "rpn":
        gen = TASK_UTILS.build(ANCHORS)
        sizes = [(-(-size // s), -(-size // s)) for s in ANCHORS["strides"]]
        return torch.cat(gen.grid_priors(sizes, device=device))
    # Proposals: jittered GT boxes and random boxes, then the GT boxes themselves.
    g = torch.Generator().manual_seed(0)
    picks = gt[torch.randint(len(gt), (PROPOSALS // 2,), generator=g)]
    jitter = picks + torch.randn(picks.shape, generator=g) * 4
    xy = torch.rand(PROPOSALS - len(jitter), 2, generator=g) * size
    wh = torch.rand(PROPOSALS - len(jitter), 2, generator=g) * 60 + 8
    rand = torch.cat([xy, xy + wh], 1)
    return torch.cat([jitter, rand, gt]).to(device)


def child(stage: str, size: int, n_gt: int, calculator: str, device: str, threads: int,
          max_gb: float) -> dict:
    import resource
    limit = int(max_gb * 2**30) + 2**31  # the case's budget plus torch's own address space
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import torch
    from mmengine.structures import InstanceData
    from mmdet.registry import TASK_UTILS
    from mmdet.utils import register_all_modules
    import nucleus_seg.register  # noqa: F401  ChunkedBboxOverlaps2D
    from peak_memory import peak_rss_bytes, reset_peak_rss

    register_all_modules()
    torch.set_num_threads(threads)
    gt = nucleus_boxes(n_gt, size)
    priors = priors_for(stage, size, gt, device)
    cfg = dict(RPN if stage == "rpn" else RCNN, iou_calculator=dict(type=calculator))
    assigner = TASK_UTILS.build(cfg)
    gts = InstanceData(bboxes=gt.to(device), labels=torch.zeros(n_gt, dtype=torch.long, device=device))
    # Warm-up on a few GT (first-call allocations and kernel loading are not the step's cost).
    assigner.assign(InstanceData(priors=priors[:1000]), gts[:3])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_gpu = torch.cuda.memory_allocated()
    base = reset_peak_rss()
    wall, cpu = time.perf_counter(), time.process_time()
    result = assigner.assign(InstanceData(priors=priors), gts)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    out = dict(stage=stage, size=size, gts=n_gt, priors=len(priors), calculator=calculator,
               device=device, wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu,
               peak_bytes=peak_rss_bytes() - base, positives=int((result.gt_inds > 0).sum()))
    if device.startswith("cuda"):
        out["peak_bytes"] = torch.cuda.max_memory_allocated() - base_gpu
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gts", type=int, nargs="+", default=[300, 1000])
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2000])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--max-gb", type=float, default=8.0,
                   help="do not run CPU cases predicted to need more than this (default 8)")
    p.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        stage, size, n_gt, calc, device, threads, max_gb = args.child
        print(json.dumps(child(stage, int(size), int(n_gt), calc, device, int(threads), float(max_gb))))
        return 0
    import torch
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for stage in ("rpn", "rcnn"):
        for size in args.sizes:
            for n_gt in args.gts:
                for calc, per_pair in (("BboxOverlaps2D", UPSTREAM_BYTES_PER_PAIR),
                                       ("ChunkedBboxOverlaps2D", CHUNKED_BYTES_PER_PAIR)):
                    for device in devices:
                        priors = (3 * sum((-(-size // s)) ** 2 for s in ANCHORS["strides"])
                                  if stage == "rpn" else PROPOSALS + n_gt)
                        predicted = per_pair * priors * n_gt
                        if device == "cpu" and predicted > args.max_gb * 2**30:
                            rows.append(dict(stage=stage, size=size, gts=n_gt, priors=priors,
                                             calculator=calc, device=device, predicted=predicted))
                            continue
                        cmd = [sys.executable, __file__, "--child", stage, str(size), str(n_gt), calc,
                               device, str(args.threads), str(args.max_gb)]
                        res = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parent)
                        if res.returncode != 0:  # e.g. killed by the OOM killer: a row, not the end
                            error = (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])
                            rows.append(dict(stage=stage, size=size, gts=n_gt, priors=priors,
                                             calculator=calc, device=device, error=error[-1][:120]))
                        else:
                            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
                        print(json.dumps(rows[-1]), flush=True)
    print(f"MaxIoUAssigner.assign, torch {torch.__version__}, {args.threads} CPU thread(s)")
    print("| stage | image | priors | GT | IoU calculator | device | peak MB | bytes/pair | CPU s | wall s |")
    print("|---|---|---:|---:|---|---|---:|---:|---:|---:|")
    for r in rows:
        pairs = r["priors"] * r["gts"]
        head = (f"| {r['stage']} | {r['size']}² | {r['priors']:,} | {r['gts']:,} | {r['calculator']} "
                f"| {r['device']} ")
        if "error" in r:
            print(head + f"| failed: {r['error']} | | | |")
        elif "predicted" in r:
            print(head + f"| ~{r['predicted'] / 2**20:,.0f} (predicted, not run) | "
                  f"{r['predicted'] / pairs:.0f} | | |")
        else:
            print(head + f"| {r['peak_bytes'] / 2**20:,.0f} | {r['peak_bytes'] / pairs:.1f} "
                  f"| {r['cpu_s']:.2f} | {r['wall_s']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
