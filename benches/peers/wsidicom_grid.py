#!/usr/bin/env python3
"""Peer benchmark: patch reading with wsidicom (Python, Pillow/libjpeg-turbo decode).

Usage: python3 benches/peers/wsidicom_grid.py fixtures/slides/ihc-full [--repeat N] [--random N] [--seed S]

(a) the full level-0 grid of non-overlapping 224x224 patches (row-major, only patches
    fully inside the level), one read_region call each -> wsidicom_grid patches_per_s
(b) N (default 500) random 224x224 regions fully inside level 0 (seeded) -> wsidicom_random
Each figure is the best of --repeat passes (default 3). wsidicom keeps caches of encoded
and decoded frames (100 MB each by default, i.e. the whole fixture slide), so:
  wsidicom_grid / wsidicom_random: clear_cache() before every pass -> each frame a pass
    needs is read and decoded once in that pass (a reader seeing the slide for the first
    time; frames shared by neighbouring patches are decoded once, not per patch);
  *_warm: one untimed pass first, caches kept -> mostly cache hits, crop and copy cost;
  *_nocache: resize_cache(0) -> every read_region reads and decodes all frames it touches.
Output lines:
  versions wsidicom=... pillow=... libjpeg_turbo=... python=...
  wsidicom_grid patches_per_s=... n=...
  wsidicom_random regions_per_s=... n=...
  wsidicom_grid_warm patches_per_s=... n=...
  wsidicom_random_warm regions_per_s=... n=...
  wsidicom_grid_nocache patches_per_s=... n=...
  wsidicom_random_nocache regions_per_s=... n=...
Requirements: benches/peers/requirements.txt
"""
import argparse
import platform
import random
import time

import PIL
import wsidicom
from PIL import features

PATCH = 224


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("slide")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--random", type=int, default=500)
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--level", type=int, default=0)
    args = ap.parse_args()

    print(f"versions wsidicom={wsidicom.__version__} pillow={PIL.__version__} "
          f"libjpeg_turbo={features.version('libjpeg_turbo')} python={platform.python_version()}")
    with wsidicom.WsiDicom.open(args.slide) as wsi:
        size = wsi.levels[args.level].size
        grid = [(x * PATCH, y * PATCH)
                for y in range(size.height // PATCH) for x in range(size.width // PATCH)]
        rng = random.Random(args.seed)
        rand = [(rng.randrange(0, size.width - PATCH + 1), rng.randrange(0, size.height - PATCH + 1))
                for _ in range(args.random)]

        def run(locations, cold: bool) -> float:
            if cold:
                wsi.clear_cache()
            t0 = time.perf_counter()
            for loc in locations:
                wsi.read_region(loc, args.level, (PATCH, PATCH))
            return time.perf_counter() - t0

        for suffix, cold in (("", True), ("_warm", False), ("_nocache", True)):
            if suffix == "_nocache":
                wsi.resize_cache(0)
            for name, locs, unit in (("wsidicom_grid", grid, "patches_per_s"),
                                     ("wsidicom_random", rand, "regions_per_s")):
                if suffix == "_warm":
                    run(locs, cold=False)  # fill the caches
                best = min(run(locs, cold) for _ in range(max(1, args.repeat)))
                print(f"{name}{suffix} {unit}={len(locs) / best:.1f} n={len(locs)} "
                      f"level={args.level} size={size.width}x{size.height} best_of={args.repeat}")


if __name__ == "__main__":
    main()
