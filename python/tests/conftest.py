"""Shared paths and helpers of the Python package's tests (run by tools/python_tests.sh)."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="session")
def regions():
    """wsidicom's reference regions (fixtures/make_references.py)."""
    return json.loads((FIXTURES / "reference" / "regions.json").read_text())


def png_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


def assert_close(what, ours, reference):
    """The Rust reader's tolerance against wsidicom (wsi/tests/common): JPEG decoders' IDCTs
    differ, so mean |diff| <= 1 and max <= 8 per channel; lossless slides are exact."""
    assert ours.shape == reference.shape, f"{what}: shape {ours.shape} vs {reference.shape}"
    d = np.abs(ours.astype(np.int16) - reference.astype(np.int16)).reshape(-1, 3)
    assert (d.mean(axis=0) <= 1.0).all() and (d.max(axis=0) <= 8).all(), f"{what}: mean {d.mean(axis=0)}, max {d.max(axis=0)}"
