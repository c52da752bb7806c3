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
