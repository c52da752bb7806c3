"""Slide.open on a DICOMweb URL, against a real Orthanc with its DICOMweb plugin (installed by
.ci/run): the same levels and pixels as the files it was given (and wsidicom's), pickling,
the slide job, and the server's refusals as errors."""
import json
import os
import pickle
import shutil
import socket
import subprocess
import time
import urllib.request
import warnings
from base64 import b64encode

import numpy as np
import pyarrow.parquet as pq
import pytest

import haidef_wsi
from conftest import FIXTURES, assert_close, png_rgb

ORTHANC = "/usr/sbin/Orthanc"
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
USER, PASSWORD = "alice", "s3cret-pw"  # fixtures/dicomweb/orthanc.json's registered user


def _call(url, data=None, headers=None):
    auth = b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    req = urllib.request.Request(url, data=data, headers={"Authorization": f"Basic {auth}", **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """Orthanc on a free loopback port, basic authentication on, fixtures/slides/ihc-full
    stored with one STOW-RS request. Fails under CI when Orthanc is missing (.ci/run installs it)."""
    if not (os.path.exists(ORTHANC) and os.path.exists(PLUGIN)):
        assert "CI" not in os.environ, "CI must install orthanc and orthanc-dicomweb (.ci/run does)"
        pytest.skip("Orthanc or its DICOMweb plugin is not installed (apt install orthanc orthanc-dicomweb)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = tmp_path_factory.mktemp("orthanc")
    config = json.loads((FIXTURES / "dicomweb" / "orthanc.json").read_text())
    config.update(HttpPort=port, StorageDirectory=str(work / "db"), IndexDirectory=str(work / "db"), AuthenticationEnabled=True)
    config["DicomWeb"]["Host"] = f"127.0.0.1:{port}"
    (work / "config.json").write_text(json.dumps(config))
    log = open(work / "orthanc.log", "wb")
    server = subprocess.Popen([ORTHANC, str(work / "config.json")], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        start = time.monotonic()
        while True:
            try:
                _call(f"{base}/system")
                break
            except OSError:
                assert time.monotonic() - start < 20, f"Orthanc did not start; see {work / 'orthanc.log'}"
                time.sleep(0.1)
        folder = FIXTURES / "slides" / "ihc-full"
        boundary = "haidef-wsi-python-stow-5c2e9a"
        body = b""
        for f in sorted(folder.iterdir()):
            body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + f.read_bytes() + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        status, answer = _call(f"{base}/dicom-web/studies", body, {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json"})
        stored = json.loads(answer)["00081199"]["Value"]
        assert status == 200 and len(stored) == len(list(folder.iterdir()))
        local = haidef_wsi.Slide(folder)
        url = f"{base}/dicom-web/studies/{local.study_instance_uid}/series/{local.series_instance_uid}"
        yield url, local
    finally:
        server.kill()
        server.wait()
        log.close()
        shutil.rmtree(work / "db", ignore_errors=True)


def test_a_dicomweb_slide_reads_what_its_files_hold(orthanc, regions):
    url, local = orthanc
    remote = haidef_wsi.Slide.open(url, basic_auth=(USER, PASSWORD), frames_per_request=4)
    assert remote.url == url and remote.path is None
    assert remote.level_dimensions == local.level_dimensions and remote.level_mpp == local.level_mpp
    assert remote.series_instance_uid == local.series_instance_uid
    for level, (w, h) in enumerate(local.level_dimensions):
        for x, y, rw, rh in [(0, 0, 224, 224), (w // 3, h // 4, 300, 170), (w - 100, h - 60, 100, 60)]:
            rw, rh = min(rw, w - x), min(rh, h - y)
            a, b = remote.read_region(x, y, rw, rh, level=level), local.read_region(x, y, rw, rh, level=level)
            assert np.array_equal(a, b), f"level {level} at {x},{y}"
    # wsidicom's pixels of the same slide (fixtures/make_references.py).
    mine = [r for r in regions if r["slide"] == "ihc-full"]
    assert mine
    for r in mine:
        ours = remote.read_region(r["x"], r["y"], r["width"], r["height"], level=r["level"])
        assert_close(f"ihc-full over DICOMweb, level {r['level']} at {r['x']},{r['y']}", ours, png_rgb(FIXTURES / r["png"]))
    # Pickled (as for DataLoader workers) with its options and credentials: reopens the URL.
    again = pickle.loads(pickle.dumps(remote))
    assert again.url == url and np.array_equal(again.read_region(10, 20, 64, 64, level=1), local.read_region(10, 20, 64, 64, level=1))
    # "user:password" is accepted too.
    assert haidef_wsi.Slide(url, basic_auth=f"{USER}:{PASSWORD}").level_count == local.level_count


def test_the_slide_job_over_dicomweb_equals_the_files(orthanc, tmp_path):
    url, local = orthanc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = haidef_wsi.Encoder("path-foundation")
    remote = haidef_wsi.Slide(url, basic_auth=(USER, PASSWORD))
    a = haidef_wsi.embed_slide(remote, tmp_path / "remote", enc, level=1, min_tissue=0.25, k=3, progress=False, table=True)
    b = haidef_wsi.embed_slide(local, tmp_path / "local", enc, level=1, min_tissue=0.25, k=3, progress=False, table=True)
    assert a.num_rows == b.num_rows > 0
    for name in ["x", "y", "tissue_fraction"]:
        assert a.column(name).to_pylist() == b.column(name).to_pylist(), name
    assert np.abs(np.asarray(a.column("embedding").to_pylist()) - np.asarray(b.column("embedding").to_pylist())).max() < 1e-5
    for picture in ["heatmap.png", "clusters.png"]:
        assert (tmp_path / "remote" / picture).read_bytes() == (tmp_path / "local" / picture).read_bytes(), picture
    assert pq.read_table(str(tmp_path / "remote" / "embeddings.parquet")).num_rows == a.num_rows


def test_the_server_refusals_and_bad_options_are_clear_errors(orthanc):
    url, local = orthanc
    with pytest.raises(haidef_wsi.HaidefError, match="401"):
        haidef_wsi.Slide(url, basic_auth=(USER, "wrong"))
    with pytest.raises(haidef_wsi.HaidefError, match="401"):
        haidef_wsi.Slide(url)
    missing = url.rsplit("/", 1)[0] + "/1.2.3.4.5"
    with pytest.raises(haidef_wsi.HaidefError):
        haidef_wsi.Slide(missing, basic_auth=(USER, PASSWORD))
    with pytest.raises(ValueError, match="bearer_token or basic_auth, not both"):
        haidef_wsi.Slide(url, bearer_token="t", basic_auth=(USER, PASSWORD))
    with pytest.raises(ValueError, match="series applies to folders"):
        haidef_wsi.Slide(url, series="1.2.3")
    with pytest.raises(ValueError, match="bearer_token applies to DICOMweb URLs"):
        haidef_wsi.Slide(FIXTURES / "slides" / "ihc-full", bearer_token="t")
    with pytest.raises(ValueError, match="frames_per_request must be at least 1"):
        haidef_wsi.Slide(url, basic_auth=(USER, PASSWORD), frames_per_request=0)
    with pytest.raises(ValueError, match="timeout"):
        haidef_wsi.Slide(url, basic_auth=(USER, PASSWORD), timeout=-1)
    with pytest.raises(TypeError, match="basic_auth"):
        haidef_wsi.Slide(url, basic_auth=42)
    with pytest.raises(TypeError, match="path or a DICOMweb URL"):
        haidef_wsi.Slide(3.5)
