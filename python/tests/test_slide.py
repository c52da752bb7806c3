"""Slide and read_region against wsidicom's pixels, the Rust reader's own output, and bad input."""
import pickle
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import haidef_wsi
from conftest import FIXTURES, ROOT, assert_close, png_rgb


def test_levels_as_the_files_say():
    s = haidef_wsi.Slide(FIXTURES / "slides" / "ihc-full")
    assert s.level_count == 4
    assert s.level_dimensions == [(2500, 1800), (1250, 900), (625, 450), (313, 225)]
    assert s.level_tile_size == [(256, 256)] * 4
    assert s.level_downsamples[0] == 1.0 and abs(s.level_downsamples[1] - 2.0) < 1e-12
    assert all(m is None or m > 0 for m in s.level_mpp)
    assert s.series_instance_uid and s.study_instance_uid
    assert "2500x1800" in repr(s)


def test_regions_equal_wsidicom(regions):
    opened = {}
    for r in regions:
        s = opened.setdefault(r["slide"], haidef_wsi.Slide(FIXTURES / "slides" / r["slide"]))
        ours = s.read_region(r["x"], r["y"], r["width"], r["height"], level=r["level"])
        assert ours.dtype == np.uint8 and ours.shape == (r["height"], r["width"], 3)
        assert_close(f"{r['slide']} level {r['level']} at {r['x']},{r['y']}", ours, png_rgb(FIXTURES / r["png"]))
    assert len(opened) >= 3


def test_regions_equal_the_rust_example(tmp_path):
    """The same bytes as `extract_patch` (the Rust reader through the example) writes."""
    exe = ROOT / "target" / "release" / "examples" / "extract_patch"
    assert exe.exists(), f"{exe} is built by `cargo test --release` (.ci/run runs it first)"
    out = tmp_path / "p.png"
    subprocess.run([str(exe), str(FIXTURES / "slides" / "ihc-j2k"), "--level", "1", "--x", "50", "--y", "30",
                    "--width", "250", "--height", "190", "--out", str(out)], check=True, capture_output=True)
    ours = haidef_wsi.Slide(FIXTURES / "slides" / "ihc-j2k").read_region(50, 30, 250, 190, level=1)
    assert np.array_equal(ours, png_rgb(out))


def test_pad_fills_outside_with_white():
    s = haidef_wsi.Slide(FIXTURES / "slides" / "ihc-full")
    w, h = s.level_dimensions[3]
    r = s.read_region(w - 10, h - 10, 20, 20, level=3, pad=True)
    assert (r[10:, :] == 255).all() and (r[:, 10:] == 255).all()
    assert np.array_equal(r[:10, :10], s.read_region(w - 10, h - 10, 10, 10, level=3))
    # Without pad: an error that names the region, the level and the argument that pads.
    with pytest.raises(haidef_wsi.HaidefError, match=r"x=303 y=215 20x20 is not inside level 3 \(313x225 px\).*\(pad=True\)"):
        s.read_region(w - 10, h - 10, 20, 20, level=3)


def test_pickles_as_its_path_and_reads_the_same():
    s = haidef_wsi.Slide.open(str(FIXTURES / "slides" / "ihc-full"))
    t = pickle.loads(pickle.dumps(s))
    assert t.path == s.path
    assert np.array_equal(t.read_region(100, 100, 64, 64, level=1), s.read_region(100, 100, 64, 64, level=1))


def test_threads_read_in_parallel_and_agree():
    s = haidef_wsi.Slide(FIXTURES / "slides" / "ihc-full")
    spots = [(x, y) for x in range(0, 2200, 300) for y in range(0, 1500, 300)]
    alone = [s.read_region(x, y, 224, 224) for x, y in spots]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda p: s.read_region(p[0], p[1], 224, 224), spots))
    assert all(np.array_equal(a, b) for a, b in zip(alone, together))
    assert threading.active_count() >= 1


def test_bad_input_raises_clear_errors(tmp_path):
    with pytest.raises(haidef_wsi.HaidefError, match="nope"):
        haidef_wsi.Slide(tmp_path / "nope")
    s = haidef_wsi.Slide(FIXTURES / "slides" / "ihc-full")
    with pytest.raises(haidef_wsi.HaidefError, match="level"):
        s.read_region(0, 0, 10, 10, level=9)
    with pytest.raises(haidef_wsi.HaidefError):
        s.read_region(2490, 0, 20, 20, level=0)
    with pytest.raises(ValueError, match="at least 1"):
        s.read_region(0, 0, 0, 10)
    with pytest.raises(OverflowError):
        s.read_region(0, 0, -5, 10)
    not_dicom = tmp_path / "x.dcm"
    not_dicom.write_bytes(b"not a dicom file")
    with pytest.raises(haidef_wsi.HaidefError):
        haidef_wsi.Slide(not_dicom)


def test_patches_are_the_regions_at_their_places():
    s = haidef_wsi.Slide(FIXTURES / "slides" / "ihc-full")
    grid = s.patches(level=1, size=224, stride=200)
    w, h = s.level_dimensions[1]
    cols, rows = (w - 224) // 200 + 1, (h - 224) // 200 + 1
    assert grid.shape == (cols, rows) and len(grid) == cols * rows
    seen = list(grid)
    assert len(seen) == cols * rows
    assert [(x, y) for x, y, _ in seen] == [(c * 200, r * 200) for r in range(rows) for c in range(cols)]
    for x, y, patch in seen:
        assert patch.shape == (224, 224, 3) and patch.dtype == np.uint8
        assert np.array_equal(patch, s.read_region(x, y, 224, 224, level=1)), (x, y)
    assert list(grid) == [], "an iterator, used once"
    assert len(list(s.patches(level=3, size=400))) == 0, "no whole patch fits level 3 (313 x 225)"
    with pytest.raises(haidef_wsi.HaidefError, match="positive"):
        s.patches(size=0)


def test_label_equals_pydicom():
    import pydicom

    s = haidef_wsi.Slide(FIXTURES / "slides" / "ihc-full")
    assert "LABEL" in s.associated_images
    ours = s.read_associated("label")
    theirs = pydicom.dcmread(FIXTURES / "slides" / "ihc-full" / "label.dcm").pixel_array
    assert_close("label", ours, theirs)
    with pytest.raises(ValueError, match="label.*overview.*thumbnail"):
        s.read_associated("barcode")
    if "THUMBNAIL" not in s.associated_images:
        with pytest.raises(ValueError, match="has no THUMBNAIL image"):
            s.read_associated("thumbnail")


def _read_in_worker(slide):
    """What a DataLoader worker does with a slide it was given: regions and grid patches."""
    region = slide.read_region(100, 100, 300, 200, level=1)
    first = next(iter(slide.patches(level=2, size=128)))
    return region, first[2]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_slides_work_in_forked_and_spawned_workers(method):
    import multiprocessing as mp

    s = haidef_wsi.Slide(FIXTURES / "slides" / "ihc-full")
    want = _read_in_worker(s)  # the parent has used its threads before the workers start
    with mp.get_context(method).Pool(1) as pool:
        got = pool.apply_async(_read_in_worker, (s,)).get(timeout=120)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_a_closed_slide_says_so():
    with haidef_wsi.Slide(FIXTURES / "slides" / "ihc-full") as s:
        assert not s.closed and s.read_region(0, 0, 8, 8).shape == (8, 8, 3)
        grid = s.patches(level=3, size=64)
    assert s.closed and "closed" in repr(s)
    for use in [lambda: s.read_region(0, 0, 8, 8), lambda: s.level_dimensions, lambda: s.patches(),
                lambda: s.read_associated("label"), lambda: s.warnings]:
        with pytest.raises(ValueError, match="ihc-full is closed; open it again"):
            use()
    s.close()  # twice: harmless
    # An iterator made before closing keeps reading.
    assert len(list(grid)) == len(grid) > 0
    with pytest.warns(UserWarning):
        enc = haidef_wsi.Encoder("path-foundation")
    with pytest.raises(ValueError, match="closed"):
        haidef_wsi.embed_slide(s, FIXTURES / "never", enc, progress=False)
    # It still pickles as what reopens it.
    assert pickle.loads(pickle.dumps(s)).level_count == 4


@pytest.mark.parametrize("name, opens, expected", [
    ("bad/ct_small.dcm", False, r"not a VL Whole Slide Microscopy image \(SOP Class 1.2.840.10008.5.1.4.1.1.2"),
    ("bad/tiled_full_count_mismatch.dcm", False, r"NumberOfFrames 1 but its 2x1 tile grid .* needs 2"),
    ("bad/truncated.dcm", True, r"truncated.dcm: pixel data: fragment 1 .* past the end of the file"),
    ("bad/bot_past_end.dcm", True, r"offset table entry for frame 2"),
    ("bad/corrupt_jpeg.dcm", True, r"corrupt_jpeg.dcm: frame 2 \(1-based\): JPEG decoding failed"),
    ("fuzz-regressions/dicom_file/huge-ob-element-7969b51a", False, r"claims 1498349042 bytes but the whole file is 38241"),
    ("fuzz-regressions/dicom_file/meta-unknown-vr-d702852a", False, r"not a readable DICOM Part 10 file"),
    ("fuzz-regressions/dicom_file/rows-beyond-us-1f475662", False, r"Rows \(0028,0010\): 6235915 does not fit its VR"),
    ("fuzz-regressions/dicom_file/sequence-length-mismatch-d6ef6131", False, r"not a readable DICOM Part 10 file"),
    ("fuzz-regressions/dicom_folder/huge-element-e1a6afa1", False, r"not a readable DICOM Part 10 file"),
    ("fuzz-regressions/dicom_folder/sequence-length-mismatch-941d961c", False, r"not a readable DICOM Part 10 file"),
    ("fuzz-regressions/dicom_folder/timeout-c9506a24", False, r"not a readable DICOM Part 10 file"),
])
def test_hostile_files_raise_the_libraries_errors(name, opens, expected):
    """fixtures/bad (fixtures/make_bad.py) and what the fuzzers found: an exception naming the
    file and what is wrong, never a crash of the interpreter."""
    if not opens:
        with pytest.raises(haidef_wsi.HaidefError, match=expected):
            haidef_wsi.Slide(FIXTURES / name)
        return
    s = haidef_wsi.Slide(FIXTURES / name)
    w, h = s.level_dimensions[0]
    with pytest.raises(haidef_wsi.HaidefError, match=expected):
        s.read_region(0, 0, w, h)
    if name.endswith("corrupt_jpeg.dcm"):
        assert s.read_region(0, 0, 100, 100).shape == (100, 100, 3), "frame 1 still reads"


def test_a_bad_frame_mid_slide_fails_the_job_or_is_skipped_and_listed(tmp_path):
    slide = haidef_wsi.Slide(FIXTURES / "bad" / "corrupt-mid-slide")
    with pytest.warns(UserWarning):
        enc = haidef_wsi.Encoder("path-foundation")
    with pytest.raises(haidef_wsi.HaidefError, match=r"level-0.dcm: frame 36 \(1-based\)"):
        haidef_wsi.embed_slide(slide, tmp_path / "a", enc, level=0, all_patches=True, progress=False)
    assert not (tmp_path / "a" / "embeddings.parquet").exists()
    done = haidef_wsi.embed_slide(slide, tmp_path / "b", enc, level=0, all_patches=True, skip_unreadable_frames=True,
                                  progress=False)
    bad = done["unreadable"]
    assert bad and all("frame 36" in u["error"] for u in bad)
    assert done["embedded"] + len(bad) == done["patches_total"]
