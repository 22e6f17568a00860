#!/usr/bin/env bash
# Builds adaptdiff with its tests on a fresh machine (installing Debian packages as needed) and runs the
# whole suite with ctest. Extra arguments go to ctest (e.g. -L mpi, -R golden, -LE slow).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh build
ctest --test-dir build --output-on-failure --timeout 900 -j "$(nproc)" "$@"
