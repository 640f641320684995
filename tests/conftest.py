"""Shared pytest fixtures.

Tests that need the shared DSB data (``../shared/data/dsb2018_he`` beside the checkout) use the
``dsb_root`` fixture and are skipped where it is absent (a user's fresh clone); everything else runs
on the bundled sample in ``data/sample/`` and on synthetic data.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DSB = Path(os.environ.get("NUCLEUS_SHARED_DSB",
                                 REPO_ROOT.parent / "shared" / "data" / "dsb2018_he"))
SAMPLE_DSB = REPO_ROOT / "data" / "sample" / "dsb2018_he"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def dsb_root() -> Path:
    """The shared DSB H&E subset (train/, test/, test_img_ids.json); skip where it is absent."""
    if not (SHARED_DSB / "train").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DSB}")
    return SHARED_DSB


@pytest.fixture(scope="session")
def sample_root() -> Path:
    """The small DSB sample bundled with the project (always present)."""
    assert (SAMPLE_DSB / "train").is_dir(), f"bundled sample missing: {SAMPLE_DSB}"
    return SAMPLE_DSB
