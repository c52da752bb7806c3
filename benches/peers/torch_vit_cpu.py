#!/usr/bin/env python3
"""Peer benchmark: ViT-S/16 forward pass on CPU with PyTorch (timm), f32.

Usage:
    python benches/peers/torch_vit_cpu.py [--batch 8 32] [--threads N] [--seconds S]

timm vit_small_patch16_224 (num_classes=0, random init: the weights do not change the
cost), f32, eval, torch.inference_mode(), torch.set_num_threads(N) (default: all cores),
random 224x224 RGB input. For each batch size: warm-up (3 forward passes, at least 1 s),
then forward passes are timed until at least --seconds (default 5) have passed;
images_per_s = batch * iterations / elapsed. One line per batch size:
    torch_vits16_cpu_f32 batch=8 images_per_s=... threads=2 torch=...
plus a first line `versions ...`.

Requirements: fixtures/encoders/requirements.txt (torch, timm; PyPI's Linux torch wheel
pulls the CUDA packages, but this runs on the CPU only).
"""
import argparse
import os
import platform
import time

import timm
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0)
    model = model.eval().to(torch.float32)
    print(f"versions torch={torch.__version__} timm={timm.__version__} "
          f"python={platform.python_version()} cpu_count={os.cpu_count()} "
          f"threads={torch.get_num_threads()} mkldnn={torch.backends.mkldnn.is_available()}",
          flush=True)
    for batch in args.batch:
        x = torch.rand(batch, 3, 224, 224, dtype=torch.float32)
        with torch.inference_mode():
            t0 = time.perf_counter()
            n = 0
            while n < 3 or time.perf_counter() - t0 < 1.0:
                out = model(x)
                n += 1
            assert out.shape == (batch, 384)
            iters = 0
            t0 = time.perf_counter()
            while True:
                model(x)
                iters += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= args.seconds and iters >= 3:
                    break
        ips = batch * iters / elapsed
        print(f"torch_vits16_cpu_f32 batch={batch} images_per_s={ips:.2f} "
              f"threads={torch.get_num_threads()} torch={torch.__version__} "
              f"iters={iters} seconds={elapsed:.2f}", flush=True)


if __name__ == "__main__":
    main()
