"""Colour-coded synthetic slides and the stand-in predictor that reads them back, for slide tests
and benchmarks.

Every nucleus is painted in its own colour (R = 50 marks a nucleus pixel, G * 256 + B is its id) on
flat pink tissue and white glass. The predictor finds each id's pixels in a tile, so it needs only
the pixels - like a model - and works through reader processes, any slide format with lossless
compression, and resampling (an area-averaged edge pixel mixes colours and is not read back; the
pure interior is). ``NUCLEUS_SEG_TEST_KILL_AFTER=N`` makes it SIGKILL its own process after N tiles,
to test resuming.
"""
from __future__ import annotations

import os
import signal

import cv2
import numpy as np

from nucleus_seg.geometry import MaskCrop
from nucleus_seg.inference import Instances

NUCLEUS_RED = 50
PINK = (225, 160, 200)
KILL_ENV = "NUCLEUS_SEG_TEST_KILL_AFTER"


def nucleus_colour(nucleus_id: int):
    return (NUCLEUS_RED, (nucleus_id >> 8) & 255, nucleus_id & 255)


def colour_slide(width: int, height: int, tissue, radius=(6, 14), spacing: int = 34, seed: int = 0):
    """(RGB image, label image, discs): white glass, a pink tissue block ``tissue`` = (x, y, w, h)
    holding nuclei on a jittered grid (touching allowed, never overlapping), ids 1.."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 255, np.uint8)
    x, y, w, h = tissue
    image[y:y + h, x:x + w] = PINK
    labels = np.zeros((height, width), np.int32)
    discs = []
    for cy in range(y + spacing // 2, y + h - spacing // 2, spacing):
        for cx in range(x + spacing // 2, x + w - spacing // 2, spacing):
            r = rng.uniform(*radius)
            px, py = cx + rng.uniform(-4, 4), cy + rng.uniform(-4, 4)
            if any(np.hypot(px - qx, py - qy) < r + s + 1 for qx, qy, s in discs[-60:]):
                continue
            discs.append((px, py, r))
            k = len(discs)
            cv2.circle(labels, (int(round(px)), int(round(py))), int(round(r)), k, -1)
    for k in range(1, len(discs) + 1):
        image[labels == k] = nucleus_colour(k)
    return image, labels, discs


class ColourCodedPredictor:
    """Returns, per tile, one instance per nucleus colour present (clipped at the tile border)."""

    class_names = ("nucleus",)

    def __init__(self, kill_after=None):
        env = os.environ.get(KILL_ENV)
        self.kill_after = int(env) if kill_after is None and env else kill_after
        self.tiles = 0
        self.blank_tiles = 0  # tiles of bare glass that reached the "model"

    def describe(self) -> dict:
        return {"predictor": "ColourCodedPredictor"}

    def predict_batch(self, tiles):
        return [self(t) for t in tiles]

    def __call__(self, tile: np.ndarray) -> Instances:
        h, w = tile.shape[:2]
        self.tiles += 1
        if self.kill_after is not None and self.tiles > self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # as `kill -9` would, mid-slide
        if (tile == 255).all():
            self.blank_tiles += 1
        marked = tile[:, :, 0] == NUCLEUS_RED
        ids = np.where(marked, tile[:, :, 1].astype(np.int32) * 256 + tile[:, :, 2], 0)
        crops, scores = [], []
        for i in np.unique(ids[ids > 0]):
            crops.append(MaskCrop.from_mask(ids == i))
            scores.append(0.5 + ((int(i) * 7919) % 1000) / 2000.0)
        return Instances(np.array(scores), np.zeros(len(crops)), crops, None, h, w)
