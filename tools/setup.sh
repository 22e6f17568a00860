#!/usr/bin/env bash
# Installs adaptdiff's build dependencies (Debian packages, only those missing) and builds it.
# Usage: tools/setup.sh [--cuda] [BUILD_DIR]   (default: build, or build-cuda with --cuda)
#   --cuda   build against the CUDA LibTorch 2.x inside PyPI's torch wheel instead of Debian's LibTorch 1.13:
#            the wheel (with its CUDA libraries and NCCL as wheels) goes into BUILD_DIR/torch-env; the CUDA
#            toolkit's compiler and headers must be on the machine. Compiles the GPU path in (CUDA graphs, pinned
#            staging, NCCL); the result also runs on machines without a GPU.
# Environment: ADAPTDIFF_JOBS (parallel compile jobs, default: number of cores),
#              ADAPTDIFF_CMAKE_ARGS (extra CMake arguments), ADAPTDIFF_TARGETS (build only these targets),
#              ADAPTDIFF_TORCH_VERSION (--cuda: the torch wheel, default 2.15.0).
set -euo pipefail
cd "$(dirname "$0")/.."
cuda=0
if [ "${1:-}" = "--cuda" ]; then
  cuda=1
  shift
fi
build_dir=${1:-build}
((cuda)) && build_dir=${1:-build-cuda}

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
cmake_args=()
if ((cuda)); then
  if ! command -v nvcc >/dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then
    echo "setup: --cuda needs the CUDA toolkit (nvcc and its headers) on this machine; none found" >&2
    exit 1
  fi
  version=${ADAPTDIFF_TORCH_VERSION:-2.15.0}
  venv="$build_dir/torch-env"
  [ -x "$venv/bin/python" ] || { mkdir -p "$build_dir"; /usr/bin/python3 -m venv "$venv"; }
  if ! "$venv/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$version')" 2>/dev/null; then
    echo "setup: installing PyPI's torch==$version (CUDA LibTorch, several GB) into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "torch==$version"
  fi
  site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  # LibTorch's CMake files, and the wheel's own CUDA runtime and NVRTC (not an older toolkit's of the same name).
  cmake_args+=("-DCMAKE_PREFIX_PATH=$site/torch;$site/torch/share/cmake"
               "-DCUDA_cudart_LIBRARY=$(ls "$site"/nvidia/cu*/lib/libcudart.so.* | head -n 1)"
               "-DCUDA_NVRTC_LIB=$(ls "$site"/nvidia/cu*/lib/libnvrtc.so.* | grep -v builtins | head -n 1)")
fi
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "${cmake_args[@]}" ${ADAPTDIFF_CMAKE_ARGS:-} >/dev/null
targets=()
for t in ${ADAPTDIFF_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j "$jobs" "${targets[@]}"
