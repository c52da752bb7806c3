"""embed_slide against the slide_heatmap example's output, progress, Ctrl-C and bad input."""
import _thread
import subprocess
import threading
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest

import haidef_wsi
from conftest import FIXTURES, ROOT


@pytest.fixture(scope="module")
def encoder():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return haidef_wsi.Encoder("path-foundation")


def test_embed_slide_writes_what_the_example_writes(tmp_path, encoder):
    exe = ROOT / "target" / "release" / "examples" / "slide_heatmap"
    assert exe.exists(), f"{exe} is built by `cargo test --release` (.ci/run runs it first)"
    slide_dir = FIXTURES / "slides" / "ihc-sparse"
    subprocess.run([str(exe), str(slide_dir), "--out", str(tmp_path / "rust"), "--mpp", "0.5", "--min-tissue", "0.25"],
                   check=True, capture_output=True)
    seen = []
    done = haidef_wsi.embed_slide(haidef_wsi.Slide(slide_dir), tmp_path / "py", encoder, mpp=0.5, min_tissue=0.25,
                                  progress=lambda d, t: seen.append((d, t)))
    ours, theirs = pq.read_table(str(done["parquet"])), pq.read_table(str(tmp_path / "rust" / "embeddings.parquet"))
    assert ours.num_rows == theirs.num_rows == done["embedded"] > 0
    assert ours.schema.names == theirs.schema.names
    for name in ours.schema.names:
        a, b = ours.column(name).to_pylist(), theirs.column(name).to_pylist()
        if name == "embedding":
            assert np.array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
        elif name == "mpp":
            assert np.allclose(a, b, equal_nan=True)
        else:
            assert a == b, name
    assert seen and seen[-1] == (done["embedded"], done["embedded"])
    assert {p.split("/")[-1] for p in map(str, done["outputs"])} >= {"embeddings.parquet", "heatmap.png", "clusters.png"}
    assert done["patches_total"] == done["embedded"] + done["patches_skipped"] and not done["trained"]


def test_ctrl_c_stops_the_job_and_leaves_no_output(tmp_path, encoder):
    slide = haidef_wsi.Slide(FIXTURES / "slides" / "ihc-full")
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        haidef_wsi.embed_slide(slide, tmp_path / "out", encoder, level=0, all_patches=True, progress=False)
    timer.cancel()
    assert not (tmp_path / "out" / "embeddings.parquet").exists()


def test_bad_options_raise_clear_errors(tmp_path, encoder):
    slide = haidef_wsi.Slide(FIXTURES / "slides" / "ihc-full")
    with pytest.raises(ValueError, match="level or mpp, not both"):
        haidef_wsi.embed_slide(slide, tmp_path, encoder, level=0, mpp=0.5)
    with pytest.raises(ValueError, match="min_tissue"):
        haidef_wsi.embed_slide(slide, tmp_path, encoder, min_tissue=3)
    with pytest.raises(haidef_wsi.HaidefError, match="level"):
        haidef_wsi.embed_slide(slide, tmp_path, encoder, level=7, progress=False)
    with pytest.raises(haidef_wsi.HaidefError, match="k"):
        haidef_wsi.embed_slide(slide, tmp_path, encoder, level=1, k=0, progress=False)


def _job_in_forked_worker(out):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = haidef_wsi.Encoder("path-foundation")
    try:
        haidef_wsi.embed_slide(haidef_wsi.Slide(FIXTURES / "slides" / "ihc-full"), out, enc, level=2, progress=False)
    except haidef_wsi.HaidefError as e:
        return str(e)
    return "no error"


def test_embed_slide_in_a_forked_worker_says_to_use_spawn(tmp_path):
    import multiprocessing as mp

    with mp.get_context("fork").Pool(1) as pool:
        said = pool.apply_async(_job_in_forked_worker, (str(tmp_path),)).get(timeout=120)
    assert "spawn" in said and "forked" in said, said


def same_table(ours, theirs):
    """Equal columns, the same file metadata apart from the inputs' spelling."""
    assert ours.num_rows == theirs.num_rows > 0
    assert ours.schema.names == theirs.schema.names
    for name in ours.schema.names:
        a, b = ours.column(name).to_pylist(), theirs.column(name).to_pylist()
        if name == "embedding":
            assert np.array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
        elif name != "path":
            assert a == b, name
    assert [p.split("/")[-1] for p in ours.column("path").to_pylist()] == [p.split("/")[-1] for p in theirs.column("path").to_pylist()]


def test_embed_images_writes_what_the_example_writes(tmp_path, encoder):
    exe = ROOT / "target" / "release" / "examples" / "embed_images"
    inputs = [FIXTURES / "images" / "patches", FIXTURES / "images" / "not_an_image.png"]
    subprocess.run([str(exe), *map(str, inputs), "--out", str(tmp_path / "rust.parquet"), "--batch", "2"], check=True, capture_output=True)
    seen = []
    done = haidef_wsi.embed_images(inputs, tmp_path / "py.parquet", encoder, batch_size=2, progress=lambda d, t: seen.append((d, t)))
    same_table(pq.read_table(str(done["parquet"])), pq.read_table(str(tmp_path / "rust.parquet")))
    assert done["embedded"] == 3 and len(done["skipped"]) == 1
    assert done["skipped"][0]["path"].endswith("not_an_image.png") and "not a readable PNG or JPEG" in done["skipped"][0]["error"]
    # The bar counts files done, the skipped one included.
    assert seen[-1] == (4, 4)
    # table=True: the file as a pyarrow.Table, with the metadata written at its end.
    table = haidef_wsi.embed_images(inputs, tmp_path / "t.parquet", encoder, batch_size=2, progress=False, table=True)
    assert table.num_rows == 3 and table.schema.field("embedding").type.list_size == 384
    meta = table.schema.metadata
    assert meta[b"files_embedded"] == b"3" and b"not_an_image.png" in meta[b"failed_files"] and meta[b"model"] == b"path-foundation"


def test_embed_audio_writes_what_the_example_writes(tmp_path):
    """The embed_audio example's Parquet, row for row; its first two windows are transformers'
    (fixtures/hear/reference_full.json, the full-depth seeded ViT-L)."""
    import json

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hear = haidef_wsi.Encoder("hear")
    exe = ROOT / "target" / "release" / "examples" / "embed_audio"
    inputs = [FIXTURES / "hear" / "speech_noise_16k.wav", FIXTURES / "hear" / "speech_22k05_8bit.wav", FIXTURES / "hear" / "bad" / "truncated_header.wav"]
    assert inputs[2].exists()
    subprocess.run([str(exe), *map(str, inputs), "--out", str(tmp_path / "rust.parquet")], check=True, capture_output=True)
    done = haidef_wsi.embed_audio(inputs, tmp_path / "py.parquet", hear, picture=tmp_path / "a.png", progress=False)
    ours = pq.read_table(str(done["parquet"]))
    same_table(ours, pq.read_table(str(tmp_path / "rust.parquet")))
    assert done["embedded"] == 6 and [s["path"].split("/")[-1] for s in done["skipped"]] == ["truncated_header.wav"]
    assert done["picture"] == tmp_path / "a.png" and done["picture"].stat().st_size > 0
    r = json.loads((FIXTURES / "hear" / "reference_full.json").read_text())
    for i, w in enumerate(r["files"][0]["windows"]):
        assert ours.column("start_s")[i].as_py() == w["start_s"]
        d = np.abs(np.asarray(ours.column("embedding")[i].as_py(), np.float32) - np.asarray(w["embedding"], np.float32)).max()
        assert d < 1e-3, f"window {i}: {d}"
    with pytest.raises(haidef_wsi.HaidefError, match="hop must be at least one sample"):
        haidef_wsi.embed_audio(inputs[0], tmp_path / "h.parquet", hear, hop=0, progress=False)


def test_job_inputs_and_options_are_checked(tmp_path, encoder):
    with pytest.raises(TypeError, match="path or a list of paths"):
        haidef_wsi.embed_images(42, tmp_path / "x.parquet", encoder)
    with pytest.raises(haidef_wsi.HaidefError, match="no PNG or JPEG"):
        haidef_wsi.embed_images(FIXTURES / "hear", tmp_path / "x.parquet", encoder)
    with pytest.raises(haidef_wsi.HaidefError, match="not an audio model"):
        haidef_wsi.embed_audio(FIXTURES / "hear" / "short_0.1s_16k.wav", tmp_path / "x.parquet", encoder, progress=False)
    with pytest.raises(haidef_wsi.HaidefError):
        haidef_wsi.embed_images(tmp_path / "missing", tmp_path / "x.parquet", encoder)
    assert not (tmp_path / "x.parquet").exists()
