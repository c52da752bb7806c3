#!/usr/bin/env bash
# Packages the workspace's crates as `cargo publish` would and checks that each one builds from
# its own packaged files alone (no fixtures, tests or benches go in), with the packaged
# sub-crates standing in for their crates.io versions. Fails if a .crate is over 10 MiB.
#
# `cargo package --workspace` can verify too, but only by a full debug build of every
# dependency (about 8 minutes on CI's 2 cores, measured 2026-11-30); `cargo check` of the
# unpacked packages proves the same thing — that the include lists miss nothing the code
# needs — in about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."

# python/ is published as a wheel (tools/python_tests.sh builds it), not as a crate.
cargo package --workspace --exclude haidef-wsi-python --allow-dirty --no-verify
unpacked="$(mktemp -d)"
trap 'rm -rf "$unpacked"' EXIT
members=()
patches=()
for crate in target/package/*.crate; do
  size=$(stat -c %s "$crate")
  echo "$crate: $size bytes"
  [ "$size" -lt $((10 * 1024 * 1024)) ] || { echo "$crate is over 10 MiB: check the include list in its Cargo.toml" >&2; exit 1; }
  tar -xzf "$crate" -C "$unpacked"
  dir="$(basename "$crate" .crate)"
  members+=("\"$dir\"")
  name="${dir%-*}"
  [ "$name" = "haidef-wsi" ] || patches+=("$name = { path = \"$dir\" }")
done
{
  echo "[workspace]"
  echo "members = [$(IFS=,; echo "${members[*]}")]"
  echo 'resolver = "2"'
  echo "[patch.crates-io]"
  printf '%s\n' "${patches[@]}"
} > "$unpacked/Cargo.toml"
cp Cargo.lock "$unpacked/"
# Without optional features: this is also the check that the core builds alone (CI runs no
# other). Every feature uses only .rs files and the README, which the include lists hold
# whatever the features; a feature that include_bytes!-es another file needs a check with it.
cargo check --manifest-path "$unpacked/Cargo.toml" --workspace --lib --no-default-features --target-dir target
echo "packages build from their own files"
