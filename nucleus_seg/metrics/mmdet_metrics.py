"""mmengine metrics for MMDetection configs: ``NucleusMetric`` and ``DenseCocoMetric``.

    custom_imports = dict(imports=['nucleus_seg.register'], allow_failed_imports=False)
    val_evaluator = [
        dict(type='DenseCocoMetric', ann_file=..., metric=['bbox', 'segm']),
        dict(type='NucleusMetric', ann_file=...),
    ]
    default_hooks = dict(checkpoint=dict(type='CheckpointHook', save_best='nucleus/PQ', rule='greater'))

``rule='greater'`` is needed: mmengine infers the rule only for names containing 'mAP', 'acc', ... .
"""
from __future__ import annotations

import json
import os.path as osp
import tempfile
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_utils
import torch
from mmengine.evaluator import BaseMetric
from mmengine.fileio import get_local_path, load
from mmengine.logging import MMLogger

from mmdet.datasets.api_wrappers import COCOeval, COCOevalMP
from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import METRICS

from .dataset import (DEFAULT_SCORE_THR, STOCK_MAX_DETS, TISSUE_MEAN_KEYS, dense_coco_stats, describe_ap,
                      describe_settings, evaluate_instances, with_stock_max_dets)
from .instance import LABEL_MAP

_HEADLINE = ("AJI", "AJI_plus", "PQ", "DQ", "SQ", "F1", "precision", "recall", "Dice")
# AP items reported by default: the dense headline (largest proposal_nums) and the stock maxDets=100 ones.
_DEFAULT_AP_ITEMS = ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l",
                     f"mAP@{STOCK_MAX_DETS}", f"mAP_50@{STOCK_MAX_DETS}", f"mAP_75@{STOCK_MAX_DETS}")


def encode_masks(masks) -> List[dict]:
    """RLE (bytes counts) of each mask of an N x H x W bool tensor/array; a list of RLE dicts passes through."""
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    if isinstance(masks, np.ndarray):
        # one mask at a time: a Fortran copy of the whole stack would double the memory of dense images
        return [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
    return [dict(r) for r in masks]


def _labels_to_cat_ids(categories: Sequence[dict], classes: Optional[Sequence[str]]) -> List[int]:
    """Category id of each label index: by class *name* (dataset_meta order), never by list position."""
    cats = sorted(categories, key=lambda c: c["id"])
    if not classes:
        return [c["id"] for c in cats]
    by_name = {c["name"]: c["id"] for c in cats}
    missing = [n for n in classes if n not in by_name]
    if missing:
        raise ValueError(f"classes {missing} of dataset_meta are not categories of the ann_file "
                         f"(has {sorted(by_name)})")
    return [by_name[n] for n in classes]


@METRICS.register_module()
class NucleusMetric(BaseMetric):
    """AJI, AJI+, PQ, DQ, SQ, F1, precision, recall, Dice (+ mPQ, bPQ, per-class PQ with > 1 class).

    Args:
        ann_file: COCO instance GT (as for CocoMetric); required.
        score_thr: predictions scoring below it are dropped before matching (default 0.5).
        iou_thr: PQ match threshold (0.5; below it matches are a maximum-IoU one-to-one assignment).
        scoring: 'label_map' (default: predictions rasterised by score, a pixel belongs to one nucleus,
            as HoVer-Net / PanNuke score) or 'overlap_aware' (instances scored as given).
        backend_args, collect_device, prefix: as BaseMetric / CocoMetric. Keys are ``nucleus/<name>``;
        with more than one class also ``mPQ``, ``bPQ`` (PanNuke reference protocol), ``mPQ_strict``,
        ``bPQ_strict`` (every false positive counted) and ``PQ_<class>``.

    Scored over the images that were processed (an image with no prediction counts as all misses).
    """
    default_prefix: Optional[str] = "nucleus"

    def __init__(self, ann_file: Optional[str] = None, score_thr: float = DEFAULT_SCORE_THR,
                 iou_thr: float = 0.5, scoring: str = LABEL_MAP, backend_args: Optional[dict] = None,
                 collect_device: str = "cpu", prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if ann_file is None:
            raise ValueError("NucleusMetric needs ann_file (a COCO instance JSON with the ground truth)")
        with get_local_path(ann_file, backend_args=backend_args) as local_path:
            with open(local_path, "r", encoding="utf-8") as f:
                self._gt = json.load(f)
        self.score_thr = float(score_thr)
        self.iou_thr = float(iou_thr)
        self.scoring = scoring
        # what the last evaluation did (mode, threshold, protocol), for the head of a printed table
        self.settings = {"scoring": scoring, "score_thr": self.score_thr, "iou_thr": self.iou_thr}

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample["pred_instances"]
            if "masks" not in pred:
                raise KeyError("NucleusMetric needs pred_instances.masks: use it with an instance "
                               "segmentation model (box-only models: CocoMetric/DenseCocoMetric 'bbox')")
            # as CocoMetric's segm results: the mask score where the model gives one
            scores = pred["mask_scores"] if "mask_scores" in pred else pred["scores"]
            self.results.append(dict(
                img_id=sample["img_id"],
                rles=encode_masks(pred["masks"]),
                scores=np.asarray(scores.cpu() if isinstance(scores, torch.Tensor) else scores, np.float64),
                labels=np.asarray(pred["labels"].cpu() if isinstance(pred["labels"], torch.Tensor)
                                  else pred["labels"], np.int64)))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        logger: MMLogger = MMLogger.get_current_instance()
        classes = (self.dataset_meta or {}).get("classes")
        label_cat = _labels_to_cat_ids(self._gt["categories"], classes)
        dets, image_ids, seen = [], [], set()
        for r in results:
            if r["img_id"] not in seen:
                seen.add(r["img_id"])
                image_ids.append(r["img_id"])
            for rle, score, label in zip(r["rles"], r["scores"], r["labels"]):
                dets.append({"image_id": r["img_id"], "category_id": label_cat[int(label)],
                             "segmentation": rle, "score": float(score)})
        ev = evaluate_instances(self._gt, dets, score_thr=self.score_thr, iou_thr=self.iou_thr,
                                image_ids=image_ids, scoring=self.scoring)
        self.settings = ev.settings
        out = OrderedDict((k, float(ev.summary[k])) for k in _HEADLINE)
        for k in TISSUE_MEAN_KEYS:
            if k in ev.summary:
                out[k] = float(ev.summary[k])
        for k, v in ev.summary.items():
            if k.startswith("PQ_"):
                out[k] = float(v)
        logger.info("nucleus metrics over %d images (%s): %s", len(image_ids), self.describe(),
                    " ".join(f"{k}={v:.4f}" for k, v in out.items()))
        return out

    def describe(self) -> str:
        """How the ``nucleus/*`` keys were computed (scoring mode, score threshold, PanNuke protocol)."""
        return "nucleus/*: " + describe_settings(self.settings)


@METRICS.register_module()
class DenseCocoMetric(CocoMetric):
    """CocoMetric whose headline ``bbox_*`` / ``segm_*`` AP are read at the largest ``proposal_nums``,
    with the stock figures at 100 detections beside them.

    pycocotools' ``summarize()`` (and so CocoMetric's ``segm_mAP``) takes the overall AP at maxDets=100,
    which caps a perfect prediction on an image with > 100 nuclei below 1. Here every AP and AR comes
    from ``coco_eval.eval['precision' / 'recall']``: ``segm_mAP`` etc. at maxDets = max(proposal_nums)
    (1000 by default), and ``segm_mAP@100``, ``segm_mAP_50@100``, ``segm_mAP_75@100`` at 100, what a
    stock pycocotools / CodaLab scorer reports (100 is always evaluated). All predictions are ranked by
    score, overlaps and all. Only 'bbox' and 'segm' are supported; ``metric_items`` may name mAP,
    mAP_50, mAP_75, mAP_s, mAP_m, mAP_l, mAP@100, mAP_50@100, mAP_75@100, AR@<k> for k in
    proposal_nums (and 100), AR_s@<max>, AR_m@<max>, AR_l@<max>.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        unsupported = [m for m in self.metrics if m not in ("bbox", "segm")]
        if unsupported:
            raise KeyError(f"DenseCocoMetric supports 'bbox' and 'segm' only, got {unsupported}; "
                           "use CocoMetric for proposals")
        self._eval_max_dets = with_stock_max_dets(self.proposal_nums)
        self._max_dets = self._eval_max_dets[-1]
        names = list(_DEFAULT_AP_ITEMS)
        names += [f"AR@{k}" for k in self._eval_max_dets]
        names += [f"AR_{s}@{self._max_dets}" for s in ("s", "m", "l")]
        for item in self.metric_items or []:
            if item not in names:
                raise KeyError(f'metric item "{item}" is not supported (choose from {names})')

    def compute_metrics(self, results: list) -> Dict[str, float]:
        logger: MMLogger = MMLogger.get_current_instance()
        gts, preds = zip(*results)
        tmp_dir = None
        if self.outfile_prefix is None:
            tmp_dir = tempfile.TemporaryDirectory()
            outfile_prefix = osp.join(tmp_dir.name, "results")
        else:
            outfile_prefix = self.outfile_prefix
        if self._coco_api is None:
            from mmdet.datasets.api_wrappers import COCO
            logger.info("Converting ground truth to coco format...")
            self._coco_api = COCO(self.gt_to_coco_json(gt_dicts=gts, outfile_prefix=outfile_prefix))
        if self.cat_ids is None:
            self.cat_ids = self._coco_api.get_cat_ids(cat_names=self.dataset_meta["classes"])
        if self.img_ids is None:
            self.img_ids = self._coco_api.get_img_ids()
        result_files = self.results2json(preds, outfile_prefix)
        eval_results: Dict[str, float] = OrderedDict()
        if self.format_only:
            logger.info(f"results are saved in {osp.dirname(outfile_prefix)}")
            return eval_results

        for metric in self.metrics:
            logger.info(f"Evaluating {metric} (headline at maxDets={self._max_dets}, also at "
                        f"{STOCK_MAX_DETS}; all predictions ranked by score)...")
            if metric not in result_files:
                raise KeyError(f"{metric} is not in results")
            predictions = load(result_files[metric])
            if metric == "segm":
                for x in predictions:  # as CocoMetric: mask area, not box area, for s/m/l
                    x.pop("bbox", None)
            if not predictions:
                logger.error("The testing results of the whole dataset is empty.")
                break
            coco_dt = self._coco_api.loadRes(predictions)
            evaluator = COCOevalMP if self.use_mp_eval else COCOeval
            coco_eval = evaluator(self._coco_api, coco_dt, metric)
            coco_eval.params.catIds = self.cat_ids
            coco_eval.params.imgIds = self.img_ids
            coco_eval.params.maxDets = self._eval_max_dets
            coco_eval.params.iouThrs = self.iou_thrs
            coco_eval.evaluate()
            coco_eval.accumulate()
            stats = dense_coco_stats(coco_eval)
            if self.classwise:
                eval_results.update(self._classwise(coco_eval, logger))
            items = self.metric_items or _DEFAULT_AP_ITEMS
            for item in items:
                eval_results[f"{metric}_{item}"] = float(f"{round(stats[item], 3)}")
            logger.info(f"{metric}_mAP_copypaste (maxDets={self._max_dets}): " + " ".join(
                f"{stats[k]:.3f}" for k in ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l")))
            logger.info(f"{metric}_mAP_copypaste (maxDets={STOCK_MAX_DETS}, stock pycocotools): " + " ".join(
                f"{stats[k + f'@{STOCK_MAX_DETS}']:.3f}" for k in ("mAP", "mAP_50", "mAP_75")))
        if tmp_dir is not None:
            tmp_dir.cleanup()
        return eval_results

    def describe(self) -> str:
        """Which maxDets the ``coco/*`` AP keys are read at."""
        return "coco/*: " + describe_ap(self._eval_max_dets)

    def _classwise(self, coco_eval, logger) -> Dict[str, float]:
        precisions = coco_eval.eval["precision"]  # (iou, recall, cls, area, maxDets); -1 = largest maxDets
        rows, out = [("category", "mAP", "mAP_50", "mAP_75")], {}
        for idx, cat_id in enumerate(self.cat_ids):
            name = self._coco_api.loadCats(cat_id)[0]["name"]
            vals = []
            for sel in (slice(None), [0], [5]):
                p = precisions[sel, :, idx, 0, -1]
                p = p[p > -1]
                vals.append(f"{np.mean(p):.3f}" if p.size else "nan")
            rows.append((name, *vals))
            out[f"{name}_precision"] = float(vals[0]) if vals[0] != "nan" else float("nan")
        logger.info("\n" + "\n".join("  ".join(f"{c:>12}" for c in r) for r in rows))
        return out


__all__ = ["NucleusMetric", "DenseCocoMetric", "encode_masks"]
