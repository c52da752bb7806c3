#!/usr/bin/env bash
# Validates deploy/kubernetes/*.yaml offline against the Kubernetes schema (kubernetes-validate,
# which bundles the schemas; strict: unknown fields are errors) and checks that each Indexed
# Job's `completions` equals its embed_cohort `--shards`. No cluster is needed (none can run
# here); run by .ci/run. Its virtualenv is target/k8s-venv (~10 s to make the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/k8s-venv
if ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi
for f in deploy/kubernetes/*.yaml; do
  "$venv/bin/kubernetes-validate" --strict --kubernetes-version 1.37.0 "$f"
  completions=$(sed -n 's/^  completions: *\([0-9]*\).*/\1/p' "$f")
  shards=$(sed -n 's/.*--shards[= ]\([0-9]*\).*/\1/p' "$f")
  if [ -z "$completions" ] || [ "$completions" != "$shards" ]; then
    echo "$f: completions ($completions) must equal embed_cohort's --shards ($shards)" >&2
    exit 1
  fi
done
echo "Kubernetes manifests valid"
