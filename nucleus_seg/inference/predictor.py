"""The real predictor: an MMDetection instance-segmentation model applied to one RGB tile.

``load_predictor(config, checkpoint, device)`` builds the model with ``mmdet.apis.init_detector``
(no weights are downloaded: backbone ``init_cfg`` is dropped and the checkpoint must be a local file)
and checks that the checkpoint fits the config (same parameters and shapes, hence the same number of
classes) before loading it, because mmengine would otherwise skip mismatched layers with a warning
and run a half-random model.

Channel order: predictors take **RGB** tiles (what :func:`nucleus_seg.image_io.read_image` returns);
this one converts to BGR for MMDetection, whose pipelines treat arrays like ``cv2.imread`` output.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..checkpoints import check_checkpoint, read_checkpoint
from ..config_utils import load_config
from ..errors import InputError
from ..geometry import MaskCrop
from .instances import Instances

# Tiles report candidates down to this score for seam matching (MMDetPredictor): a neighbour's
# low-scored view of a nucleus is evidence against another tile's higher score for a cut view.
DEFAULT_CANDIDATE_THR = 0.1


def _class_names_from_config(cfg) -> Optional[Sequence[str]]:
    for key in ("test_dataloader", "val_dataloader", "train_dataloader"):
        try:
            classes = cfg[key]["dataset"]["metainfo"]["classes"]
        except (KeyError, TypeError):
            continue
        if classes:
            return tuple(classes)
    return None


def _num_classes_of(cfg) -> Optional[int]:
    try:
        head = cfg.model.roi_head.bbox_head
        head = head[-1] if isinstance(head, (list, tuple)) else head  # cascade heads
        return int(head.num_classes)
    except (AttributeError, KeyError, TypeError):
        return None


def _raise_for_mismatch(model, state_dict: dict, ckpt_path: Path, cfg_path, num_classes) -> None:
    model_state = model.state_dict()
    missing = [k for k in model_state if k not in state_dict]
    shape_diff = [k for k in model_state
                  if k in state_dict and tuple(state_dict[k].shape) != tuple(model_state[k].shape)]
    if not missing and not shape_diff:
        return
    cls_keys = [k for k in shape_diff if k.endswith("fc_cls.weight") or k.endswith("conv_cls.weight")]
    if cls_keys:
        k = cls_keys[0]
        # bbox heads with softmax classify num_classes + background
        ck, mk = state_dict[k].shape[0], model_state[k].shape[0]
        raise InputError(ckpt_path, f"class count does not match the config {cfg_path}: layer {k} "
                                    f"has {ck} outputs in the checkpoint but {mk} in the model "
                                    f"(config num_classes={num_classes})")
    if shape_diff:
        k = shape_diff[0]
        raise InputError(ckpt_path, f"does not match the config {cfg_path}: {len(shape_diff)} layers "
                                    f"differ in shape, e.g. {k} {tuple(state_dict[k].shape)} vs "
                                    f"{tuple(model_state[k].shape)}")
    raise InputError(ckpt_path, f"does not match the config {cfg_path}: {len(missing)} model "
                                f"parameters are missing from it, e.g. {missing[0]}")


def build_tile_pipeline(cfg, scale_factor: Optional[float] = None):
    """The config's test pipeline for in-memory tiles: its image-loading step (a file reader)
    becomes ``LoadImageFromNDArray``; the rest (resize, packing) is the config's own."""
    from mmcv.transforms import Compose
    from mmdet.utils import get_test_pipeline_cfg

    pipeline = get_test_pipeline_cfg(cfg.copy())
    pipeline[0].type = "mmdet.LoadImageFromNDArray"
    if scale_factor is not None:
        # A config's Resize to a fixed size zooms a tile by (size / tile size), so the zoom
        # would depend on --tile; a fixed factor reproduces the training magnification.
        pipeline = [dict(type="Resize", scale_factor=float(scale_factor), keep_ratio=True)
                    if step.get("type") in ("Resize", "mmdet.Resize") else step
                    for step in pipeline]
    return Compose(pipeline)


def tiles_to_model_inputs(pipeline, tiles: Sequence[np.ndarray]) -> dict:
    """RGB tiles through :func:`build_tile_pipeline`'s pipeline as the batch ``test_step`` takes
    (the model's data preprocessor pads them to one size).

    Tiles go in as BGR: the file-loading step it replaces (``LoadNucleusImage``) gives BGR,
    like ``cv2.imread``, and the model's data preprocessor converts with ``bgr_to_rgb=True``."""
    inputs, samples = [], []
    for tile_rgb in tiles:
        data = pipeline(dict(img=np.ascontiguousarray(tile_rgb[:, :, ::-1]), img_id=0))
        inputs.append(data["inputs"])
        samples.append(data["data_samples"])
    return {"inputs": inputs, "data_samples": samples}


def tile_to_model_inputs(pipeline, tile_rgb: np.ndarray) -> dict:
    """One tile as a batch of one (see :func:`tiles_to_model_inputs`)."""
    return tiles_to_model_inputs(pipeline, [tile_rgb])


class MMDetPredictor:
    """Callable predictor: RGB uint8 tile -> :class:`Instances` in tile coordinates;
    ``predict_batch(tiles)`` predicts several tiles per forward pass.

    With ``clean_up`` (default) a tile's nuclei do not overlap: detections scoring at least
    ``score_thr``, overlaps resolved by score, slivers and near-duplicates dropped
    (:mod:`nucleus_seg.calibration`).

    ``predict_candidates(tiles)`` is what tiled inference uses: the same, down to ``candidate_thr``
    (at most ``score_thr``). The seam merger matches those candidates across tiles and applies
    ``score_thr`` to each merged nucleus's kept prediction - the one from the tile that sees the
    nucleus with the most context - so a tile that cuts a nucleus (and, lacking context, scores it
    higher) does not outvote its neighbour that sees it whole and scores it below the threshold."""

    def __init__(self, model, class_names: Sequence[str], score_thr: float = 0.5,
                 scale_factor: Optional[float] = None, info: Optional[dict] = None,
                 clean_up: bool = True, candidate_thr: Optional[float] = None):
        self.model = model
        self.class_names = tuple(class_names)
        self.score_thr = float(score_thr)
        self.candidate_thr = min(self.score_thr, float(
            DEFAULT_CANDIDATE_THR if candidate_thr is None else candidate_thr))
        self.clean_up = clean_up
        self.threshold = None  # the ScoreThreshold (value and source) when built by load_predictor
        self.info = dict(info or {}, scale_factor=scale_factor)
        self.pipeline = build_tile_pipeline(model.cfg, scale_factor)  # built once, used per tile

    def __call__(self, tile_rgb: np.ndarray) -> Instances:
        return self.predict_batch([tile_rgb])[0]

    def predict_batch(self, tiles: Sequence[np.ndarray],
                      min_score: Optional[float] = None) -> List[Instances]:
        """Several RGB tiles in one forward pass (the data preprocessor pads them to one size);
        results (scoring at least ``min_score``, default ``score_thr``) in each tile's own
        coordinates, in order."""
        import torch

        if not tiles:
            return []
        data = tiles_to_model_inputs(self.pipeline, tiles)
        with torch.no_grad():
            outputs = self.model.test_step(data)
        threshold = self.score_thr if min_score is None else float(min_score)
        return [self._to_instances(out.pred_instances, tile.shape[0], tile.shape[1], threshold)
                for out, tile in zip(outputs, tiles)]

    def predict_candidates(self, tiles: Sequence[np.ndarray]) -> List[Instances]:
        """:meth:`predict_batch` down to ``candidate_thr``, for the seam merger (class docstring)."""
        return self.predict_batch(tiles, self.candidate_thr)

    def _to_instances(self, pred, height: int, width: int, score_thr: float) -> Instances:
        import torch

        keep = (pred.scores >= score_thr).nonzero().flatten()
        if len(keep) == 0 or "masks" not in pred:
            return Instances.empty(height, width)
        pred = pred[keep]
        masks = pred.masks.bool()  # (N, H, W): tile-sized masks, on the model's device
        rows, cols = masks.any(dim=2), masks.any(dim=1)
        # tight boxes on the device, so only the crops travel (1,000 tile masks are 250 MB)
        y0 = rows.to(torch.uint8).argmax(dim=1)
        y1 = rows.shape[1] - rows.flip(1).to(torch.uint8).argmax(dim=1)
        x0 = cols.to(torch.uint8).argmax(dim=1)
        x1 = cols.shape[1] - cols.flip(1).to(torch.uint8).argmax(dim=1)
        boxes = torch.stack([x0, y0, x1, y1], dim=1).cpu().numpy()
        nonempty = rows.any(dim=1).cpu().numpy()
        crops, index = [], []
        for i in np.flatnonzero(nonempty):
            bx0, by0, bx1, by1 = (int(v) for v in boxes[i])
            crops.append(MaskCrop(bx0, by0, masks[i, by0:by1, bx0:bx1].cpu().numpy()))
            index.append(i)
        index = np.asarray(index, dtype=np.int64)
        instances = Instances(pred.scores.cpu().numpy()[index], pred.labels.cpu().numpy()[index], crops,
                              None, height, width)
        if self.clean_up:
            from ..calibration import CleanUp, clean_instances
            instances = clean_instances(instances, CleanUp(score_thr))
        return instances

    def describe(self) -> dict:
        """What the outputs record about the model (and what a resumed run must match)."""
        return dict(self.info, classes=list(self.class_names), score_thr=self.score_thr,
                    candidate_thr=self.candidate_thr,
                    clean_up=self.clean_up)


def load_predictor(config, checkpoint, device: str = "cpu", score_thr: Optional[float] = None,
                   max_per_img: int = 1000, scale_factor: Optional[float] = None,
                   clean_up: bool = True, candidate_thr: Optional[float] = None) -> MMDetPredictor:
    """Build the model of ``config`` with the weights of ``checkpoint`` as a tile predictor.

    ``score_thr`` None: the checkpoint's calibrated threshold, else 0.5 (``predictor.threshold`` says
    which and why).
    ``max_per_img`` is the cap on detections per tile (RPN proposals are raised to it where the
    config sets fewer): dense tissue holds hundreds of nuclei per tile. ``scale_factor`` replaces
    the test pipeline's Resize by a fixed zoom (see MMDetPredictor). ``candidate_thr`` (default
    ``DEFAULT_CANDIDATE_THR``, at most ``score_thr``): the lowest score tiles report to the seam
    merger (see MMDetPredictor); equal to ``score_thr`` turns that off."""
    cfg_path = config
    ckpt_path = Path(checkpoint)
    check_checkpoint(ckpt_path)  # cheap checks first: no model build for a typo
    cfg = load_config(config)
    ckpt = read_checkpoint(ckpt_path)
    from mmdet.apis import init_detector
    state_dict = ckpt.get("state_dict", ckpt)
    # checkpoints saved from a DistributedDataParallel wrapper prefix every key (as mmengine strips)
    state_dict = {k[7:] if k.startswith("module.") else k: v for k, v in state_dict.items()}

    test_cfg = cfg.model.get("test_cfg")
    if test_cfg is not None:
        if test_cfg.get("rcnn") is not None:
            test_cfg.rcnn.max_per_img = max_per_img
        if test_cfg.get("rpn") is not None and test_cfg.rpn.get("max_per_img", 0) < max_per_img:
            test_cfg.rpn.max_per_img = max_per_img

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "checkpoint is None, use COCO classes": we load it below
        model = init_detector(cfg, None, device=device)
    _raise_for_mismatch(model, state_dict, ckpt_path, cfg_path, _num_classes_of(cfg))
    from mmengine.runner.checkpoint import load_state_dict

    load_state_dict(model, state_dict, strict=False)
    model.to(device).eval()

    num_classes = _num_classes_of(cfg)
    meta = (ckpt.get("meta") or {}).get("dataset_meta") or {}
    names = _class_names_from_config(cfg) or meta.get("classes")
    if names is None or (num_classes is not None and len(names) != num_classes):
        names = [f"class_{i}" for i in range(num_classes or 1)]
    if meta.get("classes") and num_classes is not None and len(meta["classes"]) != num_classes:
        raise InputError(ckpt_path, f"was trained for {len(meta['classes'])} classes "
                                    f"{tuple(meta['classes'])} but the config {cfg_path} has "
                                    f"{num_classes}")
    model.dataset_meta = {"classes": tuple(names)}
    from ..calibration import score_threshold_for

    threshold = score_threshold_for(score_thr, ckpt_path, meta=ckpt.get("meta"))
    stat = ckpt_path.stat()
    info = {"config": str(cfg_path), "checkpoint": str(ckpt_path.resolve()),
            "checkpoint_bytes": stat.st_size, "checkpoint_mtime_ns": stat.st_mtime_ns,
            "max_per_img": max_per_img, "device": str(device)}
    predictor = MMDetPredictor(model, names, threshold.value, scale_factor, info, clean_up,
                               candidate_thr)
    predictor.threshold = threshold
    return predictor
