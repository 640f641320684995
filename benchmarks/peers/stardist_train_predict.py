"""Train StarDist 2D from scratch for a wall-clock budget, optimise its thresholds, predict the test tiles.

Runs inside the separate StarDist environment (benchmarks/peers/setup_stardist.sh), never in the
project's: it only needs stardist/csbdeep/TensorFlow and numpy. benchmarks/bench_peer_stardist.py
writes the input file and reads the output file; nothing else passes between the two environments.

    python stardist_train_predict.py --data tiles.npz --out pred.npz --budget 600 [--reserve 60]

Input ``tiles.npz``: ``{split}_img_{i}`` RGB uint8 (H, W, 3) and ``{split}_lab_{i}`` int32 label maps
for split in train/val, ``test_img_{i}`` for the held-out tiles. Output ``pred.npz``: ``lab_{i}`` (int32
label map of test tile i) and ``prob_{i}`` (``prob_{i}[k - 1]`` is the object probability of label k),
plus ``pred.json`` beside it with the timings and the chosen thresholds.

Settings follow StarDist's own 2D H&E recipe (its README/example notebooks and the 2D_versatile_he
model): 32 rays, grid (2, 2), 3 input channels, U-Net defaults, batch 4, images normalised jointly over
the channels to the 1st-99.8th percentile. Patch 256 x 256: the largest multiple of 16 (what the
U-Net's 3 poolings x grid 2 require) that fits the 320 x 256 tiles. Everything else is StarDist's
default, as a new user would leave it.

The budget: training stops when ``budget - reserve`` seconds have passed since training started
(checked after every batch), then ``optimize_thresholds`` runs on the validation tiles with its
default grid, as StarDist's examples do; the JSON records how long each part took, so the total can
be compared with the budget.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="input .npz written by bench_peer_stardist.py")
    p.add_argument("--out", required=True, help="output .npz of test label maps (+ .json of timings)")
    p.add_argument("--budget", type=float, default=600, help="seconds for training + threshold optimisation")
    p.add_argument("--reserve", type=float, default=60,
                   help="seconds of the budget kept for optimize_thresholds (training stops at budget - reserve)")
    p.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-dir", help="where StarDist keeps its weights (default: beside --out)")
    return p.parse_args(argv)


def load_split(npz, split: str, with_labels: bool):
    images, labels, i = [], [], 0
    while f"{split}_img_{i}" in npz:
        images.append(npz[f"{split}_img_{i}"])
        if with_labels:
            labels.append(npz[f"{split}_lab_{i}"])
        i += 1
    return images, labels


def dihedral_and_stain_jitter(rng):
    """Augmenter for StarDist's generator: one of the 8 flips/90-degree turns (tissue has no
    orientation), mild per-patch contrast/brightness change and a little noise on the normalised
    image. Milder than the fluorescence example's x0.6-x2 intensity range, which washes out H&E."""
    import numpy as np

    def augment(x, y):
        k = int(rng.integers(4))
        x, y = np.rot90(x, k, axes=(0, 1)), np.rot90(y, k, axes=(0, 1))
        if rng.random() < 0.5:
            x, y = x[:, ::-1], y[:, ::-1]
        x = x * rng.uniform(0.85, 1.15) + rng.uniform(-0.1, 0.1)
        x = x + rng.normal(0, 0.02 * rng.random(), x.shape)
        return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y)

    return augment


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from csbdeep.utils import normalize
    from stardist import fill_label_holes
    from stardist.models import Config2D, StarDist2D

    np.random.seed(args.seed)
    tf.random.set_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    npz = np.load(args.data)
    x_train, y_train = load_split(npz, "train", True)
    x_val, y_val = load_split(npz, "val", True)
    x_test, _ = load_split(npz, "test", False)

    def norm(x):
        return normalize(x.astype(np.float32), 1, 99.8, axis=(0, 1, 2))

    x_train, x_val, x_test = ([norm(x) for x in xs] for xs in (x_train, x_val, x_test))
    y_train = [fill_label_holes(y) for y in y_train]
    y_val = [fill_label_holes(y) for y in y_val]

    conf = Config2D(n_rays=32, grid=(2, 2), n_channel_in=3, train_patch_size=(256, 256),
                    use_gpu=False, train_epochs=100000)
    model_dir = args.model_dir or os.path.splitext(args.out)[0] + "_model"
    model = StarDist2D(conf, name=os.path.basename(model_dir), basedir=os.path.dirname(model_dir) or ".")

    class StopAtDeadline(tf.keras.callbacks.Callback):
        """Ends training after the batch during which the deadline passed."""

        def __init__(self, deadline: float):
            super().__init__()
            self.deadline = deadline
            self.steps = 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if time.monotonic() >= self.deadline:
                self.model.stop_training = True

    model.prepare_for_training()  # builds StarDist's callbacks; ours is added after them
    t_train = time.monotonic()
    stopper = StopAtDeadline(t_train + args.budget - args.reserve)
    model.callbacks.append(stopper)
    history = model.train(x_train, y_train, validation_data=(x_val, y_val),
                          augmenter=dihedral_and_stain_jitter(rng), seed=args.seed)
    t_opt = time.monotonic()
    thresholds = model.optimize_thresholds(x_val, y_val)
    t_done = time.monotonic()

    arrays = {}
    t_pred = time.monotonic()
    for i, x in enumerate(x_test):
        labels, details = model.predict_instances(x)
        arrays[f"lab_{i}"] = labels.astype(np.int32)
        arrays[f"prob_{i}"] = np.asarray(details["prob"], dtype=np.float32)
    t_pred_done = time.monotonic()
    # Written to temporary names and renamed: the driver treats an existing file as a finished run.
    tmp = args.out + ".tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, args.out)
    info = {"train_s": t_opt - t_train, "thresholds_s": t_done - t_opt,
            "total_s": t_done - t_train, "budget_s": args.budget, "reserve_s": args.reserve,
            "steps": stopper.steps, "epochs": len(history.history.get("loss", [])),
            "thresholds": {k: float(v) for k, v in dict(thresholds).items()},
            "predict_test_s": t_pred_done - t_pred, "n_train": len(x_train), "n_val": len(x_val),
            "n_test": len(x_test), "threads": args.threads,
            "config": {"n_rays": 32, "grid": [2, 2], "n_channel_in": 3, "train_patch_size": [256, 256],
                       "train_batch_size": conf.train_batch_size,
                       "train_steps_per_epoch": conf.train_steps_per_epoch}}
    info_path = os.path.splitext(args.out)[0] + ".json"
    with open(info_path + ".tmp", "w") as f:
        json.dump(info, f, indent=1)
    os.replace(info_path + ".tmp", info_path)
    print(json.dumps(info), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
