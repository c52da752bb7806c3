#!/usr/bin/env python3
"""Peer for `cargo bench --bench dicomweb`: wsidicom's DICOMweb client reading the full level-0
224x224 patch grid (read_region per patch) from the same Orthanc, each pass on a freshly opened
slide (cold caches).

Usage: wsidicom_web.py http://127.0.0.1:PORT dicom-web STUDY_UID SERIES_UID [--repeat 3]
Prints: wsidicom_web patches_per_s=... n=... seconds=...
"""
import argparse
import time

import wsidicom
from wsidicom import WsiDicom, WsiDicomWebClient

PATCH = 224


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("prefix")
    ap.add_argument("study")
    ap.add_argument("series")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    best = None
    n = 0
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        client = WsiDicomWebClient.create_client(args.host, qido_prefix=args.prefix, wado_prefix=args.prefix)
        with WsiDicom.open_web(client, args.study, args.series) as slide:
            level = slide.levels[0]
            w, h = level.size.width, level.size.height
            n = 0
            for y in range(0, h - PATCH + 1, PATCH):
                for x in range(0, w - PATCH + 1, PATCH):
                    slide.read_region((x, y), 0, (PATCH, PATCH))
                    n += 1
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    print(f"versions wsidicom={wsidicom.__version__}")
    print(f"wsidicom_web patches_per_s={n / best:.1f} n={n} seconds={best:.3f}")


if __name__ == "__main__":
    main()
