#!/usr/bin/env bash
# Every test of shmkit, in one command (the README's test command; .ci/run calls it).
#
# 1. `cargo test --workspace`: every Rust test (unit, integration, doctests, the
#    crash-torture default run). Extra arguments go to it, e.g. `./test.sh -- ring`.
# 2. Then the suites that are not cargo's, each skipped with a notice when its part of
#    the project does not exist yet: the Python package's tests (python/, issue
#    "Python"), run with the machine's python3 against the extension built from the
#    repository.
set -euo pipefail
cd "$(dirname "$0")"

cargo test --workspace "$@"

if [ -d python/tests ]; then
  python3 -m pytest -q python/tests
else
  echo "test.sh: no python/tests yet: only the Rust tests ran"
fi
