"""Synthetic dense nuclei for the training benchmarks: a jittered grid of ellipses, as polygons."""
from __future__ import annotations

import numpy as np


def nucleus_layout(n: int, size: int, seed: int = 0):
    """Centres (n, 2) and semi-axes (n, 2) of ``n`` nuclei on a ``size`` x ``size`` tile.

    A jittered grid (so neighbours do not overlap) of ellipses 10-20 px across, the size of
    nuclei in 40x H&E before the configs' x2 rescale.
    """
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    step = size / side
    cells = np.array([(i, j) for i in range(side) for j in range(side)][:n], np.float64)
    centres = (cells + 0.5) * step + rng.uniform(-0.15, 0.15, (n, 2)) * step
    semi_axes = np.minimum(rng.uniform(5, 10, (n, 2)), 0.45 * step)
    return centres, semi_axes


def ellipse_polygons(centres, semi_axes, vertices: int = 24):
    """One closed ring per nucleus, flat [x0, y0, x1, y1, ...] (COCO polygon)."""
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    rings = []
    for (cx, cy), (ax, ay) in zip(centres, semi_axes):
        ring = np.stack([cx + ax * np.cos(angles), cy + ay * np.sin(angles)], 1)
        rings.append(ring.ravel())
    return rings


def polygon_boxes(rings) -> np.ndarray:
    """(n, 4) x1, y1, x2, y2 of each ring."""
    return np.array([[r[0::2].min(), r[1::2].min(), r[0::2].max(), r[1::2].max()] for r in rings])
