#!/usr/bin/env python3
"""Peer benchmark for benches/presets.rs: a pathology preset's architecture as its publisher
builds it (timm, or transformers for the Phikons; constructions from
fixtures/encoders/make_presets.py), random init (the weights do not change the cost), f32,
eval, torch.inference_mode(), torch.set_num_threads(N), random 224x224 input already
normalised. One warm-up pass, then forward passes timed for at least --seconds.

Usage: timm_presets.py --preset uni [--depth D] [--batch 8] [--seconds 10] [--threads 2]
Prints: `timm <preset> depth=D batch=B images_per_s=X torch=... timm=...`
"""
import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures" / "encoders"))
import make_presets  # noqa: E402  (the presets' constructions, one place)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", required=True)
    ap.add_argument("--depth", type=int)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    p = make_presets.PRESETS[a.preset]
    depth = a.depth or p["full_depth"]
    if p["kind"] == "timm":
        model, _ = make_presets.build_timm(p, depth)
    elif p["kind"] == "hf_vit":
        from transformers import ViTConfig, ViTModel
        model = ViTModel(ViTConfig(**dict(p["hf_config"], num_hidden_layers=depth)), add_pooling_layer=False)
    else:
        from transformers import Dinov2Config, Dinov2Model
        model = Dinov2Model(Dinov2Config(**dict(p["hf_config"], num_hidden_layers=depth)))
    model = model.eval()
    x = torch.randn(a.batch, 3, 224, 224)
    with torch.inference_mode():
        model(x) if p["kind"] == "timm" else model(pixel_values=x)
        t, n = time.perf_counter(), 0
        while n == 0 or time.perf_counter() - t < a.seconds:
            model(x) if p["kind"] == "timm" else model(pixel_values=x)
            n += a.batch
        rate = n / (time.perf_counter() - t)
    import timm
    print(f"timm {a.preset} depth={depth} batch={a.batch} images_per_s={rate:.4f} torch={torch.__version__} timm={timm.__version__} threads={a.threads}")


if __name__ == "__main__":
    main()
