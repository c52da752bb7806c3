#!/usr/bin/env bash
# Peak memory of the slide job on a 100,000-patch slide (docs/FAULTS.md): makes the slide with
# tools/make_big_slide.py (pydicom, numpy, Pillow; ~600 MB in target/big-slide, a few seconds)
# unless it is there, then runs the --ignored test that embeds all of it with a small encoder
# and checks the peak RSS against the stated bound (a few minutes on 2 cores).
#   tools/peak_rss.sh [SLIDE_DIR]      PYTHON=... to choose the interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
slide="${1:-target/big-slide}"
python="${PYTHON:-python3}"
[ -f "$slide/level-0.dcm" ] || "$python" tools/make_big_slide.py "$slide" --no-check
export CARGO_PROFILE_RELEASE_DEBUG=false
HAIDEF_BIG_SLIDE="$slide" cargo test --release --test faults -- --ignored --nocapture peak_rss
