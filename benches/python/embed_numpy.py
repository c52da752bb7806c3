#!/usr/bin/env python3
"""Embedding a numpy batch from Python: haidef_wsi's Encoder.embed against timm (PyTorch) on the
same uint8 batch, preprocessing included (issue 31's speed check; tools/bench_python.sh runs it).

    python benches/python/embed_numpy.py --impl haidef [--batch 32] [--seconds 10] [--tune]
    python benches/python/embed_numpy.py --impl timm   [--batch 32] [--seconds 10]

The batch: numpy's default_rng(0) uint8 (N, 224, 224, 3), channels last, as a Python user holds
patches. haidef: Encoder("path-foundation") (the seeded ViT-S/16; the weights do not change the
cost) .embed(batch); --tune calls haidef_wsi.tune_cpu_inference() first. timm:
vit_small_patch16_224 (num_classes=0), torch.from_numpy → NCHW float32 / 255 (Path
Foundation's scaling: mean 0, std 1), eval, inference_mode, torch's default threads. One
warm-up call, then calls are timed until --seconds have passed. Prints one line:
    <impl> batch=N images_per_s=... calls=... threads=...
"""
import argparse
import os
import time
import warnings

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=["haidef", "timm"], required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--tune", action="store_true")
    args = ap.parse_args()
    batch = np.random.default_rng(0).integers(0, 256, (args.batch, 224, 224, 3), dtype=np.uint8)
    if args.impl == "haidef":
        import haidef_wsi

        if args.tune:
            haidef_wsi.tune_cpu_inference()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            enc = haidef_wsi.Encoder("path-foundation", batch_size=args.batch)
        run = enc.embed
        threads = os.environ.get("RAYON_NUM_THREADS")
    else:
        import timm
        import torch

        model = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0).eval()

        def run(b):
            with torch.inference_mode():
                x = torch.from_numpy(b).permute(0, 3, 1, 2).float().div_(255.0)
                return model(x).numpy()

        threads = torch.get_num_threads()
    out = run(batch)
    assert out.shape == (args.batch, 384)
    calls, start = 0, time.perf_counter()
    while True:
        run(batch)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= args.seconds:
            break
    name = args.impl + ("+tune" if args.tune else "")
    print(f"{name} batch={args.batch} images_per_s={calls * args.batch / elapsed:.2f} calls={calls} threads={threads}")


if __name__ == "__main__":
    main()
