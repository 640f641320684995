"""Stand-in predictors for tests and benchmarks (no model): they return Instances like a real one.

``LabelImagePredictor``: given the tile window it was called on, it returns every label of a known
label image visible in that window, clipped at the tile border, as a real model would see it; scores
are fixed per label so that results are deterministic. ``DarkBlobPredictor``: thresholded connected
components. ``ClippedPredictions``: a real model's whole-image predictions cut to each tile.
``ColourCodedPredictor`` with ``colour_slide``: nuclei read back from colour-coded pixels, for
slides read in other processes; ``PausingColourPredictor``: the same, waiting to be killed
mid-slide (cohort tests). Benchmarks import this module with the repository root on
``sys.path``.
"""
from __future__ import annotations

import os
import signal
import time

import cv2
import numpy as np

from nucleus_seg.geometry import MaskCrop
from nucleus_seg.inference.instances import Instances


def tile_origin(image: np.ndarray, tile: np.ndarray):
    """(row, col) of the top-left pixel of ``tile``, a view into ``image`` (from its byte offset)."""
    offset = tile.__array_interface__["data"][0] - image.__array_interface__["data"][0]
    row, rem = divmod(offset, image.strides[0])
    return int(row), int(rem // image.strides[1])


class LabelImagePredictor:
    """Predict the instances of ``labels`` (H, W int, 0 = background) inside each tile.

    The tiler passes only pixels, so the predictor locates the tile by identity: call it with views
    of the image it was given (``run_tiled(image, pred)`` with ``image`` = ``pred.image``)."""

    def __init__(self, labels: np.ndarray, image: np.ndarray = None):
        self.labels = labels
        self.image = image if image is not None else np.zeros(labels.shape + (3,), np.uint8)
        self.calls = 0

    def _origin(self, tile: np.ndarray):
        return tile_origin(self.image, tile)

    def __call__(self, tile: np.ndarray) -> Instances:
        self.calls += 1
        y0, x0 = self._origin(tile)
        h, w = tile.shape[:2]
        window = self.labels[y0:y0 + h, x0:x0 + w]
        ids = np.unique(window)
        ids = ids[ids > 0]
        crops, scores = [], []
        for i in ids:
            crop = MaskCrop.from_mask(window == i)
            crops.append(crop)
            scores.append(0.5 + 0.5 * ((int(i) * 7919) % 1000) / 1000.0)
        return Instances(np.array(scores), np.zeros(len(crops)), crops, None, h, w)


def disc_label_image(height: int, width: int, centres_radii) -> np.ndarray:
    """uint32 label image of discs (id k+1 for the k-th (cy, cx, r)); later discs overwrite earlier."""
    labels = np.zeros((height, width), dtype=np.uint32)
    for k, (cy, cx, r) in enumerate(centres_radii):
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, height)
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, width)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        labels[y0:y1, x0:x1][inside] = k + 1
    return labels


class DarkBlobPredictor:
    """Classic-CV stand-in: connected components of dark pixels (H&E nuclei are dark) in each tile.

    Needs no model, works on any image, costs about what a light model's post-processing does; used
    for CLI tests and the memory benchmark. ``min_area`` drops specks."""

    def __init__(self, threshold: int = 100, min_area: int = 20):
        self.threshold = threshold
        self.min_area = min_area

    def __call__(self, tile_rgb: np.ndarray) -> Instances:
        import cv2

        h, w = tile_rgb.shape[:2]
        gray = cv2.cvtColor(np.ascontiguousarray(tile_rgb), cv2.COLOR_RGB2GRAY)
        n, comp, stats, _ = cv2.connectedComponentsWithStats((gray < self.threshold).astype(np.uint8),
                                                             connectivity=8)
        crops, scores = [], []
        for i in range(1, n):
            x, y, bw, bh, area = stats[i]
            if area < self.min_area:
                continue
            crops.append(MaskCrop(int(x), int(y), comp[y:y + bh, x:x + bw] == i))
            scores.append(min(1.0, 0.5 + area / 2000.0))
        return Instances(np.array(scores), np.zeros(len(crops)), crops, None, h, w)


class ClippedPredictions:
    """Answers each tile with the predictions ``whole`` made on the whole ``image``, cut to the
    tile: a model without context effects. Tiling it and merging must give ``whole`` back exactly,
    however messy the predictions (overlapping duplicates, box-shaped masks, nuclei wider than the
    overlap): it isolates the seam matcher on real model output. Call it with views of ``image``."""

    def __init__(self, image, whole: Instances):
        self.image, self.whole = image, whole

    def __call__(self, tile) -> Instances:
        y0, x0 = tile_origin(self.image, tile)
        h, w = tile.shape[:2]
        crops, keep = [], []
        for k, c in enumerate(self.whole.masks):
            cx0, cy0, cx1, cy1 = max(c.x0, x0), max(c.y0, y0), min(c.x1, x0 + w), min(c.y1, y0 + h)
            if cx0 >= cx1 or cy0 >= cy1:
                continue
            part = MaskCrop.from_mask(c.mask[cy0 - c.y0:cy1 - c.y0, cx0 - c.x0:cx1 - c.x0],
                                      cx0 - x0, cy0 - y0)
            if part is not None:
                crops.append(part)
                keep.append(k)
        return Instances(self.whole.scores[keep], self.whole.labels[keep], crops, None, h, w)


# ------------------------------------------------------------- colour-coded slides
# Every nucleus is painted in its own colour (R = 50 marks a nucleus pixel, G * 256 + B is its id) on
# flat pink tissue and white glass. The predictor finds each id's pixels in a tile, so it needs only
# the pixels - like a model - and works through reader processes, any slide format with lossless
# compression, and resampling (an area-averaged edge pixel mixes colours and is not read back; the
# pure interior is). NUCLEUS_SEG_TEST_KILL_AFTER=N makes it SIGKILL its own process after N tiles,
# to test resuming; NUCLEUS_SEG_TEST_CHILDREN_FILE=path makes it first write the pids of its child
# processes (the tile readers) there, to test that they die with it.
NUCLEUS_RED = 50
PINK = (225, 160, 200)
KILL_ENV = "NUCLEUS_SEG_TEST_KILL_AFTER"
CHILDREN_ENV = "NUCLEUS_SEG_TEST_CHILDREN_FILE"


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
            children_file = os.environ.get(CHILDREN_ENV)
            if children_file:
                import psutil

                with open(children_file, "w") as f:
                    f.write(" ".join(str(c.pid) for c in psutil.Process().children()))
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


class PausingColourPredictor(ColourCodedPredictor):
    """ColourCodedPredictor that, in the first process to predict ``pause_after`` tiles, writes its
    process id to ``marker`` and waits to be killed (a test kills it mid-slide, as ``kill -9`` or
    the OOM killer would); every later process finds the marker and never pauses."""

    def __init__(self, marker, pause_after: int, wait: float = 120.0):
        super().__init__()
        self.marker = str(marker)
        self.pause_after = pause_after
        self.wait = wait

    def __call__(self, tile: np.ndarray) -> Instances:
        if self.tiles + 1 == self.pause_after:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                time.sleep(self.wait)  # killed before this ends
        return super().__call__(tile)
