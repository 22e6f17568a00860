#!/usr/bin/env bash
# The GPU check: builds adaptdiff against the PyTorch of a machine with a GPU (its LibTorch, CUDA and NCCL) and
# measures the GPU path. Two steps on two machines:
#
#   bash tools/gpu-check.sh pack          on a Debian 12 machine with network (e.g. where tools/setup.sh runs):
#                                         fetches the build dependencies as .deb files (about 17 MB) and the
#                                         golden reference data (16 MB) into gpu-check/ (ignored by git). Copy or
#                                         carry that folder with the checkout to the GPU machine.
#   bash tools/gpu-check.sh run [OUT]     on the GPU machine: needs python3 with a CUDA torch (LibTorch, NCCL
#                                         wheel), cmake, a C++ compiler and the CUDA toolkit's headers; no network
#                                         and no packages installed. Unpacks the .debs into gpu-check/root (nothing
#                                         outside the checkout is touched), builds build-gpu, then:
#     1. golden parity on the GPU: model_golden (UNet forward on CUDA within 1e-3 relative of the original
#        code's outputs: cuDNN/cuBLAS sum in other orders, and convolutions may use TF32 as PyTorch allows by
#        default), plus its CPU checks;
#     2. throughput at the published size cpd25 (random weights written in the published formats), DDIM with 10
#        visited steps, AdaptDiff, batch 16 and 64, fp32 and bf16: adaptdiff (plain and with CUDA graphs) against
#        the reference sampler (bench/reference, two forwards per step, torch.autocast for bf16) on the same GPU,
#        with the final latents' relative difference;
#     3. one 2-rank job on the one GPU (tiny model, Far-Neg, pinned staging) checked complete, and its negatives
#        compared with a CPU run of the same job (must be equal). Two ranks on one GPU take the MPI ring for the
#        negatives (NCCL refuses two ranks on one device); on a machine with 2+ GPUs they take NCCL.
#   Writes OUT/gpu-check.md (the tables) and OUT/gpu-check.log (default OUT: gpu-check/out). Exit 0 when
#   every check passed, 1 when one failed (the report says which), 2 for a usage or set-up error.
#   Takes 5-10 minutes on a 16-core machine (most of it the build).
#   bash tools/gpu-check.sh build-only [OUT]   the unpacking and the build alone, also without a GPU (to try a
#                                         packed folder before taking it to the GPU machine).
# Environment: PYTHON (default python3), the interpreter whose torch is built against.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
kit=$repo/gpu-check

deb_packages=(
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libhwloc15 libevent-core-2.1-7 libevent-pthreads-2.1-7
  libpmix2 libfabric1 libucx0 libnuma1 libmunge2 libibverbs1 librdmacm1 libnl-3-200 libnl-route-3-200 libpsm2-2
  libpsm-infinipath1 libxnvctrl0 libltdl7
  libhdf5-openmpi-dev libhdf5-openmpi-103-1 libaec0 libsz2 libcurl4 libnghttp2-14 librtmp1 libssh2-1 libpsl5
  libbrotli1 libldap-2.5-0 libsasl2-2
  libtomlplusplus-dev libtomlplusplus3 libcli11-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libgtest-dev
  libssl-dev libssl3 libstb-dev libstb0
)

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit 2
}

pack() {
  command -v apt-get >/dev/null || { echo "gpu-check pack: needs apt-get (a Debian 12 machine)" >&2; exit 2; }
  rm -rf "$kit/debs" && mkdir -p "$kit/debs"
  echo "gpu-check pack: downloading ${#deb_packages[@]} Debian packages into $kit/debs"
  (cd "$kit/debs" && apt-get download -qq "${deb_packages[@]}" 2>&1 | grep -v 'unsandboxed' || true)
  [ "$(ls "$kit/debs" | wc -l)" -eq "${#deb_packages[@]}" ] ||
    { echo "gpu-check pack: not every package was downloaded (apt-get update?)" >&2; exit 2; }
  local golden=$repo/../shared/golden/idiff_face_tiny
  if [ -d "$golden" ]; then
    rm -rf "$kit/golden" && mkdir -p "$kit/golden" && cp -r "$golden" "$kit/golden/"
  else
    echo "gpu-check pack: $golden not found: the golden parity step will be skipped" >&2
  fi
  echo "gpu-check pack: $(du -sh "$kit" | cut -f1) in $kit; on the GPU machine: bash tools/gpu-check.sh run"
}

# ---- run: set-up ----------------------------------------------------------------------------------------------
unpack() {
  local root=$kit/root
  [ -d "$kit/debs" ] || { echo "gpu-check run: $kit/debs missing: run 'bash tools/gpu-check.sh pack' first" >&2; exit 2; }
  rm -rf "$root" && mkdir -p "$root"
  for deb in "$kit"/debs/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$root"
    else  # a .deb is an ar archive holding data.tar.*
      (cd "$root" && ar p "$deb" "$(ar t "$deb" | grep '^data.tar')" | tar -xf - --auto-compress 2>/dev/null ||
        ar p "$deb" "$(ar t "$deb" | grep '^data.tar')" | tar -xJf -)
    fi
  done
  # Debian's symbolic links to alternatives (mpirun, mpicc) point to /etc/alternatives: point them here.
  local bin=$root/usr/bin
  for tool in mpirun mpiexec orterun; do
    [ -e "$bin/$tool" ] || ln -sf "$(ls "$bin"/orterun* 2>/dev/null | head -n 1)" "$bin/$tool"
  done
}

configure_env() {
  local root=$kit/root lib=$kit/root/usr/lib/x86_64-linux-gnu
  export PATH=$root/usr/bin:$PATH
  export LD_LIBRARY_PATH=$lib:$lib/openmpi/lib:$lib/hdf5/openmpi:${LD_LIBRARY_PATH:-}
  export OPAL_PREFIX=$root/usr  # Open MPI finds its components and help files under the unpacked prefix
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  py=${PYTHON:-python3}
  site=$($py -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))') ||
    { echo "gpu-check: $py has no torch (set PYTHON)" >&2; exit 2; }
  torch_cmake=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')
}

build() {
  local lib=$kit/root/usr/lib/x86_64-linux-gnu
  local mpi_inc=$lib/openmpi/include
  local wheel_cuda=()  # the CUDA runtime and NVRTC of the torch wheel, not an older toolkit's of the same name
  local cudart nvrtc
  cudart=$(ls "$site"/nvidia/cu*/lib/libcudart.so.* 2>/dev/null | head -n 1 || true)
  nvrtc=$(ls "$site"/nvidia/cu*/lib/libnvrtc.so.* 2>/dev/null | grep -v builtins | head -n 1 || true)
  [ -n "$cudart" ] && wheel_cuda+=("-DCUDA_cudart_LIBRARY=$cudart")
  [ -n "$nvrtc" ] && wheel_cuda+=("-DCUDA_NVRTC_LIB=$nvrtc")
  cmake -S "$repo" -B "$repo/build-gpu" -DCMAKE_BUILD_TYPE=Release "${wheel_cuda[@]}" \
    -DCMAKE_PREFIX_PATH="$kit/root/usr;$site/torch;$torch_cmake" \
    -DNCCL_ROOT="$site/nvidia/nccl" \
    -DMPI_C_COMPILER=/nonexistent -DMPI_CXX_COMPILER=/nonexistent \
    -DMPI_C_HEADER_DIR="$mpi_inc" -DMPI_CXX_HEADER_DIR="$mpi_inc" \
    -DMPI_C_LIB_NAMES=mpi -DMPI_CXX_LIB_NAMES="mpi_cxx;mpi" -DMPI_mpi_LIBRARY="$lib/openmpi/lib/libmpi.so" \
    -DMPI_mpi_cxx_LIBRARY="$lib/openmpi/lib/libmpi_cxx.so" \
    -DMPIEXEC_EXECUTABLE="$kit/root/usr/bin/mpiexec" \
    -DADAPTDIFF_HDF5_INCLUDE_DIR="$kit/root/usr/include/hdf5/openmpi" \
    -DADAPTDIFF_HDF5_LIBRARY="$lib/hdf5/openmpi/libhdf5.so" \
    -DADAPTDIFF_SHARED_DIR="$kit" >"$out/cmake.log" 2>&1 ||
    { tail -n 30 "$out/cmake.log"; echo "gpu-check run: configure failed (log: $out/cmake.log)" >&2; exit 2; }
  cmake --build "$repo/build-gpu" -j "$(nproc)" --target adaptdiff-sample adaptdiff-bench model_golden \
    >"$out/build.log" 2>&1 ||
    { grep -m 20 -E "error|undefined" "$out/build.log"; echo "gpu-check run: build failed (log: $out/build.log)" >&2; exit 2; }
}

# ---- run: the checks --------------------------------------------------------------------------------------------
failures=()
report() { echo "$*" | tee -a "$out/gpu-check.md"; }

check_golden() {
  report "## 1. Golden parity on the GPU (model_golden)"
  if [ ! -d "$kit/golden/idiff_face_tiny" ]; then report "skipped: no golden data in $kit/golden"; return; fi
  if (cd "$repo/build-gpu/tests/model" && ./model_golden >"$out/model_golden.log" 2>&1); then
    report "passed: $(grep -c '^\[       OK' "$out/model_golden.log") tests, $(grep -c 'SKIPPED \]' "$out/model_golden.log") skipped"
  else
    failures+=(golden); report "FAILED (log: model_golden.log)"
  fi
  grep -E "parity|cuda" "$out/model_golden.log" | sed 's/^/    /' >>"$out/gpu-check.md" || true
}

check_throughput() {
  report "" "## 2. Throughput at cpd25, DDIM-10, AdaptDiff, images/s including decoding"
  local arch=$repo/configs/models/idiff-face-cpd25.toml models=$out/models
  $py bench/reference/make_checkpoint.py --arch "$arch" --seed 0 --out-dir "$models" >/dev/null
  report "| batch | precision | reference | adaptdiff | adaptdiff + CUDA graphs | ratio (best) | rel. diff x0 |"
  report "|---|---|---|---|---|---|---|"
  for b in 16 64; do
    $py bench/reference/make_inputs.py --batch "$b" --arch "$arch" --seed 0 --out "$out/in_$b.h5" >/dev/null
    for p in fp32 bf16; do
      local files=(--arch "$arch" --unet "$models/ema_averaged_model.ckpt"
                   --decoder "$models/first_stage_decoder_state_dict.pt" --inputs "$out/in_$b.h5")
      $py bench/reference/sampler.py "${files[@]}" --device cuda --precision "$p" \
        --out "$out/ref_${b}_$p.h5" --json "$out/ref_${b}_$p.json" >/dev/null
      "$repo/build-gpu/bench/adaptdiff-bench" sampler "${files[@]}" --device cuda --precision "$p" \
        --out "$out/ours_${b}_$p.h5" --json "$out/ours_${b}_$p.json" >/dev/null
      "$repo/build-gpu/bench/adaptdiff-bench" sampler "${files[@]}" --device cuda --precision "$p" --cuda-graphs \
        --out "$out/graphs_${b}_$p.h5" --json "$out/graphs_${b}_$p.json" >/dev/null
      report "$($py - "$out" "$b" "$p" <<'EOF'
import json, sys, h5py, numpy as np
out, b, p = sys.argv[1:]
rate = {}
for name in ("ref", "ours", "graphs"):
    t = json.load(open(f"{out}/{name}_{b}_{p}.json"))
    rate[name] = int(b) / t["total_seconds"]
x_ref = h5py.File(f"{out}/ref_{b}_{p}.h5")["x0"][()].astype(np.float64)
rel = max(np.linalg.norm(h5py.File(f"{out}/{n}_{b}_{p}.h5")["x0"][()] - x_ref) / np.linalg.norm(x_ref)
          for n in ("ours", "graphs"))
best = max(rate["ours"], rate["graphs"])
print(f"| {b} | {p} | {rate['ref']:.2f} | {rate['ours']:.2f} | {rate['graphs']:.2f} | {best / rate['ref']:.2f}x | {rel:.1e} |")
EOF
)"
    done
  done
  report "(fp32 latents must agree to ~1e-5 relative; bf16 differs by bf16 rounding, ~1e-2, on both sides.)"
}

check_two_ranks() {
  report "" "## 3. Two ranks on one GPU (tiny model, Far-Neg)"
  local cfg=$repo/configs/quickstart.toml exe=$repo/build-gpu/src/app/adaptdiff-sample
  local ok=1
  mpiexec -n 2 --oversubscribe "$exe" "$cfg" --set output.path="$out/two_ranks_gpu.h5" --set run.device=cuda \
    >"$out/two_ranks_gpu.log" 2>&1 || ok=0
  mpiexec -n 2 --oversubscribe "$exe" "$cfg" --set output.path="$out/two_ranks_cpu.h5" --set run.device=cpu \
    >"$out/two_ranks_cpu.log" 2>&1 || ok=0
  "$exe" --status "$out/two_ranks_gpu.h5" >/dev/null 2>&1 || ok=0
  if ((ok)) && $py - "$out" <<'EOF'
import sys, h5py, numpy as np
out = sys.argv[1]
g, c = h5py.File(f"{out}/two_ranks_gpu.h5"), h5py.File(f"{out}/two_ranks_cpu.h5")
names = [k for k in g.keys() if "negative" in k]
sys.exit(0 if names and all(np.array_equal(g[k][()], c[k][()], equal_nan=True) for k in names) else 1)
EOF
  then
    report "passed: complete, negatives equal to the CPU run's; $(grep -m 1 'negatives:' "$out/two_ranks_gpu.log" | sed 's/.*negatives:/negatives:/')"
  else
    failures+=(two-ranks); report "FAILED (logs: two_ranks_gpu.log, two_ranks_cpu.log)"
  fi
}

run() {
  local mode=$1
  out=${2:-$kit/out}
  mkdir -p "$out" && out=$(cd "$out" && pwd)
  : >"$out/gpu-check.md"
  exec > >(tee -a "$out/gpu-check.log") 2>&1
  local t0=$SECONDS
  unpack
  configure_env
  if [ "$mode" = build-only ]; then
    build
    report "build-only: built build-gpu in $((SECONDS - t0)) s against $($py -c 'import torch; print("torch " + torch.__version__)')"
    return 0
  fi
  $py -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' ||
    { echo "gpu-check run: $py's torch sees no CUDA device" >&2; exit 2; }
  report "# adaptdiff GPU check ($(date -u +%Y-%m-%d), $($py -c 'import torch; print(torch.cuda.get_device_name(0) + ", torch " + torch.__version__)'))"
  build
  report "build: $((SECONDS - t0)) s"
  check_golden
  check_throughput
  check_two_ranks
  report "" "total: $((SECONDS - t0)) s; failed: ${failures[*]:-none}"
  ((${#failures[@]} == 0))
}

case "${1:-}" in
  pack) pack ;;
  run | build-only) run "$@" || exit 1 ;;
  *) usage ;;
esac
