"""Reference colours for `transform_imaging_to_icc_profile`, made with Google's own code.

Google's Path Foundation server transforms a patch with EZ-WSI's `image_util`
(`create_icc_profile_transformation`: Pillow's ImageCms, perceptual intent, from the image's
embedded profile to a target profile; `transform_image_bytes_color` applies it), its targets
being the ICC files EZ-WSI bundles (`dicom_slide.get_srgb_icc_profile_bytes()` and the
AdobeRGB / ROMM RGB ones). This script, run with EZ-WSI's virtualenv (`requirements.txt`),
writes for a test:

  OUT/with_profile.png   --image re-saved as PNG with --source-icc embedded (same pixels)
  OUT/<T>.icc            EZ-WSI's target profile T, for T in SRGB, ADOBERGB, ROMMRGB
  OUT/<T>.rgb            the 224x224 patch at (--x, --y) of --image, transformed from
                         --source-icc to T by EZ-WSI's functions: raw RGB8, row-major

Usage: icc_reference.py --image PNG --source-icc ICC --x X --y Y --out DIR
"""

import argparse
import os

import numpy as np
import PIL.Image
from ez_wsi_dicomweb import dicom_slide
from ez_wsi_dicomweb import image_util

PATCH = 224
TARGETS = {
    "SRGB": dicom_slide.get_srgb_icc_profile_bytes,
    "ADOBERGB": dicom_slide.get_adobergb_icc_profile_bytes,
    "ROMMRGB": dicom_slide.get_rommrgb_icc_profile_bytes,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--source-icc", required=True)
    parser.add_argument("--x", type=int, required=True)
    parser.add_argument("--y", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(args.source_icc, "rb") as f:
        source = f.read()
    with PIL.Image.open(args.image) as img:
        rgb = np.asarray(img.convert("RGB"))
    PIL.Image.fromarray(rgb).save(os.path.join(args.out, "with_profile.png"), icc_profile=source)
    patch = np.ascontiguousarray(rgb[args.y:args.y + PATCH, args.x:args.x + PATCH])
    if patch.shape != (PATCH, PATCH, 3):
        raise SystemExit(f"the patch at ({args.x}, {args.y}) is not inside the {rgb.shape[1]}x{rgb.shape[0]} image")
    for name, profile in TARGETS.items():
        target = profile()
        with open(os.path.join(args.out, f"{name}.icc"), "wb") as f:
            f.write(target)
        transform = image_util.create_icc_profile_transformation(source, target)
        out = image_util.transform_image_bytes_color(patch.copy(), transform)
        with open(os.path.join(args.out, f"{name}.rgb"), "wb") as f:
            f.write(np.ascontiguousarray(out, dtype=np.uint8).tobytes())


if __name__ == "__main__":
    main()
