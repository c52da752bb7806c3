"""Encoder.embed_texts (MedSigLIP) against transformers, Encoder.embed_audio (HeAR) against
transformers and scipy, with the same seeded weights as the Rust tests (fixtures/medsiglip,
fixtures/hear), and their bad input."""
import json
import sys
import warnings

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import resample

import haidef_wsi
from conftest import FIXTURES

sys.path.insert(0, str(FIXTURES / "encoders"))
from seeded_weights import seeded_tensor  # noqa: E402  (the project's generator, numpy only)


def rel_err(a, b):
    b = np.asarray(b, np.float64)
    return float(np.sqrt(((a.astype(np.float64) - b) ** 2).sum() / (b**2).sum()))


@pytest.fixture(scope="module")
def medsiglip(tmp_path_factory):
    """The reference's MedSigLIP (real widths, 2 + 2 layers) as a checkpoint folder the way
    transformers writes one: config.json, model.safetensors, spiece.model. The weights come from
    the Python generator that filled transformers' model in fixtures/medsiglip/make_reference.py."""
    from safetensors.numpy import save_file

    r = json.loads((FIXTURES / "medsiglip" / "reference.json").read_text())
    m = r["model"]
    folder = tmp_path_factory.mktemp("medsiglip")
    (folder / "config.json").write_text(json.dumps(m["config"]))
    seed = r["generator"]["seed"]
    tensors = {}
    for name, shape in m["state_dict"]:
        if name in ("logit_scale", "logit_bias"):
            tensors[name] = np.full(shape, m["overrides"][name], np.float32)
        else:
            tensors[name] = seeded_tensor(name, shape, seed)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "spiece.model").write_bytes((FIXTURES / "medsiglip" / "spiece.model").read_bytes())
    return haidef_wsi.Encoder("medsiglip", weights=folder, batch_size=3), r


def test_texts_equal_transformers(medsiglip):
    """transformers' SiglipModel.get_text_features on the same texts; the Rust tests' bound."""
    enc, r = medsiglip
    m = r["model"]
    text = {c["name"]: c["text"] for c in r["tokenizer"]["cases"]}
    names = [n for n in m["text_order"] if text[n] != ""]
    assert len(names) >= 6
    ours = enc.embed_texts([text[n] for n in names])
    assert ours.dtype == np.float32 and ours.shape == (len(names), enc.embedding_dim) == (len(names), 1152)
    for i, n in enumerate(names):
        e = rel_err(ours[i], m["text_features"][n])
        assert e <= 1e-4, f"{n!r}: relative error {e:.2e}"
    # One string is a batch of one.
    assert np.allclose(enc.embed_texts(text["plain"]), ours[:1], rtol=1e-5, atol=1e-5)


def test_text_bad_input(medsiglip):
    enc, _ = medsiglip
    with pytest.raises(ValueError, match="empty"):
        enc.embed_texts(["tumor", ""])
    with pytest.raises(TypeError, match="list of str"):
        enc.embed_texts([1, 2])
    with pytest.raises(TypeError, match="list of str"):
        enc.embed_texts(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        images_only = haidef_wsi.Encoder("path-foundation")
    with pytest.raises(ValueError, match="path-foundation embeds images only.*medsiglip"):
        images_only.embed_texts(["tumor"])
    with pytest.raises(ValueError, match="does not take audio"):
        images_only.embed_audio(np.zeros(32000, np.float32), 16000)


@pytest.fixture(scope="module")
def hear():
    """HeAR's untrained stand-in: the full ViT-L with the seed of fixtures/hear/reference_full.json."""
    with pytest.warns(UserWarning, match="untrained"):
        return haidef_wsi.Encoder("hear", batch_size=2)


def test_audio_equals_transformers(hear):
    """fixtures/hear/make_reference.py --full: scipy's reader, Google's front end and
    transformers' ViT at full depth on the 2 s windows of speech_noise_16k.wav; the Rust
    full-depth test's bound."""
    r = json.loads((FIXTURES / "hear" / "reference_full.json").read_text())
    f = r["files"][0]
    rate, pcm = wavfile.read(FIXTURES / "hear" / f["path"])
    assert (rate, pcm.dtype) == (16000, np.int16)
    windows = f["windows"]
    clips = np.stack([pcm[w["start"] : w["start"] + 32000] for w in windows])
    ours = hear.embed_audio(clips, 16000)
    assert ours.dtype == np.float32 and ours.shape == (len(windows), 512)
    for i, w in enumerate(windows):
        d = float(np.abs(ours[i] - np.asarray(w["embedding"], np.float32)).max())
        assert d < 1e-3, f"window at {w['start_s']} s: max |diff| {d:.2e}"
    # The same samples as floats (the serving's int16 / 2^15), one clip at a time.
    floats = clips.astype(np.float32) / np.float32(32768)
    assert np.allclose(hear.embed_audio(floats[1], 16000), ours[1:], atol=1e-5)
    assert np.allclose(hear.embed_audio(floats.astype(np.float64), 16000), ours, atol=1e-5)


def test_audio_at_another_rate_is_resampled_as_scipy_does(hear):
    """A 48 kHz clip: the same embedding as scipy.signal.resample's 16 kHz clip (the serving's
    resampling)."""
    rate, x = wavfile.read(FIXTURES / "hear" / "breath_48k_float.wav")
    assert (rate, x.dtype) == (48000, np.float32)
    clip = x[:96000]
    ours = hear.embed_audio(clip, 48000)
    theirs = hear.embed_audio(resample(clip.astype(np.float64), 32000).astype(np.float32), 16000)
    d = float(np.abs(ours - theirs).max())
    assert d < 1e-3, f"max |diff| {d:.2e}"


def test_audio_bad_input(hear):
    with pytest.raises(ValueError, match=r"clip 0: a clip must be 2 s: 32000 samples at 16000 Hz .*got 16000 samples"):
        hear.embed_audio(np.zeros(16000, np.float32), 16000)
    with pytest.raises(ValueError, match=r"88200 at 44100 Hz"):
        hear.embed_audio(np.zeros((2, 32000), np.float32), 44100)
    with pytest.raises(ValueError, match="shape"):
        hear.embed_audio(np.zeros((1, 1, 32000), np.float32), 16000)
    with pytest.raises(TypeError, match="float32, float64, int16 or int32.*uint8"):
        hear.embed_audio(np.zeros(32000, np.uint8), 16000)
    with pytest.raises(TypeError, match="list"):
        hear.embed_audio([0.0] * 32000, 16000)
    bad = np.zeros((2, 32000), np.float32)
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match="clip 1: sample 5 is NaN"):
        hear.embed_audio(bad, 16000)
    with pytest.raises(ValueError, match="at least 1 Hz"):
        hear.embed_audio(np.zeros(32000, np.float32), 0)
    with pytest.raises(OverflowError):
        hear.embed_audio(np.zeros(32000, np.float32), -16000)
