"""Config loading (the one loader: tools, runner and predictor) and the overrides they share."""
from __future__ import annotations

import os.path as osp
from typing import Optional

from .errors import InputError


def load_config(path, cfg_options: Optional[dict] = None):
    """``Config.fromfile`` with a one-line error for a missing or broken file.

    ``path`` may also be an ``mmdet::`` config name, or an already loaded ``Config`` (returned as is,
    with ``cfg_options`` merged)."""
    from mmengine.config import Config
    if isinstance(path, Config):
        cfg = path
    else:
        path = str(path)
        if not osp.isfile(path) and not path.startswith("mmdet::"):
            raise InputError(path, "config file not found")
        try:
            cfg = Config.fromfile(path)
        except Exception as exc:  # a syntax or reference error, a missing _base_, failed custom_imports
            raise InputError(path, f"cannot parse config: {type(exc).__name__}: {exc}") from None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def replace_data_root(cfg, new_root: str) -> int:
    """Point every dataset and evaluator path below the config's data root at ``new_root``.

    The nucleus configs keep their root in ``nucleus_data_root`` (PanNuke ones in
    ``pannuke_data_root``); every string that starts with it (dataset ``data_root``, evaluator
    ``ann_file``) is rewritten.
    Returns the number of values changed.
    """
    # PanNuke configs inherit a nucleus config, so both roots may be present; either is replaced.
    old_roots = [cfg[k] for k in ("pannuke_data_root", "nucleus_data_root") if cfg.get(k)]
    if not old_roots:
        raise InputError(cfg.filename, "config has no nucleus_data_root/pannuke_data_root to replace")
    new_root = new_root.rstrip("/") + "/"
    changed = 0

    def walk(node):
        nonlocal changed
        if isinstance(node, dict):
            for key, value in node.items():
                root = next((r for r in old_roots if isinstance(value, str) and value.startswith(r)),
                            None)
                if root is not None:
                    node[key] = new_root + value[len(root):]
                    changed += 1
                else:
                    walk(value)
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)

    for key in ("train_dataloader", "val_dataloader", "test_dataloader", "val_evaluator",
                "test_evaluator"):
        if key in cfg:
            walk(cfg[key])
    for key in ("nucleus_data_root", "pannuke_data_root"):
        if key in cfg:
            cfg[key] = new_root
    return changed


def evaluators(cfg_evaluator) -> list:
    """An evaluator config as a list (configs may give one dict or a list)."""
    if cfg_evaluator is None:
        return []
    return list(cfg_evaluator) if isinstance(cfg_evaluator, (list, tuple)) else [cfg_evaluator]
