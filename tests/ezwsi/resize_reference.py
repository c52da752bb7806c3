"""Reference pixels for `image_dimensions`, made with Google's own code.

Google's Path Foundation server resizes an inline image with EZ-WSI's `LocalImage(bytes,
image_dimensions=...)` (gcs_image.py `_resize`, OpenCV underneath) before cutting patches.
This script, run with EZ-WSI's virtualenv (`requirements.txt`), writes the whole resized
image for each size asked, as EZ-WSI gives it: OUT/<W>x<H>.rgb, raw RGB8, row-major.

Usage: resize_reference.py --image PNG --out DIR WxH [WxH ...]
"""

import argparse
import os

import numpy as np
from ez_wsi_dicomweb import local_image
from ez_wsi_dicomweb import slide_level_map


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("sizes", nargs="+", help="WxH")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(args.image, "rb") as f:
        data = f.read()
    for size in args.sizes:
        w, h = (int(v) for v in size.split("x"))
        image = local_image.LocalImage(data, image_dimensions=slide_level_map.ImageDimensions(w, h))
        pixels = np.asarray(image.image_bytes(), dtype=np.uint8)
        if pixels.shape != (h, w, 3):
            raise SystemExit(f"{size}: EZ-WSI gave an array of shape {pixels.shape}")
        with open(os.path.join(args.out, f"{w}x{h}.rgb"), "wb") as f:
            f.write(np.ascontiguousarray(pixels).tobytes())


if __name__ == "__main__":
    main()
