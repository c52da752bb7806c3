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
    # Audio files (first byte: 0 .wav, 1 .flac, 2 .ogg, 3 .mp3; fuzz/harness/audio.rs): HeAR's
    # fixtures (sox, espeak-ng), the short ones whole, the long ones cut to their first 64 KB
    # (a truncated file is a case too), and the broken WAVs of fixtures/hear/bad/.
    for f in sorted((FIX / "hear").glob("*.wav")) + sorted((FIX / "hear").glob("*.flac")) + sorted((FIX / "hear/bad").glob("*.wav")):
        pick = 1 if f.suffix == ".flac" else 0
        put("audio_file", f"{f.parent.name}-{f.name}", bytes([pick]) + f.read_bytes()[:65536])

    # /predict bodies (fuzz/harness/serve.rs): JSON, a NUL, an image whose base64 replaces each
    # "@image" string. Shapes from Google's serving API (docs/SERVING_API.md).
    import io
    import json
    from PIL import Image
    corner = FIX / "reference/ihc-full-l0-frame-corner.png"
    small = Image.open(corner).convert("RGB").crop((0, 0, 240, 232))
    buf = io.BytesIO()
    small.save(buf, format="PNG", icc_profile=(FIX / "icc/ProPhotoRGB.icc").read_bytes())
    with_icc = buf.getvalue()
    buf = io.BytesIO()
    small.save(buf, format="PNG")
    plain = buf.getvalue()
    buf = io.BytesIO()
    small.crop((0, 0, 224, 224)).save(buf, format="PNG")
    patch = buf.getvalue()
    jpeg = (FIX / "images/exif_orientation6.jpg").read_bytes()
    at = lambda x, y, **kw: dict(x_origin=x, y_origin=y, **kw)
    requests = {
        "inline-two-patches": ({"instances": [{"raw_image_bytes": "@image", "patch_coordinates": [at(0, 0), at(16, 8, width=224, height=224)]}]}, plain),
        "inline-icc-adobergb-resized": ({"instances": [{"raw_image_bytes": "@image", "patch_coordinates": [at(10, 10)],
            "extensions": {"transform_imaging_to_icc_profile": "ADOBERGB", "image_dimensions": {"width_px": 300, "height_px": 260},
                           "require_patches_fully_in_source_image": "False"}}]}, with_icc),
        "inline-jpeg-rommrgb": ({"instances": [{"raw_image_bytes": "@image", "patch_coordinates": [at(0, 0)],
            "extensions": {"transform_imaging_to_icc_profile": "ROMMRGB", "require_patches_fully_in_source_image": False}}]}, jpeg),
        "ezwsi-image": ({"instances": [
            {"image_file_uri": "gs:///placeholder.png", "patch_coordinates": [at(8, 4, width=224, height=224)],
             "extensions": {"ez_wsi_state": {"image": "@image", "icc_profile_metadata_normalization": "NONE"}, "transform_imaging_to_icc_profile": "SRGB"}}]}, plain),
        "ezwsi-patches": ({"instances": [
            {"image_file_uri": "gs:///placeholder.png", "patch_coordinates": [at(0, 0, width=224, height=224), at(16, 8, width=224, height=224)],
             "extensions": {"ez_wsi_state": {"source_image_width_px": 240, "source_image_height_px": 232, "patches": ["@image", "@image"]}}}]}, patch),
        "remote-sources": ({"instances": [
            {"dicom_path": {"series_path": "https://store/dicomWeb/studies/1/series/2", "instance_uids": ["3"]}, "bearer_token": "t",
             "patch_coordinates": [at(0, 0)]},
            {"image_file_uri": "gs://bucket/slide.png", "patch_coordinates": [at(0, 0)]}]}, b""),
    }
    for name, (body, image) in requests.items():
        put("predict_request", name, json.dumps(body).encode() + (b"\0" + image if image else b""))
    for t in sorted(OUT.iterdir()):
        print(f"{t.name}: {len(list(t.iterdir()))} seeds")


if __name__ == "__main__":
    main()
