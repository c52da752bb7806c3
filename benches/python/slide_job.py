#!/usr/bin/env python3
"""The slide job from Python, timed as a whole command (tools/bench_python.sh runs it beside the
slide_heatmap example on the same slide):

    python benches/python/slide_job.py SLIDE OUT [--tune] [--level 0] [--batch 32]

embed_slide(Slide(SLIDE), OUT, Encoder("path-foundation"), level=..., all_patches=True,
batch_size=..., progress=False); --tune calls haidef_wsi.tune_cpu_inference() first (as the
example does at start). Prints the job's own wall time: `job_seconds=... embedded=...`.
"""
import argparse
import warnings

import haidef_wsi

ap = argparse.ArgumentParser()
ap.add_argument("slide")
ap.add_argument("out")
ap.add_argument("--tune", action="store_true")
ap.add_argument("--level", type=int, default=0)
ap.add_argument("--batch", type=int, default=32)
args = ap.parse_args()
if args.tune:
    haidef_wsi.tune_cpu_inference()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    enc = haidef_wsi.Encoder("path-foundation")
done = haidef_wsi.embed_slide(haidef_wsi.Slide(args.slide), args.out, enc, level=args.level, all_patches=True,
                              batch_size=args.batch, progress=False)
print(f"job_seconds={done['seconds']:.3f} embedded={done['embedded']}")
