#!/usr/bin/env python3
"""Peer for the end-to-end benchmark: the Python pipeline a user would write today.

wsidicom read_region over the level-0 224x224 grid of a slide (every patch fully inside the
level), RGB/255 batches into timm's ViT-S/16 (Path Foundation's architecture) in PyTorch on
CPU, float32, embeddings collected in memory. Same grid and batch size as
`cargo bench --bench pipeline`.

Usage: python_pipeline.py fixtures/slides/ihc-full [--batch 32] [--threads 2] [--repeat 3]
       python_pipeline.py SLIDE --device cuda --bf16 --batch 256   (the GPU comparison)
Prints: python_pipeline embeddings_per_hour=... patches=... seconds=... read_s=... model_s=...
Requirements: wsidicom, torch, timm, numpy (fixtures/encoders/requirements.txt)
"""
import argparse
import time

import numpy as np
import timm
import torch
import wsidicom

PATCH = 224


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("slide")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--bf16", action="store_true", help="run the model in bfloat16")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    model = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0).eval().to(args.device, dtype)
    best = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        read_s = model_s = 0.0
        with wsidicom.WsiDicom.open(args.slide) as slide:
            level = slide.levels[0]
            w, h = level.size.width, level.size.height
            coords = [(x, y) for y in range(0, h - PATCH + 1, PATCH) for x in range(0, w - PATCH + 1, PATCH)]
            out = []
            for i in range(0, len(coords), args.batch):
                r0 = time.perf_counter()
                imgs = [np.asarray(slide.read_region((x, y), 0, (PATCH, PATCH)).convert("RGB")) for x, y in coords[i:i + args.batch]]
                x = torch.from_numpy(np.stack(imgs)).to(args.device).permute(0, 3, 1, 2).to(dtype) / 255.0
                r1 = time.perf_counter()
                with torch.inference_mode():
                    out.append(model(x).float().cpu().numpy())
                r2 = time.perf_counter()
                read_s += r1 - r0
                model_s += r2 - r1
        seconds = time.perf_counter() - t0
        n = sum(len(o) for o in out)
        if best is None or seconds < best[0]:
            best = (seconds, n, read_s, model_s)
    seconds, n, read_s, model_s = best
    print(f"versions wsidicom={wsidicom.__version__} torch={torch.__version__} timm={timm.__version__} threads={args.threads} device={args.device} dtype={dtype}")
    print(f"python_pipeline embeddings_per_hour={n / seconds * 3600:.0f} patches={n} seconds={seconds:.2f} "
          f"read_s={read_s:.2f} model_s={model_s:.2f} batch={args.batch}")


if __name__ == "__main__":
    main()
