"""Nucleus instance segmentation on MMDetection 3.x."""
__version__ = "0.1.0"

import warnings as _warnings

# mmengine 0.10.7 imports pkg_resources (setuptools < 81 is pinned for it); its deprecation warning
# would otherwise precede every one-line error message the tools print. See nucleus_seg/compat.py, fix 2.
_warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
