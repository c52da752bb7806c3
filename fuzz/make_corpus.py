#!/usr/bin/env python3
"""Seed corpora for the cargo-fuzz targets, from the repository's fixtures (made by third-party
tools; see fixtures/README.md). Writes fuzz/corpus/<target>/ (not committed: the fuzzer grows
these folders; rerun this to start afresh). Needs pydicom (the fixtures' virtualenv).

    ~/.venvs/torch-cpu/bin/python fuzz/make_corpus.py
"""
from pathlib import Path

import pydicom
from pydicom.encaps import generate_frames

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "fixtures"
OUT = ROOT / "fuzz" / "corpus"


def put(target: str, name: str, data: bytes) -> None:
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def main() -> None:
    # Whole DICOM files (small ones: libFuzzer's inputs stay under the largest seed).
    small = [FIX / "slides/ihc-full/label.dcm", FIX / "slides/ihc-full/level-3.dcm",
             FIX / "slides/ihc-sparse/level-3.dcm", FIX / "slides/ihc-raw-implicit/level-1.dcm"]
    small += sorted((FIX / "bad").glob("*.dcm"))
    for f in small:
        put("dicom_file", f"{f.parent.name}-{f.name}", f.read_bytes())

    # Slide folders: a small pyramid's files joined by the separator (fuzz/harness/wsi.rs).
    sep = b"--haidef-next-file--"
    put("dicom_folder", "ihc-full-3-label", (FIX / "slides/ihc-full/level-3.dcm").read_bytes() + sep + (FIX / "slides/ihc-full/label.dcm").read_bytes())
    put("dicom_folder", "ihc-sparse-3-bad", (FIX / "slides/ihc-sparse/level-3.dcm").read_bytes() + sep + (FIX / "bad/tiled_full_count_mismatch.dcm").read_bytes())

    # DICOM JSON metadata of instances, as a DICOMweb server gives it (bulk data left out).
    for f in small[:3] + [FIX / "slides/ihc-j2k/level-1.dcm", FIX / "slides/ihc-raw/level-1.dcm"]:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        put("metadata_json", f"{f.parent.name}-{f.stem}.json", ds.to_json(bulk_data_threshold=1024,
            bulk_data_element_handler=lambda e: "http://bulk/" + str(e.tag)).encode())

    # A multipart/related answer Orthanc gave (fixtures/dicomweb/capture.sh): header line, body.
    ct = (FIX / "dicomweb/orthanc-1.10-frames-1-3.content-type").read_bytes().strip()
    put("multipart", "orthanc-frames-1-3", ct + b"\n" + (FIX / "dicomweb/orthanc-1.10-frames-1-3.multipart").read_bytes())

    # Frames by kind (first byte: 0 JPEG baseline, 1 JPEG 2000, 2 uncompressed; fuzz/harness/wsi.rs).
    for pick, f in [(0, FIX / "slides/ihc-full/level-3.dcm"), (1, FIX / "slides/ihc-j2k/level-1.dcm")]:
        ds = pydicom.dcmread(f)
        frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
        for i, fr in enumerate(frames[:2]):
            put("frame", f"{pick}-{f.parent.name}-{i}", bytes([pick]) + fr)
    ds = pydicom.dcmread(FIX / "slides/ihc-raw/level-1.dcm")
    n = int(ds.Rows) * int(ds.Columns) * 3
    put("frame", "2-ihc-raw-0", bytes([2]) + ds.PixelData[:n])

    # Image files (first byte: 0 .png, 1 .jpg; fuzz/harness/images.rs).
    for f in ["grey8.png", "grey16.png", "rgba8.png", "bomb.png", "not_an_image.png", "exif_orientation6.jpg"]:
        put("image_file", f, bytes([1 if f.endswith(".jpg") else 0]) + (FIX / "images" / f).read_bytes())
    for t in sorted(OUT.iterdir()):
        print(f"{t.name}: {len(list(t.iterdir()))} seeds")


if __name__ == "__main__":
    main()
