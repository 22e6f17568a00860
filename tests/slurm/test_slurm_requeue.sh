#!/usr/bin/env bash
# ctest slurm_requeue_resume: slurm/adaptdiff-1node.sbatch on a real (throw-away, localhost) Slurm cluster.
#
#  1. Starts munged + slurmctld + slurmd with all state under a scratch folder (cluster.sh; stopped on exit).
#  2. Sizes a tiny job (golden tiny model, AdaptDiff + Far-Neg, DDIM 50, batches of one identity x 4 images) so
#     that sampling takes about ADAPTDIFF_SLURM_TEST_WORK seconds per rank, measured by a short serial run.
#  3. Submits the sbatch script CPU-only (sbatch --gpus-per-task=0, ADAPTDIFF_GPUS_PER_TASK=0), 2 ranks x 1 CPU,
#     with --time=1 and --signal=B:USR1@10: Slurm signals the batch shell 20-50 s into each run (its 30 s
#     tick), the script forwards SIGUSR1 to srun, the ranks checkpoint and exit 3, the script requeues the job,
#     and the next run resumes, until the output is complete. Should the first run reach 70% before Slurm's
#     signal (a machine much faster than measured), the test signals the batch shell itself (scancel --batch).
#  4. Checks: the job COMPLETED with exit 0 after >= 1 restart (scontrol Restarts, SLURM_RESTART_COUNT in the
#     log), a run started from an incomplete file, `--status` says complete.
#  5. Runs the same config uninterrupted with mpiexec -n 2 (same folder, same output path) and compares
#     images, identity, sample_index, negative_index, negative_similarity and contexts (h5dump text), the
#     dataset list and every dataset and attribute (h5diff), and reports whether the files are byte-identical.
#
# Usage: test_slurm_requeue.sh ADAPTDIFF_SAMPLE SHARED_DIR SOURCE_DIR MPIEXEC [MPIEXEC_FLAG ...]
# Exit: 0 pass, 1 fail, 77 skipped (not root, Slurm/munge not installed, the cluster does not start).
# Environment: ADAPTDIFF_SLURM_TEST_REQUIRED=1  a skip is a failure (CI where Slurm must work)
#              ADAPTDIFF_SLURM_TEST_WORK=80     seconds of sampling per rank to aim for
#              ADAPTDIFF_SLURM_TEST_BUDGET=540  seconds before the test gives up (ctest TIMEOUT is 600)
#              ADAPTDIFF_SLURM_TEST_KEEP=1      keep the scratch folder (it is always kept on failure)
set -uo pipefail

if (($# < 4)); then
  echo "usage: $0 ADAPTDIFF_SAMPLE SHARED_DIR SOURCE_DIR MPIEXEC [MPIEXEC_FLAG ...]" >&2
  exit 2
fi
bin=$(realpath "$1")
shared=$2
src=$(realpath "$3")
mpiexec=$4
shift 4
mpiexec_flags=("$@")
here=$(dirname "$(realpath "$0")")
work_s=${ADAPTDIFF_SLURM_TEST_WORK:-80}
budget_s=${ADAPTDIFF_SLURM_TEST_BUDGET:-540}
golden=$shared/golden/idiff_face_tiny

note() { echo "[slurm-test +${SECONDS}s] $*"; }
skip() {
  if [[ ${ADAPTDIFF_SLURM_TEST_REQUIRED:-0} == 1 ]]; then
    echo "FAIL (ADAPTDIFF_SLURM_TEST_REQUIRED=1): $*"
    exit 1
  fi
  echo "SKIP: $*"
  exit 77
}
failures=0
check() {  # check DESCRIPTION COMMAND...: runs the command, records PASS/FAIL
  local what=$1
  shift
  if "$@"; then echo "PASS: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}

# ---- preconditions -----------------------------------------------------------------------------------------------
((EUID == 0)) || skip "needs root (munged --force, SlurmdUser=root)"
missing=()
for p in munged slurmctld slurmd sbatch scontrol squeue scancel srun sinfo h5dump h5ls h5diff realpath timeout; do
  command -v "$p" >/dev/null || missing+=("$p")
done
((${#missing[@]} == 0)) || skip "missing ${missing[*]} (Debian: apt-get install slurmctld slurmd slurm-client munge hdf5-tools; tools/setup.sh installs them)"
for f in model.toml ema_averaged_model.ckpt first_stage_decoder_state_dict.pt; do
  [[ -f $golden/$f ]] || skip "no golden model file $golden/$f"
done
[[ -x $bin ]] || { echo "FAIL: $bin is not executable"; exit 1; }
"$bin" --help 2>&1 | grep -q -- '--status' || { echo "FAIL: $bin has no --status (restart support)"; exit 1; }
(($(nproc) >= 2)) || skip "needs 2 CPUs for 2 ranks"

# Nothing from an enclosing Slurm job (a CI runner inside an allocation) may leak into ours.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(SLURM|SBATCH|SRUN|SALLOC)_')

W=$(mktemp -d "${TMPDIR:-/tmp}/adaptdiff-slurm.XXXXXX")
cluster_dir=$W/cluster
ref_pid=""
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n $ref_pid ]] && kill "$ref_pid" 2>/dev/null
  bash "$here/cluster.sh" stop "$cluster_dir" >/dev/null 2>&1
  if ((rc == 0 || rc == 77)) && [[ ${ADAPTDIFF_SLURM_TEST_KEEP:-0} != 1 ]]; then
    rm -rf "$W"
  else
    echo "scratch folder kept: $W (job log $W/job.log, daemons' logs in $cluster_dir)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 1' INT TERM

# ---- 1. the cluster ----------------------------------------------------------------------------------------------
note "starting a one-node Slurm cluster in $cluster_dir"
bash "$here/cluster.sh" start "$cluster_dir"
case $? in
  0) ;;
  77) skip "Slurm or munge programs missing" ;;
  *) skip "the Slurm cluster did not start (daemon logs above)" ;;
esac
export SLURM_CONF=$cluster_dir/slurm.conf
srun --mpi=list 2>&1 | grep -q pmix || skip "Slurm has no PMIx plugin (srun --mpi=list), needed by Open MPI"

# ---- 2. the job, sized by a short serial run -----------------------------------------------------------------------
cat >"$W/job.toml" <<EOF
# slurm_requeue_resume: tiny AdaptDiff + Far-Neg job on the golden tiny model (written by $0)
[model]
architecture = "$golden/model.toml"
unet = "$golden/ema_averaged_model.ckpt"
decoder = "$golden/first_stage_decoder_state_dict.pt"

[identities]
count = 2  # the calibration run; set below
images_per_identity = 4
seed = 7

[negatives]
strategy = "far"

[guidance]
schedule = "linear"
w_max = 1.0

[sampler]
kind = "ddim"
steps = 50

[run]
batch_size = 4
seed = 42
progress_interval = 5.0

[output]
path = "out/requeue.h5"
EOF
note "calibration: 2 identities x 4 images, 1 rank, 1 thread"
calib_log=$(timeout 120 "$bin" "$W/job.toml" --set run.threads=1 \
  --set output.path="$W/calibration.h5" 2>&1)
calib_s=$(printf '%s\n' "$calib_log" | sed -n 's/.*done: .* in \([0-9.]*\) s.*/\1/p' | tail -n 1)
if [[ -z $calib_s ]]; then
  printf '%s\n' "$calib_log"
  echo "FAIL: the calibration run did not finish"
  exit 1
fi
# 2 batches took calib_s; aim at work_s per rank on 2 ranks (one identity per batch), 8..400 identities.
count=$(awk -v t="$calib_s" -v w="$work_s" 'BEGIN { b = t / 2; if (b < 0.01) b = 0.01; n = 2 * int(w / b + 0.999);
                                              if (n < 8) n = 8; if (n > 400) n = 400; print n }')
sed -i "s/^count = .*/count = $count/" "$W/job.toml"
note "calibration: 2 batches in ${calib_s} s -> $count identities x 4 images ($((count / 2)) batches per rank)"

# ---- 3. submit the real sbatch script, CPU only --------------------------------------------------------------------
cd "$W" || exit 1
job_id=$(ADAPTDIFF_BIN="$bin" ADAPTDIFF_GPUS_PER_TASK=0 sbatch --parsable --gpus-per-task=0 --nodes=1 \
  --ntasks-per-node=2 --cpus-per-task=1 --time=1 --signal=B:USR1@10 --job-name=adaptdiff-requeue-test \
  --output="$W/job.log" "$src/slurm/adaptdiff-1node.sbatch" job.toml)
[[ $job_id =~ ^[0-9]+$ ]] || { echo "FAIL: sbatch: $job_id"; exit 1; }
note "submitted job $job_id (--time=1 --signal=B:USR1@10)"

field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2" | head -n 1; }
state="" last="" fallback=""
while :; do
  info=$(scontrol --oneliner show job "$job_id" 2>/dev/null)
  state=$(field JobState "$info")
  restarts=$(field Restarts "$info")
  if [[ "$state/$restarts" != "$last" ]]; then
    note "job $job_id: $state, restarts ${restarts:-?}"
    last="$state/$restarts"
  fi
  case $state in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED) break ;;
  esac
  # Fallback for a machine much faster than the calibration said: if the first run is 70% done and Slurm's
  # signal has not come yet, signal the batch shell by hand (the same path: trap, forward, exit 3, requeue).
  if [[ $state == RUNNING && ${restarts:-0} == 0 && -z $fallback ]] && ! grep -q 'SIGUSR1' "$W/job.log" 2>/dev/null; then
    pct=$(sed -n 's/.*progress: ~[0-9]*\/[0-9]* images (\([0-9]*\).*/\1/p' "$W/job.log" 2>/dev/null | tail -n 1)
    if ((${pct:-0} >= 70)); then
      fallback="at ${pct}% of the first run"
      note "the time-limit signal has not come and the first run is ${pct}% done: scancel --batch --signal=USR1"
      scancel --batch --signal=USR1 "$job_id"
    fi
  fi
  if ((SECONDS > budget_s - 120)); then
    note "giving up on job $job_id after ${SECONDS} s"
    scancel "$job_id"
    break
  fi
  sleep 2
done
exit_code=$(field ExitCode "$info")
slurm_s=$SECONDS
echo "---- job log ($W/job.log)"
cat "$W/job.log"
echo "---- jobcomp records"
cat "$cluster_dir/jobcomp.txt" 2>/dev/null
echo "----"
bash "$here/cluster.sh" stop "$cluster_dir"

runs=$(grep -c 'SLURM_RESTART_COUNT=' "$W/job.log")
check "job state COMPLETED, exit code 0:0 (got $state, $exit_code)" test "$state/$exit_code" = "COMPLETED/0:0"
check "requeued: scontrol Restarts >= 1 (got ${restarts:-?})" test "${restarts:-0}" -ge 1
check "the log shows SLURM_RESTART_COUNT=1 ($runs runs in all)" grep -q 'SLURM_RESTART_COUNT=1 ' "$W/job.log"
check "the batch shell forwarded SIGUSR1 to the job step" grep -q 'SIGUSR1: forwarding to the job step' "$W/job.log"
check "a run ended with code 3 and requeued the job" grep -q 'checkpointed, work remains: scontrol requeue' "$W/job.log"
check "a later run started from an incomplete output (status 3 at start)" grep -q 'status (start), exit 3' "$W/job.log"
check "the last run finished (status 0 at the end)" grep -q 'status (end), exit 0' "$W/job.log"
"$bin" --status "$W/out/requeue.h5"
check "adaptdiff-sample --status: complete (exit 0)" test $? -eq 0

# ---- 5. the same run uninterrupted, directly with mpiexec ----------------------------------------------------------
mv "$W/out/requeue.h5" "$W/slurm.h5" || exit 1
note "reference: $mpiexec -n 2 ${mpiexec_flags[*]} adaptdiff-sample job.toml (uninterrupted)"
left=$((budget_s - SECONDS))
((left > 30)) || { echo "FAIL: no time left for the reference run"; exit 1; }
timeout "$left" "$mpiexec" -n 2 "${mpiexec_flags[@]}" "$bin" job.toml --set run.threads=1 >"$W/reference.log" 2>&1 &
ref_pid=$!
wait "$ref_pid"
ref_rc=$?
ref_pid=""
tail -n 3 "$W/reference.log"
check "reference run exit 0 (got $ref_rc)" test "$ref_rc" -eq 0
mv "$W/out/requeue.h5" "$W/reference.h5" || exit 1

dump() { h5dump -d "/$1" "$2" 2>&1 | tail -n +2; }  # line 1 names the file
for d in images identity sample_index negative_index negative_similarity contexts; do
  dump "$d" "$W/slurm.h5" >"$W/slurm.$d.txt"
  dump "$d" "$W/reference.h5" >"$W/reference.$d.txt"
  shape=$(grep -m 1 DATASPACE "$W/reference.$d.txt" | sed 's/.*SIMPLE { ( \(.*\) ) \/.*/(\1)/')
  check "dataset $d $shape identical to the uninterrupted run" cmp -s "$W/slurm.$d.txt" "$W/reference.$d.txt"
done
check "same datasets (h5ls -r)" diff <(h5ls -r "$W/slurm.h5" | sed 1d) <(h5ls -r "$W/reference.h5" | sed 1d)
check "h5diff: no difference in any dataset or attribute" h5diff "$W/slurm.h5" "$W/reference.h5"
if cmp -s "$W/slurm.h5" "$W/reference.h5"; then
  note "the files are byte-identical"
else
  # Differences left are HDF5 metadata such as object modification times (H5Pset_obj_track_times).
  note "note: the files are not byte-identical: $(cmp -l "$W/slurm.h5" "$W/reference.h5" | wc -l) byte(s) differ"
fi

note "Slurm part ${slurm_s} s, total ${SECONDS} s; $count identities x 4 images, $runs Slurm runs, restarts ${restarts:-?};" \
  "first interruption: ${fallback:+by hand }${fallback:-by the time-limit signal}"
if ((failures)); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
exit 0
