"""Round trips through every format the converters read, on DSB-layout tiles (not a test).

For each tile the per-nucleus masks are written in a format (label maps: 16-bit PNG, 32-bit TIFF,
.npy, .mat; one binary mask; the project's GeoJSON export; COCO results -> coco2labels label maps),
converted back to COCO with the matching converter, and every nucleus is looked up pixel for pixel
among the annotations of its image. Binary masks are expected to lose the nuclei that touch
another one (they merge): the figure says how many.

    python benchmarks/roundtrip_formats.py [--data ../shared/data/dsb2018_he]

Prints a Markdown table: format, nuclei reproduced exactly / all. Counts, not timings: no need to
run it under the benchmark lock.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import scipy.io  # noqa: E402
import tifffile  # noqa: E402

from formats import crop_key, decoded, dsb_tiles, label_map  # noqa: E402
from nucleus_seg.converters.labels import LabelOptions  # noqa: E402
from nucleus_seg.converters.pannuke import patch_instances  # noqa: E402
from nucleus_seg.converters.pipeline import geojson2coco, labels2coco, mask2coco  # noqa: E402
from nucleus_seg.converters.results import coco_results_to_label_maps  # noqa: E402
from nucleus_seg.inference.export import to_geojson  # noqa: E402
from nucleus_seg.inference.instances import Instances  # noqa: E402


def exact(coco, tiles):
    """Nuclei of ``tiles`` reproduced pixel for pixel by an annotation of their image."""
    by_name = {t.name: t for t in tiles}
    hits = 0
    for image in coco["images"]:
        got = {crop_key(c) for c in decoded(coco, image["id"])}
        hits += sum(crop_key(c) in got for c in by_name[Path(image["file_name"]).stem].crops)
    return hits


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "dsb2018_he")
    args = p.parse_args()
    tiles = dsb_tiles(args.data / "train")
    total = sum(len(t.crops) for t in tiles)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = tmp / "images"
        images.mkdir()
        for t in tiles:
            shutil.copy(t.image_path, images / t.image_path.name)
        writers = {
            "label map, 16-bit PNG": lambda t, d: cv2.imwrite(str(d / f"{t.name}.png"),
                                                                label_map(t, range(1, len(t.crops) + 1), np.uint16)),
            "label map, 32-bit TIFF (ids from 70000)": lambda t, d: tifffile.imwrite(
                d / f"{t.name}.tif", label_map(t, range(70000, 70000 + len(t.crops)), np.uint32)),
            "label map, .npy": lambda t, d: np.save(d / f"{t.name}.npy", label_map(t, range(1, len(t.crops) + 1))),
            "CoNSeP-style .mat (inst_map, type_map)": lambda t, d: scipy.io.savemat(
                d / f"{t.name}.mat", {"inst_map": label_map(t, range(1, len(t.crops) + 1)).astype(float),
                                      "type_map": (label_map(t, range(1, len(t.crops) + 1)) > 0).astype(float)}),
            "binary mask (connected components)": lambda t, d: cv2.imwrite(
                str(d / f"{t.name}.png"), ((label_map(t, range(1, len(t.crops) + 1)) > 0) * 255).astype(np.uint8)),
        }
        for name, write in writers.items():
            folder = tmp / name.split(" ")[0] / str(len(rows))
            folder.mkdir(parents=True)
            for t in tiles:
                write(t, folder)
            options = LabelOptions(binary=name.startswith("binary"), single_class=True)
            _, _, coco = labels2coco(images, folder, tmp / f"out{len(rows)}", options)
            rows.append((name, exact(coco, tiles)))
        exports = tmp / "geojson"
        exports.mkdir()
        for t in tiles:
            inst = Instances(np.ones(len(t.crops)), np.zeros(len(t.crops)), t.crops, height=t.height, width=t.width)
            (exports / f"{t.name}.geojson").write_text(json.dumps(to_geojson(inst, ["nucleus"])))
        _, _, coco = geojson2coco(images, exports, tmp / "out_geojson")
        rows.append(("QuPath GeoJSON (this project's export)", exact(coco, tiles)))
        gt, _ = mask2coco([args.data / "train"], tmp / "gt", progress=False)
        coco = json.loads(gt[0].read_text())
        results = [{"image_id": a["image_id"], "category_id": 1, "segmentation": a["segmentation"],
                    "score": 1 - 1e-5 * a["id"]} for a in coco["annotations"]]
        (tmp / "results.json").write_text(json.dumps(results))
        coco_results_to_label_maps(tmp / "results.json", gt[0], tmp / "maps", pannuke=True,
                                   channel_map={"nucleus": 0})
        _, _, back = labels2coco(images, tmp / "maps" / "inst", tmp / "out_maps")
        rows.append(("COCO results -> coco2labels label maps -> labels2coco", exact(back, tiles)))
        masks = np.load(tmp / "maps" / "masks.npy", mmap_mode="r")
        hits = 0
        for row, image in enumerate(coco["images"]):  # rows follow the image list
            got = {crop_key(c) for _, _, c in patch_instances(np.asarray(masks[row]))}
            hits += sum(crop_key(c) in got for c in decoded(coco, image["id"]))
        rows.append(("COCO results -> coco2labels --pannuke masks.npy -> PanNuke reader", hits))
    print(f"{len(tiles)} tiles, {total} nuclei ({args.data})\n")
    print("| format | nuclei reproduced pixel-exactly |")
    print("|---|---|")
    for name, hits in rows:
        print(f"| {name} | {hits} / {total} |")


if __name__ == "__main__":
    main()
