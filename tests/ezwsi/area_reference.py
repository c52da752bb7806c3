"""Reference pixels for shrinking with OpenCV's INTER_AREA, as EZ-WSI shrinks DICOM patches.

EZ-WSI (and so Google's Path Foundation server) cuts a patch of a resized DICOM level by
reading the part of the level it covers and shrinking it with
`cv2.resize(region, (w, h), interpolation=cv2.INTER_AREA)`. This script, run with EZ-WSI's
virtualenv (`requirements.txt`, which has opencv-python-headless), makes seeded pseudo-random
RGB8 images of the sizes asked and writes each with its INTER_AREA shrink:

  OUT/<SW>x<SH>-<DW>x<DH>.src   the source image, raw RGB8, row-major
  OUT/<SW>x<SH>-<DW>x<DH>.dst   cv2.resize(source, (DW, DH), interpolation=cv2.INTER_AREA)

Usage: area_reference.py --out DIR SWxSH-DWxDH [...]
"""

import argparse
import os

import cv2
import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("cases", nargs="+", help="SWxSH-DWxDH")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
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
        out = cv2.resize(image, (dw, dh), interpolation=cv2.INTER_AREA)
        image.tofile(os.path.join(args.out, f"{case}.src"))
        np.ascontiguousarray(out).tofile(os.path.join(args.out, f"{case}.dst"))


if __name__ == "__main__":
    main()
