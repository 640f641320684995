"""Mask geometry shared by the converters, the training dataset and inference exports.

Polygons follow the COCO convention: pixel (x, y) covers the square [x, x+1] x [y, y+1], so a
polygon that rasterises back to a mask must run along the *outer edges* of its boundary pixels.
OpenCV's contours run through boundary pixel *indices*; used directly (as imantics and most old
converters do) they lose about half a pixel on every side, which costs a 10-px nucleus ~15% IoU
(measured on the DSB masks: mean IoU 0.845 for raw contours vs 0.99994 for the outline below).
"""
from __future__ import annotations

from typing import List, Sequence

import cv2
import numpy as np


def mask_bbox(mask: np.ndarray):
    """Tight ``(x0, y0, x1, y1)`` (inclusive) of the non-zero pixels, or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def mask_to_polygons(mask: np.ndarray, offset: Sequence[float] = (0, 0)) -> List[List[float]]:
    """Outline polygons (COCO ``[x1, y1, x2, y2, ...]``) of every external component of ``mask``.

    ``mask`` may be a crop; ``offset`` = (x, y) of its top-left pixel in the full image. Each contour
    point is moved to its pixel centre and then half a pixel outwards along the contour normal, which
    rasterises back to the source mask (pixel-exact for 99.5% of the DSB nuclei). Components of one or
    two pixels become their bounding square. Holes are not represented (COCO polygons cannot).
    """
    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    ox, oy = float(offset[0]), float(offset[1])
    polygons = []
    for contour in contours:
        pts = contour[:, 0, :].astype(np.float64) + 0.5
        if len(pts) < 3:
            (x0, y0), (x1, y1) = pts.min(0) - 0.5, pts.max(0) + 0.5
            pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        else:
            tangent = np.roll(pts, -1, axis=0) - np.roll(pts, 1, axis=0)
            normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
            normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
            grown, shrunk = pts + 0.5 * normal, pts - 0.5 * normal
            # The normal's sign depends on the contour's orientation: keep the larger polygon.
            pts = grown if _polygon_area(grown) >= _polygon_area(shrunk) else shrunk
        pts[:, 0] += ox
        pts[:, 1] += oy
        polygons.append([round(float(v), 3) for v in pts.ravel()])
    return polygons


def _polygon_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return abs(0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))
