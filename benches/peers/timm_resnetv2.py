#!/usr/bin/env python3
"""Peer benchmark: timm's ResNetV2 (BiT) forward on CPU, f32, on images from files, for the Rust
ResNet v2 family (issue 27).

    python benches/peers/timm_resnetv2.py IMAGES... [--model resnetv2_101x3_bit] [--size 448] [--repeat 3]

timm `create_model(model, pretrained=False, num_classes=0)` (random init: the weights do not
change the cost), eval, inference_mode, torch's default threads; the images through timm's eval
transform (bilinear shorter side, centre crop, mean = std = 0.5) once, then the batch of all of
them forwarded `--repeat` times. Prints `seconds_per_forward=... images_per_s=...` (the best of
the repeats) — compare with the `encode` busy time `embed_images` prints for the same images and
batch size.
"""
import argparse
import time

import timm
import torch
from PIL import Image
from timm.data import create_transform

ap = argparse.ArgumentParser()
ap.add_argument("images", nargs="+")
ap.add_argument("--model", default="resnetv2_101x3_bit")
ap.add_argument("--size", type=int, default=448)
ap.add_argument("--repeat", type=int, default=3)
args = ap.parse_args()
model = timm.create_model(args.model, pretrained=False, num_classes=0).eval()
t = create_transform(input_size=(3, args.size, args.size), interpolation="bilinear", mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)
x = torch.stack([t(Image.open(p).convert("RGB")) for p in args.images])
best = float("inf")
with torch.inference_mode():
    for _ in range(args.repeat):
        s = time.perf_counter()
        model(x)
        best = min(best, time.perf_counter() - s)
print(f"{args.model} batch={len(args.images)} threads={torch.get_num_threads()} torch={torch.__version__} "
      f"seconds_per_forward={best:.2f} images_per_s={len(args.images) / best:.3f}")
