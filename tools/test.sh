#!/usr/bin/env bash
# Builds adaptdiff with its tests on a fresh machine (installing Debian packages as needed) and runs the
# whole suite with ctest. Extra arguments go to ctest (e.g. -L mpi, -R golden, -LE slow).
# Then the second LibTorch variant: the CUDA LibTorch 2.x of PyPI's torch wheel (tools/setup.sh --cuda, in
# build-cuda) is built with the GPU path compiled in, and the golden parity tests run on it (on the CPU when
# the machine has no GPU). ADAPTDIFF_CUDA_VARIANT=0 skips that part.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh build
ctest --test-dir build --output-on-failure --timeout 900 -j "$(nproc)" "$@"

if [ "${ADAPTDIFF_CUDA_VARIANT:-1}" != "0" ]; then
  # The job and its GPU path (adaptdiff-sample), golden parity of the model and of the sampler (model_golden,
  # golden_verify), and the negatives' GPU fold run on the CPU (negatives_unit).
  ADAPTDIFF_TARGETS="adaptdiff-sample adaptdiff-verify model_layout model_golden negatives_unit" \
    tools/setup.sh --cuda build-cuda
  ctest --test-dir build-cuda --output-on-failure --timeout 900 -R '^(model_layout|model_golden|negatives_unit|golden_verify)$'
fi
