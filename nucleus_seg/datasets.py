"""Nucleus COCO dataset: exact RLE annotations in, compact polygons for training out.

The converters write lossless RLE. mmdet's ``LoadAnnotations`` can only turn RLE into full-image
``BitmapMasks`` (``poly2mask=True``; with ``poly2mask=False`` it silently *ignores* every RLE
instance). A 1000 x 1000 tile with 1,000 nuclei then costs 1 GB of uint8 masks per sample, per copy.
This dataset converts each RLE once, when the annotation file is parsed, into outline polygons
(:func:`nucleus_seg.geometry.coco_polygons`, which rasterise back to the same pixels for
99.96% of the DSB nuclei; plain OpenCV contours, as older converters used, average IoU 0.845 with
their mask because they run through boundary pixel centres), so training uses the
``PolygonMasks`` path (``poly2mask=False``) whose memory is proportional to the outline length.
Evaluation still reads the exact RLE from the annotation file.
"""
from __future__ import annotations

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from .categories import NUCLEUS_CLASSES
from .geometry import coco_polygons, crop_from_segmentation


def rle_to_polygons(segmentation: dict, height: int, width: int):
    """COCO RLE (compressed or uncompressed) -> outline polygons; [] for an empty mask."""
    crop = crop_from_segmentation(segmentation, height, width)
    return coco_polygons(crop) if crop is not None else []


@DATASETS.register_module()
class NucleusCocoDataset(CocoDataset):
    """``CocoDataset`` whose RLE masks are converted to polygons once, at load time."""

    METAINFO = {
        "classes": NUCLEUS_CLASSES,
        "palette": [(220, 20, 60)],
    }

    def parse_data_info(self, raw_data_info: dict):
        data_info = super().parse_data_info(raw_data_info)
        height, width = data_info["height"], data_info["width"]
        for instance in data_info["instances"]:
            seg = instance.get("mask")
            if isinstance(seg, dict):
                polygons = rle_to_polygons(seg, height, width)
                if polygons:
                    instance["mask"] = polygons
                else:  # an empty mask cannot supervise anything
                    instance["ignore_flag"] = 1
        return data_info
