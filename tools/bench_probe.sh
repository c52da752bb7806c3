#!/usr/bin/env bash
# The probe benchmark (issue 29): train_probe against scikit-learn on the same 100,000 x 384
# rows, interleaved, whole commands (reading, scaling, LogisticRegressionCV's 10 Cs x 5 folds,
# refit, test predictions and AUC; no bootstrap), median of RUNS runs each; then predict_probe
# against scikit-learn's predict_proba on every row (reading, scaling, probabilities, writing
# the key and p_<class> columns to Parquet), interleaved the same way.
#
#   PY=/root/.venvs/torch-cpu/bin/python bash tools/bench_probe.sh [RUNS] [ROWS]
#
# PY needs numpy, pyarrow and scikit-learn (fixtures/probes/requirements.txt). Prints each run
# and the medians; docs/BENCHMARKS.md records the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
ROWS=${2:-100000}
PY=${PY:-python3}
DATA=target/probe-bench-$ROWS
[ -f "$DATA/embeddings.parquet" ] || "$PY" benches/peers/make_probe_data.py "$DATA" "$ROWS"
CARGO_PROFILE_RELEASE_DEBUG=false cargo build --release --example train_probe --example predict_probe >/dev/null 2>&1
ours=() theirs=()
for i in $(seq "$RUNS"); do
  s=$(date +%s.%N)
  target/release/examples/train_probe "$DATA/embeddings.parquet" --labels "$DATA/labels.csv" --key id --out "$DATA/model" --bootstrap 0 2>/dev/null | grep -E "^(C =|test:)" | tr '\n' ' '
  e=$(date +%s.%N); t=$(echo "$e - $s" | bc); ours+=("$t"); echo "ours run $i: $t s"
  "$PY" benches/peers/sklearn_probe.py "$DATA" | tr '\n' ' '
  s2=$(date +%s.%N); t2=$(echo "$s2 - $e" | bc); theirs+=("$t2"); echo "sklearn run $i: $t2 s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}")
echo "training, median: ours $mo s, scikit-learn $mt s, speed-up $(echo "scale=2; $mt / $mo" | bc)x ($ROWS rows x 384, $(nproc) cores)"
ours=() theirs=()
for i in $(seq "$RUNS"); do
  s=$(date +%s.%N)
  target/release/examples/predict_probe "$DATA/model" "$DATA/embeddings.parquet" --out "$DATA/predictions.parquet" 2>/dev/null
  e=$(date +%s.%N); t=$(echo "$e - $s" | bc); ours+=("$t"); echo "ours predict run $i: $t s"
  "$PY" benches/peers/sklearn_predict.py "$DATA" "$DATA/sklearn_predictions.parquet"
  s2=$(date +%s.%N); t2=$(echo "$s2 - $e" | bc); theirs+=("$t2"); echo "sklearn predict run $i: $t2 s"
done
"$PY" -c "
import sys, numpy as np, pyarrow.parquet as pq
a, b = pq.read_table(sys.argv[1]), pq.read_table(sys.argv[2])
assert a.column('id').to_pylist() == b.column('id').to_pylist()
print('largest difference of p_tumor:', np.abs(a.column('p_tumor').to_numpy() - b.column('p_tumor').to_numpy()).max())
" "$DATA/predictions.parquet" "$DATA/sklearn_predictions.parquet"
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}")
echo "prediction, median: ours $mo s, scikit-learn $mt s, speed-up $(echo "scale=2; $mt / $mo" | bc)x ($ROWS rows x 384, $(nproc) cores)"
