#!/usr/bin/env python3
"""Write a large tiled DICOM WSI pyramid for measuring the pipeline's peak memory.

    /root/.venvs/torch-cpu/bin/python tools/make_big_slide.py OUT_DIR [--grid-side N] [--no-check]

Purpose: peak-RSS measurement of the pipeline on a slide with about 100,000 patches (see
docs/FAULTS.md). The fixtures in fixtures/slides are a few thousand pixels across; a real
40x slide is tens of thousands. Memory that grows with the slide (per-patch records, the
patch grid, the embeddings kept for k-means, Parquet buffers) only shows at that scale, so
this script builds one, deterministically, from the fixture fixtures/slides/ihc-full.

Level 0 is 224*G px wide and 224*(G-1) px high (G = --grid-side, default 317), i.e.
G * (G-1) patches of 224 px: 317 * 316 = 100,172 by default. Levels 1, 2 and 3 are
downsampled by 4, 16 and 64 (sizes rounded up). All levels use 256x256 frames, TILED_FULL,
JPEG baseline, YBR_FULL_422, one fragment per frame, with a Basic Offset Table.

Why the content is repeated tiles: encoding a real 70,000-px image would take long and need
gigabytes, and what the measurement needs is only (a) the right geometry and (b) tissue in
every patch, so that no patch is dropped by tissue filtering and every one is decoded and
embedded. So the 16 most tissue-rich full tiles of the fixture's level 0 are re-encoded small
(JPEG quality 40, 4:2:2) and laid out in a fixed pattern: frame i (row-major) shows tile
(col * 7 + row * 3) % 16. Lower levels use the same tiles: they are NOT true downsamples of
level 0, only the right size with tissue everywhere. Do not use this slide to judge
embeddings, heatmaps or anything that depends on what the image shows.

Metadata is copied from the fixture's level-0 dataset (one study, one series, one frame of
reference for all four files); each file gets its own deterministic SOP Instance UID and
InstanceNumber = level + 1. The fixture's PixelSpacing disagrees with its ImagedVolume
Width/Height (the dicomizer writes it swapped; wsi/src/image_info.rs trusts the imaged
volume in that case), so the spacing used here is the one the project's reader resolves for
the fixture (0.5 um/px), scaled by each level's downsample, and PixelSpacing and
ImagedVolumeWidth/Height are written consistent with each other.
"""

from __future__ import annotations

import argparse
import copy
import io
import math
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataelem import DataElement
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import generate_uid

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "fixtures" / "slides" / "ihc-full" / "level-0.dcm"

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
PATCH = 224
TILE = 256
TILE_SET_SIZE = 16
JPEG_QUALITY = 40
DOWNSAMPLES = (1, 4, 16, 64)
MAX_FILE_BYTES = 1_500_000_000  # stop well before the 32-bit Basic Offset Table limit


def tile_number(col: int, row: int) -> int:
    """Which tile of the tile set the frame at (col, row) shows."""
    return (col * 7 + row * 3) % TILE_SET_SIZE


def resolved_spacing_mm(ds: pydicom.Dataset) -> tuple[float, float]:
    """(row spacing, column spacing) in mm, as wsi/src/image_info.rs resolves it.

    PixelSpacing from the shared functional groups, unless ImagedVolumeWidth/Height over the
    pixel matrix disagree with it by more than 1 %, in which case those win. Rounded to 6
    significant digits: ImagedVolumeWidth/Height are 32-bit floats (0.9 mm reads 0.89999998).
    """
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    declared = tuple(float(v) for v in measures.PixelSpacing)
    width_mm, height_mm = ds.get("ImagedVolumeWidth"), ds.get("ImagedVolumeHeight")
    if not width_mm or not height_mm:
        return declared
    from_volume = (float(height_mm) / ds.TotalPixelMatrixRows, float(width_mm) / ds.TotalPixelMatrixColumns)
    close = all(abs(d - v) <= 0.01 * max(d, v) for d, v in zip(declared, from_volume))
    chosen = declared if close else from_volume
    return tuple(float(f"{v:.6g}") for v in chosen)


def pick_tiles(ds: pydicom.Dataset) -> list[bytes]:
    """The TILE_SET_SIZE full tiles with the most tissue, re-encoded as small JPEGs."""
    if ds.file_meta.TransferSyntaxUID != JPEG_BASELINE:
        sys.exit(f"{SOURCE}: expected JPEG baseline, found {ds.file_meta.TransferSyntaxUID}")
    if (ds.Rows, ds.Columns) != (TILE, TILE):
        sys.exit(f"{SOURCE}: expected {TILE}x{TILE} frames, found {ds.Columns}x{ds.Rows}")
    across = math.ceil(ds.TotalPixelMatrixColumns / TILE)
    full_cols = ds.TotalPixelMatrixColumns // TILE
    full_rows = ds.TotalPixelMatrixRows // TILE
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))

    scored = []  # (mean saturation, frame index, RGB image)
    for index, frame in enumerate(frames):
        row, col = divmod(index, across)
        if col >= full_cols or row >= full_rows:
            continue  # partial edge tile
        rgb = Image.open(io.BytesIO(frame)).convert("RGB")
        saturation = float(np.asarray(rgb.convert("HSV"))[..., 1].mean())
        scored.append((saturation, index, rgb))
    if len(scored) < TILE_SET_SIZE:
        sys.exit(f"{SOURCE}: only {len(scored)} full tiles, need {TILE_SET_SIZE}")
    scored.sort(key=lambda s: (-s[0], s[1]))  # most saturated first; ties by index

    tiles = []
    for saturation, index, rgb in scored[:TILE_SET_SIZE]:
        out = io.BytesIO()
        # subsampling=1 is 4:2:2, matching PhotometricInterpretation YBR_FULL_422.
        rgb.save(out, format="JPEG", quality=JPEG_QUALITY, subsampling=1, optimize=False)
        data = out.getvalue()
        assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9", "PIL wrote an odd JPEG"
        if len(data) % 2:
            data += b"\x00"  # fragments have even length; decoders stop at EOI
        tiles.append(data)
        print(f"  tile {len(tiles) - 1:2}: source frame {index:2} (saturation {saturation:5.1f}), {len(data)} bytes")
    return tiles


def level_dataset(template: pydicom.Dataset, level: int, width: int, height: int,
                  spacing_mm: tuple[float, float], frames: list[bytes]) -> pydicom.Dataset:
    """The dataset of one pyramid level: the template with this level's geometry and pixels."""
    ds = copy.deepcopy(template)
    uid = generate_uid(entropy_srcs=["haidef make_big_slide", template.SeriesInstanceUID,
                                     str(level), str(width), str(height)])
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.InstanceNumber = level + 1
    ds.TotalPixelMatrixColumns = width
    ds.TotalPixelMatrixRows = height
    ds.NumberOfFrames = len(frames)
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    measures.PixelSpacing = [f"{s:.10g}" for s in spacing_mm]
    if "ImagedVolumeWidth" in ds:
        ds.ImagedVolumeWidth = width * spacing_mm[1]
    if "ImagedVolumeHeight" in ds:
        ds.ImagedVolumeHeight = height * spacing_mm[0]
    mean_frame = sum(len(f) for f in frames) / len(frames)
    ds.LossyImageCompressionRatio = f"{TILE * TILE * 3 / mean_frame:.1f}"
    ds.add(DataElement(0x7FE00010, "OB", encapsulate(frames, has_bot=True), is_undefined_length=True))
    return ds


def write_pyramid(out_dir: Path, grid_side: int) -> None:
    started = time.monotonic()
    print(f"source: {SOURCE}")
    source = pydicom.dcmread(SOURCE)
    tiles = pick_tiles(source)
    base_spacing = resolved_spacing_mm(source)

    template = source
    del template.PixelData
    if "PerFrameFunctionalGroupsSequence" in template:
        del template.PerFrameFunctionalGroupsSequence  # TILED_FULL needs no per-frame positions
    template.DimensionOrganizationType = "TILED_FULL"

    base_w, base_h = PATCH * grid_side, PATCH * (grid_side - 1)
    across0, down0 = math.ceil(base_w / TILE), math.ceil(base_h / TILE)
    estimate = 8 * across0 * down0 + sum(len(tiles[tile_number(c, r)]) for r in range(down0) for c in range(across0))
    if estimate > MAX_FILE_BYTES:
        sys.exit(f"level 0 would be about {estimate / 1e9:.2f} GB (> {MAX_FILE_BYTES / 1e9:.1f} GB); use a smaller --grid-side")

    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"writing {out_dir}")
    for level, factor in enumerate(DOWNSAMPLES):
        width, height = math.ceil(base_w / factor), math.ceil(base_h / factor)
        across, down = math.ceil(width / TILE), math.ceil(height / TILE)
        # Frames reference the same 16 bytes objects: the list costs pointers, not copies.
        frames = [tiles[tile_number(col, row)] for row in range(down) for col in range(across)]
        spacing = (base_spacing[0] * factor, base_spacing[1] * factor)
        ds = level_dataset(template, level, width, height, spacing, frames)
        path = out_dir / f"level-{level}.dcm"
        ds.save_as(path, enforce_file_format=True)
        del ds
        print(f"  level {level}: {width} x {height} px, {across} x {down} = {len(frames)} frames, "
              f"{width // PATCH} x {height // PATCH} = {(width // PATCH) * (height // PATCH)} patches of {PATCH} px, "
              f"{spacing[1] * 1000:.3f} um/px, {path.stat().st_size / 1e6:.1f} MB")
    print(f"done in {time.monotonic() - started:.1f} s")


def check(out_dir: Path, grid_side: int) -> None:
    """Open the pyramid with wsidicom and pydicom and look at a few places."""
    from wsidicom import WsiDicom

    started = time.monotonic()
    base_w, base_h = PATCH * grid_side, PATCH * (grid_side - 1)
    with WsiDicom.open(out_dir) as slide:
        print("wsidicom levels:")
        for level in slide.levels:
            print(f"  {level.pyramid}")
        assert len(slide.levels) == len(DOWNSAMPLES), f"wsidicom sees {len(slide.levels)} levels"
        assert (slide.size.width, slide.size.height) == (base_w, base_h), slide.size
        places = {"middle": ((base_w // 2 // PATCH) * PATCH, (base_h // 2 // PATCH) * PATCH),
                  "bottom-right": (base_w - PATCH, base_h - PATCH)}
        for name, (x, y) in places.items():
            region = np.asarray(slide.read_region((x, y), 0, (PATCH, PATCH)).convert("RGB"))
            spread = int(region.max(axis=2).astype(int).mean() - region.min(axis=2).astype(int).mean())
            saturation = float(np.asarray(Image.fromarray(region).convert("HSV"))[..., 1].mean())
            print(f"  level 0 {PATCH}px region at ({x}, {y}) [{name}]: mean RGB "
                  f"{region.reshape(-1, 3).mean(axis=0).round(1).tolist()}, std {region.std():.1f}, "
                  f"mean saturation {saturation:.1f}")
            assert region.std() > 5 and spread > 5 and saturation > 10, f"{name} region looks blank"

    level3 = pydicom.dcmread(out_dir / "level-3.dcm")
    frames = list(generate_frames(level3.PixelData, number_of_frames=int(level3.NumberOfFrames)))
    expected = math.ceil(math.ceil(base_w / 64) / TILE) * math.ceil(math.ceil(base_h / 64) / TILE)
    assert len(frames) == int(level3.NumberOfFrames) == expected, (len(frames), level3.NumberOfFrames, expected)
    for frame in frames:
        assert Image.open(io.BytesIO(frame)).size == (TILE, TILE)
    print(f"  pydicom: level-3.dcm has {len(frames)} frames (expected {expected}), all decode to {TILE}x{TILE}")
    print(f"check passed in {time.monotonic() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder for level-0.dcm .. level-3.dcm")
    parser.add_argument("--grid-side", type=int, default=317,
                        help="G: level 0 is 224*G x 224*(G-1) px, G*(G-1) patches (default 317: 100,172)")
    parser.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                        help="read the result back with wsidicom and pydicom (default on)")
    args = parser.parse_args()
    if args.grid_side < 2:
        parser.error("--grid-side must be at least 2")
    write_pyramid(args.out_dir, args.grid_side)
    if args.check:
        check(args.out_dir, args.grid_side)


if __name__ == "__main__":
    main()
