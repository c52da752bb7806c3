#!/usr/bin/env bash
# Images/s of each pathology preset on the CPU, ours (benches/presets.rs) against the
# publisher's implementation (timm / transformers, benches/peers/timm_presets.py), runs
# interleaved ROUNDS times (ours first in odd rounds), medians and their ratio printed.
#
#   bash tools/bench_presets.sh [ROUNDS] [PRESET:DEPTH ...]
#
# Defaults: 3 rounds; the B and L presets at their published depth, the H and g presets at 8
# blocks (time per image grows with the number of blocks; the ratio does not depend on it).
# BATCH (default 8) images per forward pass, SECONDS_PER_RUN (default 10) timed per run.
# Needs the PyTorch virtualenv of fixtures/encoders/requirements.txt (PYTHON, default
# ~/.venvs/torch-cpu/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift || true
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(phikon:12 uni:24 phikon-v2:24 virchow2:8 uni2-h:8 h-optimus-0:8 prov-gigapath:8)
py=${PYTHON:-$HOME/.venvs/torch-cpu/bin/python}
batch=${BATCH:-8} seconds=${SECONDS_PER_RUN:-10}
threads=$(nproc)
cargo bench --bench presets --no-run -q 2>/dev/null
bin=$(ls -t target/release/deps/presets-* | grep -v '\.d$' | head -1)
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-14s %5s %12s %12s %7s\n' preset depth ours/s timm/s ratio
for pd in "${presets[@]}"; do
  name=${pd%%:*} depth=${pd##*:}
  ours=() theirs=()
  for r in $(seq "$rounds"); do
    run_ours() { HAIDEF_PRESET=$name HAIDEF_PRESET_DEPTH=$depth HAIDEF_PRESET_BATCH=$batch HAIDEF_PRESET_SECONDS=$seconds "$bin" | sed -n 's/.*images_per_s=\([0-9.]*\).*/\1/p'; }
    run_timm() { "$py" benches/peers/timm_presets.py --preset "$name" --depth "$depth" --batch "$batch" --seconds "$seconds" --threads "$threads" | sed -n 's/.*images_per_s=\([0-9.]*\).*/\1/p'; }
    if [ $((r % 2)) -eq 1 ]; then ours+=("$(run_ours)"); theirs+=("$(run_timm)"); else theirs+=("$(run_timm)"); ours+=("$(run_ours)"); fi
  done
  o=$(printf '%s\n' "${ours[@]}" | median) t=$(printf '%s\n' "${theirs[@]}" | median)
  printf '%-14s %5s %12.3f %12.3f %7.3f   (ours %s; theirs %s)\n' "$name" "$depth" "$o" "$t" "$(awk -v o="$o" -v t="$t" 'BEGIN { print o / t }')" "${ours[*]}" "${theirs[*]}"
done
