#!/usr/bin/env bash
# The Python package's speed (issue 31), two checks, median of RUNS interleaved runs each:
#  1. the slide job as a whole command: the slide_heatmap example against
#     benches/python/slide_job.py (embed_slide) on the same slide, level, batch and model, with
#     and without haidef_wsi.tune_cpu_inference() (the example tunes the process at start), and
#     with CANDLE_NUM_THREADS=$(nproc) (candle's own pool on: what the import's default of 1
#     avoids);
#  2. Encoder.embed on a numpy uint8 batch against timm on the same batch
#     (benches/python/embed_numpy.py), preprocessing included.
#
#   PY_TORCH=/root/.venvs/torch-cpu/bin/python bash tools/bench_python.sh [RUNS] [SLIDE] [slide|embed|both]
#
# Needs the wheel installed in target/python-venv (bash tools/python_tests.sh does it) and
# PY_TORCH with torch and timm (fixtures/encoders/requirements.txt). docs/BENCHMARKS.md records
# the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
SLIDE=${2:-fixtures/slides/ihc-full}
PARTS=${3:-both}
PY=target/python-venv/bin/python
PY_TORCH=${PY_TORCH:-/root/.venvs/torch-cpu/bin/python}
CARGO_PROFILE_RELEASE_DEBUG=false cargo build --release --example slide_heatmap >/dev/null 2>&1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
timed() { local s e; s=$(date +%s.%N); "$@" >"$out/last.txt" 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
rust=() py=() tuned=() pooled=() rust_job=() py_job=() tuned_job=()
for i in $(seq "$RUNS"); do
  [ "$PARTS" = embed ] && break
  rm -rf "$out/r" "$out/p" "$out/t"
  t=$(timed target/release/examples/slide_heatmap "$SLIDE" --out "$out/r" --level 0 --all-patches --batch 32); rust+=("$t")
  rust_job+=("$(grep -oP '^time: \K[0-9.]+' "$out/last.txt")")
  t=$(timed "$PY" benches/python/slide_job.py "$SLIDE" "$out/p"); py+=("$t")
  py_job+=("$(grep -oP 'job_seconds=\K[0-9.]+' "$out/last.txt")")
  t=$(timed "$PY" benches/python/slide_job.py "$SLIDE" "$out/t" --tune); tuned+=("$t")
  tuned_job+=("$(grep -oP 'job_seconds=\K[0-9.]+' "$out/last.txt")")
  rm -rf "$out/c"
  t=$(CANDLE_NUM_THREADS=$(nproc) timed "$PY" benches/python/slide_job.py "$SLIDE" "$out/c"); pooled+=("$t")
  echo "run $i: example ${rust[-1]} s (job ${rust_job[-1]} s), embed_slide ${py[-1]} s (job ${py_job[-1]} s), tuned ${tuned[-1]} s (job ${tuned_job[-1]} s), CANDLE_NUM_THREADS=$(nproc) ${pooled[-1]} s"
done
if [ "$PARTS" != embed ]; then
mr=$(median "${rust[@]}"); mp=$(median "${py[@]}"); mt=$(median "${tuned[@]}")
echo "slide job, whole command, median: example $mr s, embed_slide $mp s ($(echo "scale=3; $mp / $mr" | bc)x), embed_slide after tune_cpu_inference $mt s ($(echo "scale=3; $mt / $mr" | bc)x); $SLIDE level 0, $(nproc) cores"
echo "  jobs' own seconds, median: example $(median "${rust_job[@]}") s, embed_slide $(median "${py_job[@]}") s, tuned $(median "${tuned_job[@]}") s"
mc=$(median "${pooled[@]}")
echo "  embed_slide with CANDLE_NUM_THREADS=$(nproc): $mc s ($(echo "scale=3; $mc / $mp" | bc)x the default's)"
fi
[ "$PARTS" = slide ] && exit 0
ours=() tune=() timm=()
for i in $(seq "$RUNS"); do
  ours+=("$("$PY" benches/python/embed_numpy.py --impl haidef | grep -oP 'images_per_s=\K[0-9.]+')")
  tune+=("$("$PY" benches/python/embed_numpy.py --impl haidef --tune | grep -oP 'images_per_s=\K[0-9.]+')")
  timm+=("$("$PY_TORCH" benches/python/embed_numpy.py --impl timm | grep -oP 'images_per_s=\K[0-9.]+')")
  echo "run $i: Encoder.embed ${ours[-1]}, tuned ${tune[-1]}, timm ${timm[-1]} images/s"
done
mo=$(median "${ours[@]}"); mu=$(median "${tune[@]}"); mm=$(median "${timm[@]}")
echo "embed, batch 32, median images/s: Encoder.embed $mo ($(echo "scale=2; $mo / $mm" | bc)x timm), after tune_cpu_inference $mu ($(echo "scale=2; $mu / $mm" | bc)x), timm $mm"
