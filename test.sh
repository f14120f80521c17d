#!/usr/bin/env bash
# Every test of shmkit, in one command (the README's test command; .ci/run calls it).
#
# 1. `cargo test --workspace`: every Rust test (unit, integration, doctests, the
#    crash-torture default run). Extra arguments go to it, e.g. `./test.sh -- ring`.
# 2. Then the Python package's tests (python/tests, pytest): the extension module is
#    built from the repository and installed (`pip install ./python`) into a venv under
#    the cargo target directory (target/python-venv; Debian's python3 refuses a
#    system-wide pip), with pytest, then run. Without python3 they are skipped with a
#    notice, except in CI (SHMKIT_CI=1), where that is a failure. A fresh venv needs
#    the network once (pytest, maturin); later runs use pip's cache.
set -euo pipefail
cd "$(dirname "$0")"

cargo test --workspace "$@"

python_missing() {
  if [ "${SHMKIT_CI:-}" = 1 ]; then
    echo "test.sh: $1: the Python package cannot be tested (SHMKIT_CI=1: a failure)" >&2
    exit 1
  fi
  echo "test.sh: $1: the Python package's tests were skipped (only the Rust tests ran)"
}

if [ -d python/tests ]; then
  if ! command -v python3 >/dev/null 2>&1; then
    python_missing "python3 not found"
  else
    # The extension module and the interop tests' Rust peer build into the same
    # target directory as the workspace.
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
    venv="$CARGO_TARGET_DIR/python-venv"
    if [ ! -x "$venv/bin/python" ] && ! python3 -m venv "$venv"; then
      rm -rf "$venv"
      python_missing "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
    fi
    if [ -x "$venv/bin/python" ]; then
      py="$venv/bin/python"
      pip=("$py" -m pip install -q --disable-pip-version-check)
      "$py" -c "import pytest" 2>/dev/null || "${pip[@]}" pytest
      "${pip[@]}" ./python
      "$py" -m pytest -q python/tests
    fi
  fi
else
  echo "test.sh: no python/tests yet: only the Rust tests ran"
fi
