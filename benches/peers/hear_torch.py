#!/usr/bin/env python3
"""Peer benchmark: HeAR on CPU with PyTorch + transformers, f32, batch 32.

Usage:
    python benches/peers/hear_torch.py [--batch 32] [--depth 24] [--threads N] [--seconds S]
                                       [--front-end-only]

The front end is batched PyTorch that performs the operations of Google's HeAR PyTorch
front end (`python/data_processing/audio_utils.py` in Google-Health/hear, as docs/HEAR.md
describes it), in the same shape: min-max scaling over the batch tensor, frames by `unfold`
after TensorFlow-style end padding, `torch.fft.rfft`, power, a matmul with the TensorFlow-style
mel matrix, PCEN whose moving average is a Python loop over the 200 frames doing two matmuls
with scaled identity matrices per step (as Google's `_ema` does), and `F.interpolate`
(bilinear, align_corners=False) to 192x128. The model is transformers' ViTModel configured as
google/hear-pytorch (image 192x128, 1 channel, patch 16, ViT-L, gelu_fast, pooler 512 linear),
random init (weights do not change the cost), default attention, eval, torch.inference_mode(),
torch.set_num_threads(N) (default: all cores). Warm-up 1 pass, then passes are timed until at
least --seconds (default 20) and 3 passes. Lines printed:
    versions ...
    torch_hear_front_end batch=32 clips_per_s=...
    torch_hear_front_end_and_model depth=24 batch=32 clips_per_s=...
"""
import argparse
import math
import os
import platform
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import ViTConfig, ViTModel

RATE, CLIP, FRAME, HOP, BANDS = 16000, 32000, 400, 160, 128


def mel_matrix() -> torch.Tensor:
    bins = FRAME // 2 + 1
    mel = lambda f: 2595.0 * torch.log10(1.0 + f / 700.0)
    freqs = torch.linspace(0.0, RATE / 2, bins)[1:]
    m = mel(freqs).unsqueeze(1)
    edges = torch.linspace(float(mel(torch.tensor(0.0))), float(mel(torch.tensor(RATE / 2.0))), BANDS + 2)
    lo, mid, hi = edges[:-2].unsqueeze(0), edges[1:-1].unsqueeze(0), edges[2:].unsqueeze(0)
    w = torch.clamp(torch.minimum((m - lo) / (mid - lo), (hi - m) / (hi - mid)), min=0.0)
    return torch.cat([torch.zeros(1, BANDS), w], 0)


MEL = mel_matrix()
WINDOW = torch.hann_window(FRAME)


def front_end(x: torch.Tensor) -> torch.Tensor:
    x = x - x.min()
    x = x / (x.max() + 1e-8) * 2 - 1
    frames = math.ceil(x.shape[-1] / HOP)
    x = F.pad(x, (0, (frames - 1) * HOP + FRAME - x.shape[-1]))
    spec = torch.fft.rfft(x.unfold(-1, FRAME, HOP) * WINDOW, n=FRAME).abs().square()
    mel = spec @ MEL
    s = 0.04
    keep, take = torch.eye(BANDS) * (1 - s), torch.eye(BANDS) * s
    state, out = mel[:, 0], [mel[:, 0]]
    for t in range(1, mel.shape[1]):
        state = mel[:, t] @ take + state @ keep
        out.append(state)
    m = torch.stack(out, 1)
    pcen = (mel / (1e-8 + m) ** 0.8 + 2.0) ** 0.5 - 2.0 ** 0.5
    return F.interpolate(pcen.unsqueeze(1), size=(192, 128), mode="bilinear", align_corners=False, antialias=False)


def timed(fn, seconds):
    fn()
    iters, t0 = 0, time.perf_counter()
    while True:
        fn()
        iters += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and iters >= 3:
            return iters / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--depth", type=int, default=24)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--front-end-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"versions torch={torch.__version__} transformers={transformers.__version__} "
          f"python={platform.python_version()} threads={torch.get_num_threads()}", flush=True)
    t = torch.arange(CLIP, dtype=torch.float32) / RATE
    clips = torch.stack([0.3 * torch.sin(2 * math.pi * (120 + 10 * c) * t) + 0.05 * torch.randn(CLIP) for c in range(args.batch)])
    with torch.inference_mode():
        rate = timed(lambda: front_end(clips), min(args.seconds, 5.0))
        print(f"torch_hear_front_end batch={args.batch} clips_per_s={rate * args.batch:.2f}", flush=True)
        if args.front_end_only:
            return
        cfg = ViTConfig(image_size=(192, 128), patch_size=16, num_channels=1, hidden_size=1024,
                        num_hidden_layers=args.depth, num_attention_heads=16, intermediate_size=4096,
                        hidden_act="gelu_fast", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        layer_norm_eps=1e-6, qkv_bias=True, pooler_output_size=512, pooler_act="linear")
        model = ViTModel(cfg).eval()
        run = lambda: model(pixel_values=front_end(clips)).pooler_output
        assert run().shape == (args.batch, 512)
        rate = timed(run, args.seconds)
        print(f"torch_hear_front_end_and_model depth={args.depth} batch={args.batch} "
              f"clips_per_s={rate * args.batch:.3f} threads={torch.get_num_threads()}", flush=True)


if __name__ == "__main__":
    main()
