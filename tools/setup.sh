#!/usr/bin/env bash
# Installs adaptdiff's build dependencies from Debian's packages (only those missing) and builds it.
# Usage: tools/setup.sh [BUILD_DIR]   (default: build)
# Environment: ADAPTDIFF_JOBS (parallel compile jobs, default: number of cores),
#              ADAPTDIFF_CMAKE_ARGS (extra CMake arguments).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}

packages=(
  cmake g++ make pkg-config
  libtorch-dev                 # LibTorch (CPU)
  libopenblas0-pthread         # optimised BLAS: takes over libblas.so.3 (2-5x faster linear layers)
  libopenmpi-dev openmpi-bin   # MPI
  libhdf5-openmpi-dev hdf5-tools  # parallel HDF5 (MPI-IO) and h5dump/h5ls
  libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev libssl-dev
  libstb-dev                   # stb_image_write/resize: PNG/JPEG encoding and resizing in adaptdiff-export
  libgtest-dev
  python3-torch python3-numpy python3-h5py  # tests: fixtures in the original formats (torch.save), h5py checks
  python3-venv python3-matplotlib python3-sklearn  # adaptdiff-eval: histogram; tests: scikit-learn, pyeer venv
  slurmctld slurmd slurm-client munge  # Slurm test (tests/slurm): a throw-away one-node cluster on localhost
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

jobs=${ADAPTDIFF_JOBS:-$(nproc)}
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${ADAPTDIFF_CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j "$jobs"
