#!/usr/bin/env bash
# The Python package (python/, issue 31): builds the wheel with maturin on the workspace's
# target directory (the dependencies built by `cargo test --release` are reused), installs it
# into a fresh virtualenv, and runs its pytest suite. Run by .ci/run after `cargo test`, whose
# examples the tests compare against.
#
#   bash tools/python_tests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/python-venv
rm -rf "$venv" target/wheels
if ! python3 -m venv "$venv"; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends python3-venv
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r python/requirements-test.txt
"$venv/bin/maturin" build --release --quiet -m python/Cargo.toml --interpreter "$venv/bin/python" --out target/wheels
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps target/wheels/haidef_wsi-*.whl
cd python/tests && "../../$venv/bin/python" -m pytest -q -p no:cacheprovider .
