#!/usr/bin/env bash
# adaptdiff's benchmarks: builds (tools/setup.sh), makes random-weight model files of the tiny and the published
# (cpd25) size, runs the five measurements and prints their tables (bench/report.py). Every figure is a ratio
# against a baseline measured in the same run. Results: bench/out/*.json and bench/out/results.json.
#
# Usage: bench/run.sh [--quick]       --quick: tiny model and N = 10,000 only (a few minutes)
# BENCH_RESUME=1 keeps the measurements whose result files exist (to finish an interrupted run; the ratios then
# mix runs, so final figures come from one uninterrupted run, the default).
# Environment: BENCH_OUT (default bench/out), BENCH_STEPS (DDIM steps setting, default 10),
#              BENCH_BATCHES (default "4 8"), BENCH_SIZES (default "tiny cpd25"), BENCH_FARNEG_N (default
#              "10000 50000"). Takes about 30 minutes on 2 cores in full; run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
out=$(realpath -m "${BENCH_OUT:-bench/out}")
steps=${BENCH_STEPS:-10}
batches=${BENCH_BATCHES:-4 8}
sizes=${BENCH_SIZES:-tiny cpd25}
farneg_n=${BENCH_FARNEG_N:-10000 50000}
if ((quick)); then sizes=tiny; farneg_n=10000; fi
py=/usr/bin/python3  # Debian's interpreter: python3-torch, numpy, h5py (installed by tools/setup.sh)
mpi=(mpiexec)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
[ -n "${BENCH_RESUME:-}" ] || rm -f "$out"/*.json "$out"/*.log "$out"/ours_*.h5 "$out"/ref_*.h5
mkdir -p "$out"

echo "== build (tools/setup.sh)"
tools/setup.sh build >/dev/null
bench=build/bench/adaptdiff-bench
sample=build/src/app/adaptdiff-sample
cores=$(nproc)

# True when BENCH_RESUME is set and result file $1 exists: that measurement is kept.
have() { [ -n "${BENCH_RESUME:-}" ] && [ -f "$1" ]; }

# Runs "$@" once per core, each pinned to its core with one BLAS thread, all at once; "{r}" in an argument
# becomes the core's number.
per_core() {
  local pids=() r
  for ((r = 0; r < cores; r++)); do
    OPENBLAS_NUM_THREADS=1 taskset -c "$r" "${@//\{r\}/$r}" >/dev/null &
    pids+=($!)
  done
  wait "${pids[@]}"
}

arch_of() { case "$1" in tiny) echo configs/models/tiny.toml ;; cpd25) echo configs/models/idiff-face-cpd25.toml ;; esac; }

# ---- 1. sampler vs the reference implementation -------------------------------------------------------------
for size in $sizes; do
  arch=$(arch_of "$size")
  models="$out/models/$size"
  if [ ! -f "$models/ema_averaged_model.ckpt" ]; then
    echo "== random-weight $size model files -> $models"
    $py bench/reference/make_checkpoint.py --arch "$arch" --seed 0 --out-dir "$models" >/dev/null
  fi
  files=(--arch "$arch" --unet "$models/ema_averaged_model.ckpt" --decoder "$models/first_stage_decoder_state_dict.pt")
  for b in $batches; do
    tag="${size}_b${b}"
    $py bench/reference/make_inputs.py --batch "$b" --arch "$arch" --seed 0 --out "$out/in_$tag.h5" >/dev/null
    common=(--inputs "$out/in_$tag.h5" --steps "$steps" --schedule linear --w-max 1.0)
    echo "== sampler $tag: adaptdiff, 1 process x $cores threads"
    have "$out/ours_${tag}_1x${cores}.json" || OPENBLAS_NUM_THREADS=1 $bench sampler "${files[@]}" "${common[@]}" --threads "$cores" \
      --out "$out/ours_${tag}_1x${cores}.h5" --json "$out/ours_${tag}_1x${cores}.json"
    echo "== sampler $tag: adaptdiff, $cores processes x 1 thread (one core each, concurrently)"
    have "$out/ours_${tag}_${cores}x1_r0.json" ||
      per_core $bench sampler "${files[@]}" "${common[@]}" --threads 1 --json "$out/ours_${tag}_${cores}x1_r{r}.json"
    # The reference at each thread setting a user would try; the best one is the baseline.
    for setting in "2 1" "2 default" "1 1"; do
      set -- $setting
      ((${1} <= cores)) || continue
      echo "== sampler $tag: reference, torch threads $1, OpenBLAS threads $2"
      have "$out/ref_${tag}_t$1_blas$2.json" || env $([ "$2" = default ] && echo "X=1" || echo "OPENBLAS_NUM_THREADS=$2") \
        $py bench/reference/sampler.py "${files[@]}" "${common[@]}" --threads "$1" \
        --out "$out/ref_${tag}_t$1_blas$2.h5" --json "$out/ref_${tag}_t$1_blas$2.json"
    done
    echo "== sampler $tag: reference, $cores processes x 1 thread"
    have "$out/ref_${tag}_${cores}x1_r0.json" ||
      per_core $py bench/reference/sampler.py "${files[@]}" "${common[@]}" --threads 1 \
        --json "$out/ref_${tag}_${cores}x1_r{r}.json"
    # bf16 (AVX512-BF16 / AMX through oneDNN) against the fp32 run above: speed and error.
    echo "== sampler $tag: adaptdiff bf16, 1 process x $cores threads"
    have "$out/ours_${tag}_1x${cores}_bf16.json" ||
      OPENBLAS_NUM_THREADS=1 $bench sampler "${files[@]}" "${common[@]}" --threads "$cores" --precision bf16 \
      --out "$out/ours_${tag}_1x${cores}_bf16.h5" --json "$out/ours_${tag}_1x${cores}_bf16.json" || true
    # Memory flat over a long run: the same batch five times, RSS after each.
    if [ "$b" = "$(echo $batches | cut -d' ' -f1)" ]; then
      echo "== memory $tag: 5 rounds"
      have "$out/mem_${tag}.json" || OPENBLAS_NUM_THREADS=1 $bench sampler "${files[@]}" "${common[@]}" --threads "$cores" --rounds 5 \
        --json "$out/mem_${tag}.json" >/dev/null
    fi
  done
done

# ---- 2. where the time goes / 4. scaling: the whole job ------------------------------------------------------
job_size=cpd25
((quick)) && job_size=tiny
cat >"$out/job.toml" <<EOF
[model]
architecture = "$PWD/$(arch_of $job_size)"
init = "random"
[identities]
count = 4
images_per_identity = 4
[negatives]
strategy = "far"
[guidance]
schedule = "linear"
w_max = 1.0
[sampler]
kind = "ddim"
steps = $steps
[run]
batch_size = 4
progress_interval = 1000.0
[output]
path = "$out/job.h5"
overwrite = true
EOF
echo "== job ($job_size, 16 samples): 1 rank x $cores threads"
OPENBLAS_NUM_THREADS=1 "${mpi[@]}" -n 1 --bind-to none $sample "$out/job.toml" 2>&1 | tee "$out/job_1x${cores}.log" | grep -E "done:|time shares"
echo "== job ($job_size, 16 samples): $cores ranks x 1 thread"
OPENBLAS_NUM_THREADS=1 "${mpi[@]}" -n "$cores" --bind-to core $sample "$out/job.toml" 2>&1 | tee "$out/job_${cores}x1.log" | grep -E "done:|time shares"

# ---- 3. Far-Neg ----------------------------------------------------------------------------------------------
for n in $farneg_n; do
  for ranks in 1 2; do
    echo "== Far-Neg N = $n, $ranks rank(s)"
    bind=(--bind-to core)
    ((ranks == 1)) && bind=(--bind-to none)
    have "$out/farneg_n${n}_r${ranks}.json" || OPENBLAS_NUM_THREADS=1 "${mpi[@]}" -n "$ranks" "${bind[@]}" $bench negatives --count "$n" --repeat 3 \
      --json "$out/farneg_n${n}_r${ranks}.json"
  done
  echo "== Far-Neg N = $n: per-row loop (numpy)"
  have "$out/farneg_n${n}_loop.json" || $py bench/reference/far_neg_loop.py --count "$n" --rows $((n >= 50000 ? 200 : 500)) --json "$out/farneg_n${n}_loop.json"
done

echo
$py bench/report.py "$out" --sizes $sizes --batches $batches --cores "$cores" --farneg $farneg_n
