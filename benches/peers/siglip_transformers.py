#!/usr/bin/env python3
"""Peer benchmark: SigLIP towers (MedSigLIP-448's widths) on CPU with transformers, f32.

Usage:
    python benches/peers/siglip_transformers.py [--depth 4] [--image-batch 2] [--text-batch 16]
                                                [--threads N] [--seconds S]

transformers SiglipModel with MedSigLIP-448's widths (hidden 1152, MLP 4304, 16 heads, patch
14, 448x448 images, 64 tokens, vocabulary 32000) and --depth layers per tower (the full model
has 27; the cost per layer is what the figure compares), random init (weights do not change
the cost), eager attention, f32, eval, torch.inference_mode(), torch.set_num_threads(N)
(default: all cores). Vision: get_image_features on random pixel_values; text:
get_text_features on random ids, no attention mask (as the serving). Warm-up 2 passes, then
passes are timed until at least --seconds (default 8). One line per tower:
    transformers_siglip_vision depth=4 batch=2 images_per_s=... threads=2
    transformers_siglip_text depth=4 batch=16 texts_per_s=... threads=2
plus a first line `versions ...`.
"""
import argparse
import os
import platform
import time

import torch
import transformers
from transformers import SiglipConfig, SiglipModel


def timed(fn, seconds):
    for _ in range(2):
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
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--image-batch", type=int, default=2)
    ap.add_argument("--text-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tower = dict(hidden_size=1152, intermediate_size=4304, num_attention_heads=16, num_hidden_layers=args.depth,
                 hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    cfg = SiglipConfig(text_config=dict(tower, vocab_size=32000, max_position_embeddings=64, projection_size=1152,
                                        pad_token_id=1, bos_token_id=None, eos_token_id=1),
                       vision_config=dict(tower, image_size=448, patch_size=14))
    model = SiglipModel(cfg).eval().to(torch.float32)
    model.config._attn_implementation = "eager"
    print(f"versions torch={torch.__version__} transformers={transformers.__version__} "
          f"python={platform.python_version()} threads={torch.get_num_threads()}", flush=True)
    pixels = torch.rand(args.image_batch, 3, 448, 448) * 2 - 1
    ids = torch.randint(3, 32000, (args.text_batch, 64))
    with torch.inference_mode():
        ips = args.image_batch * timed(lambda: model.get_image_features(pixel_values=pixels), args.seconds)
        print(f"transformers_siglip_vision depth={args.depth} batch={args.image_batch} images_per_s={ips:.3f} threads={args.threads}", flush=True)
        tps = args.text_batch * timed(lambda: model.get_text_features(input_ids=ids), args.seconds)
        print(f"transformers_siglip_text depth={args.depth} batch={args.text_batch} texts_per_s={tps:.2f} threads={args.threads}", flush=True)


if __name__ == "__main__":
    main()
