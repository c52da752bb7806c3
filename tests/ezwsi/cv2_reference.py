"""Reference pixels for OpenCV's INTER_AREA and INTER_CUBIC, as EZ-WSI resizes DICOM patches.

EZ-WSI (and so Google's Path Foundation server) cuts a patch of a resized DICOM level by
reading the part of the level it covers and resizing it with `cv2.resize(region, size,
interpolation=cv2.INTER_AREA)` when shrinking, `cv2.INTER_CUBIC` when enlarging. This script,
run with EZ-WSI's virtualenv (`requirements.txt`, which has opencv-python-headless), makes
seeded pseudo-random RGB8 images of the sizes asked and writes each with its resize:

  OUT/<SW>x<SH>-<DW>x<DH>.src   the source image, raw RGB8, row-major
  OUT/<SW>x<SH>-<DW>x<DH>.dst   cv2.resize(source, (DW, DH), interpolation=INTERPOLATION)

With --no-ipp, OpenCV's own code runs instead of Intel IPP's (`cv2.ipp.setUseIPP(False)`):
on x86-64 the wheels call IPP for INTER_CUBIC on 8-bit images, which differs from OpenCV's own
cubic by one grey level in a few per cent of values; INTER_AREA does not go to IPP.

Usage: cv2_reference.py --interpolation area|cubic [--no-ipp] --out DIR SWxSH-DWxDH [...]
"""

import argparse
import os

import cv2
import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interpolation", choices=["area", "cubic"], required=True)
    parser.add_argument("--no-ipp", action="store_true", help="OpenCV's own code, not Intel IPP's")
    parser.add_argument("--out", required=True)
    parser.add_argument("cases", nargs="+", help="SWxSH-DWxDH")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.no_ipp:
        cv2.ipp.setUseIPP(False)
    rng = np.random.default_rng(20261130)
    for case in args.cases:
        src, dst = case.split("-")
        sw, sh = (int(v) for v in src.split("x"))
        dw, dh = (int(v) for v in dst.split("x"))
        # Smooth gradients plus noise: both flat runs (ties in the rounding) and detail.
        yy, xx = np.mgrid[0:sh, 0:sw]
        base = np.stack([(xx * 255 // max(sw - 1, 1)), (yy * 255 // max(sh - 1, 1)), ((xx + yy) % 256)], axis=-1)
        noise = rng.integers(-20, 21, size=(sh, sw, 3))
        image = np.clip(base + noise, 0, 255).astype(np.uint8)
        flag = {"area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC}[args.interpolation]
        out = cv2.resize(image, (dw, dh), interpolation=flag)
        image.tofile(os.path.join(args.out, f"{case}.src"))
        np.ascontiguousarray(out).tofile(os.path.join(args.out, f"{case}.dst"))


if __name__ == "__main__":
    main()
