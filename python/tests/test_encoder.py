"""Encoder.embed against timm on the same seeded weights, and bad input."""
import hashlib
import json
import warnings

import numpy as np
import pytest

import haidef_wsi
from conftest import FIXTURES


def reference():
    return json.loads((FIXTURES / "encoders" / "reference.json").read_text())


def rel_err(a, b):
    return float(np.sqrt(((a.astype(np.float64) - b) ** 2).sum() / (np.asarray(b, np.float64) ** 2).sum()))


@pytest.fixture(scope="module")
def encoder():
    with pytest.warns(UserWarning, match="untrained"):
        return haidef_wsi.Encoder("path-foundation")


def test_embeddings_equal_timm(encoder):
    """fixtures/encoders/make_reference.py ran timm's ViT-S/16 with the same seeded weights on
    these patches (read by wsidicom); the Rust tests hold the same bound (1e-4)."""
    r = reference()
    slide = haidef_wsi.Slide(FIXTURES / "slides" / "ihc-j2k")
    patches = []
    for p in r["patches"]:
        img = slide.read_region(p["x"], p["y"], p["width"], p["height"], level=p["level"])
        assert hashlib.sha256(img.tobytes()).hexdigest() == p["sha256"], "the pixels timm was given"
        patches.append(img)
    ours = encoder.embed(np.stack(patches))
    assert ours.dtype == np.float32 and ours.shape == (len(patches), 384)
    for i, want in enumerate(r["vit_s16"]["embeddings"]):
        assert rel_err(ours[i], np.asarray(want)) <= 1e-4, f"patch {i}"
    # One image, a non-contiguous batch, and batches smaller than the input give the same.
    assert np.allclose(encoder.embed(patches[0]), ours[:1], atol=1e-6)
    fortran = np.asfortranarray(np.stack(patches))
    assert not fortran.flags["C_CONTIGUOUS"]
    assert np.allclose(encoder.embed(fortran), ours, atol=1e-6)
    with pytest.warns(UserWarning):
        small = haidef_wsi.Encoder("path-foundation", batch_size=3)
    assert np.allclose(small.embed(np.stack(patches)), ours, atol=1e-6)


def test_describes_itself(encoder):
    assert encoder.name == "path-foundation" and encoder.model_id == "google/path-foundation"
    assert encoder.embedding_dim == 384 and not encoder.is_trained and encoder.weights_id == "untrained"
    assert "224" in encoder.input_description
    assert haidef_wsi.models()[0] == "path-foundation"


def test_bad_input_raises_clear_errors(encoder):
    img = np.zeros((2, 224, 224, 3), np.uint8)
    with pytest.raises(TypeError, match="uint8, uint16 or float32.*int64"):
        encoder.embed(img.astype(np.int64))
    with pytest.raises(TypeError, match="list"):
        encoder.embed([[1, 2, 3]])
    with pytest.raises(ValueError, match=r"shape \(N, H, W, C\)"):
        encoder.embed(np.zeros((224, 224), np.uint8))
    with pytest.raises(ValueError, match="channels"):
        encoder.embed(np.zeros((1, 224, 224, 5), np.uint8))
    with pytest.raises(ValueError):
        encoder.embed(np.zeros((1, 100, 120, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown model.*path-foundation"):
        haidef_wsi.Encoder("no-such-model")
    with pytest.raises(ValueError, match="device"):
        haidef_wsi.Encoder("path-foundation", device="tpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(haidef_wsi.HaidefError):
            haidef_wsi.Encoder("path-foundation", weights=FIXTURES / "nope.safetensors")
