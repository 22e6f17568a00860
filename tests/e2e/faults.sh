#!/usr/bin/env bash
# Fault tests of adaptdiff-sample's restart guarantees:
#   torture   SIGKILL one rank or all ranks at random moments (fixed seed), 10 times, resuming each time with a
#             random rank count and configured batch size; then finish. The file must open after every kill and
#             the finished file must equal an uninterrupted run with the batch size the file was created with
#             (images, labels, negatives, contexts, record, compute batch sizes).
#   disk_full the output's file system fills up mid-run: exit code 1 with a clear message; after space is
#             freed the same command resumes and finishes identically.
#   sigterm   SIGTERM to the ranks: exit code 3 (checkpointed), then a resume with another rank count and another
#             configured batch size computes in the file's batches (and says so) and gives an identical file.
#   rebatch   as sigterm, but the resume passes --rebatch: it must say that the samples are not byte-identical,
#             record the other batch size per sample, and --status must report it.
# MODEL is either a folder in the golden format (model.toml + checkpoints) or a model .toml used with seeded
# random weights. Every run of one test uses the same environment (OPENBLAS_CORETYPE, ONEDNN_MAX_CPU_ISA), so
# the comparisons hold whichever kernels that environment selects.
# Usage: faults.sh MODE SAMPLE_EXE MODEL WORK_DIR MPIEXEC [MPIEXEC_FLAGS...]
# Exit 77 = skipped (e.g. no permission to mount a small tmpfs for disk_full).
set -uo pipefail
mode=$1 exe=$2 model=$3 work=$4
shift 4
mpi=("$@")
RANDOM=20261130  # fixed seed: the kill schedule is reproducible

rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "FAIL: $*"; exit 1; }

echo "kernels: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-(unset)} ONEDNN_MAX_CPU_ISA=${ONEDNN_MAX_CPU_ISA-(unset)}; model $model"
count=12
if [ -d "$model" ]; then
  model_toml="architecture = \"$model/model.toml\"
unet = \"$model/ema_averaged_model.ckpt\"
decoder = \"$model/first_stage_decoder_state_dict.pt\""
else
  model_toml="architecture = \"$model\"
init = \"random\"
init_seed = 3"
  count=24  # the small random models sample faster: more work keeps the kill schedule inside the run
fi
cat > run.toml <<TOML
[model]
$model_toml
[identities]
count = $count
images_per_identity = 4
seed = 5
[negatives]
strategy = "far"
[guidance]
schedule = "linear"
w_max = 1.0
[sampler]
kind = "ddim"
steps = 20
[run]
batch_size = 3
seed = 11
checkpoint_interval = 0.5
progress_interval = 1.0
[output]
path = "out.h5"
TOML

sample() {  # sample RANKS BATCH [extra args]; output path out.h5
  local n=$1 b=$2
  shift 2
  "${mpi[@]}" -n "$n" "$exe" run.toml --set run.batch_size="$b" "$@"
}

dump() { h5dump -d "/$1" "$2" | tail -n +2; }  # without the first line, which names the file

same_as_reference() {  # same_as_reference [REFERENCE]  (default ref.h5)
  local ref=${1:-ref.h5}
  for d in images identity sample_index negative_index negative_similarity contexts sample_checksum \
           compute_batch_size; do
    cmp -s <(dump "$d" "$ref") <(dump "$d" out.h5) || fail "dataset $d differs from the uninterrupted run"
  done
  echo "identical to the uninterrupted run"
}

file_batch_size() {  # the compute batch size out.h5 was created with
  h5dump -a /compute_batch_size out.h5 | sed -n 's/.*(0): "\([0-9]*\)".*/\1/p'
}

# The uninterrupted reference.
sample 2 3 --set output.path=\"ref.h5\" > ref.log 2>&1 || { cat ref.log; fail "reference run failed"; }

case "$mode" in
torture)
  kills=0
  for attempt in $(seq 1 10); do
    n=$((1 + RANDOM % 3)) b=$((2 + RANDOM % 4)) delay_ms=$((100 + RANDOM % 2400)) who=$((RANDOM % 2))
    early=$((RANDOM % 4 == 0))  # 1 in 4 kills hits start-up (file creation included), the rest sampling
    setsid "${mpi[@]}" -n "$n" "$exe" run.toml --set run.batch_size="$b" > "attempt$attempt.log" 2>&1 &
    launcher=$!
    if ((!early)); then
      for _ in $(seq 1 300); do grep -q "negatives:" "attempt$attempt.log" && break; sleep 0.1; done
    fi
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    ranks=($(pgrep -P "$launcher" || true))
    if ((${#ranks[@]} == 0)); then
      wait "$launcher"; echo "attempt $attempt: finished before the kill (rc $?)"; break
    fi
    if ((who == 0)); then
      victim=${ranks[$((RANDOM % ${#ranks[@]}))]}
      kill -9 "$victim" 2>/dev/null && what="one rank (pid $victim)"
    else
      kill -9 -- -"$launcher" 2>/dev/null; kill -9 "${ranks[@]}" 2>/dev/null; what="all ranks"
    fi
    wait "$launcher" 2>/dev/null
    kills=$((kills + 1))
    if [ -f out.h5 ]; then
      h5dump -H out.h5 > /dev/null 2>&1 || fail "attempt $attempt: out.h5 cannot be opened after SIGKILL of $what"
    fi
    progress="no file yet"
    [ -f out.h5 ] && progress=$("$exe" --status out.h5 2>&1 | grep progress: | sed 's/^ *//')
    phase=sampling
    ((early)) && phase=start-up
    echo "attempt $attempt: $n rank(s), batch $b, SIGKILL of $what ${delay_ms} ms into $phase; $progress"
  done
  ((kills >= 5)) || fail "only $kills kills happened; the schedule no longer interrupts the run"
  sample 2 4 > final.log 2>&1 || { cat final.log; fail "final resume failed"; }
  "$exe" --status out.h5 | tail -2
  b=$(file_batch_size)
  [ -n "$b" ] || fail "out.h5 has no compute_batch_size attribute"
  grep -l "computing in batches of $b as the file was created" attempt*.log final.log > /dev/null ||
    fail "no resume ran with another configured batch size than the file's $b"
  echo "file created with batch size $b; resumes configured with $(grep -l 'computing in batches of' attempt*.log final.log | wc -l) other batch sizes"
  if [ "$b" != 3 ]; then
    sample 2 "$b" --set output.path=\"ref$b.h5\" > ref$b.log 2>&1 || { cat ref$b.log; fail "reference run failed"; }
    same_as_reference "ref$b.h5"
  else
    same_as_reference
  fi
  ;;
disk_full)
  mkdir -p small
  mount -t tmpfs -o size=96k tmpfs small 2> /dev/null || { echo "SKIP: cannot mount a tmpfs here"; exit 77; }
  trap 'umount "$work/small" 2>/dev/null' EXIT
  sample 2 3 --set output.path=\"small/out.h5\" > full.log 2>&1
  rc=$?
  [ "$rc" -eq 1 ] || { cat full.log; fail "expected exit code 1 on a full disk, got $rc"; }
  grep -qi "No space left on device" full.log || { cat full.log; fail "the message does not say the disk is full"; }
  grep -q "resumable" full.log || { cat full.log; fail "the message does not say the file stays resumable"; }
  echo "full disk: exit 1 with: $(grep -i -m1 'no space' full.log | cut -c1-160)"
  mount -o remount,size=4m small || fail "cannot grow the tmpfs"
  sample 2 3 --set output.path=\"small/out.h5\" > resume.log 2>&1 || { cat resume.log; fail "resume after freeing space failed"; }
  grep "resume:" resume.log
  cp small/out.h5 out.h5
  same_as_reference
  ;;
sigterm|rebatch)
  setsid "${mpi[@]}" -n 2 "$exe" run.toml > term.log 2>&1 &
  launcher=$!
  # Stop once rank 0 has stored a batch, so the file holds samples of both runs (the machine may be slow).
  for _ in $(seq 1 600); do grep -q "progress: ~[1-9]" term.log && break; sleep 0.1; done
  pkill -TERM -P "$launcher"
  wait "$launcher"
  rc=$?
  [ "$rc" -eq 3 ] || { cat term.log; fail "expected exit code 3 after SIGTERM, got $rc"; }
  grep -q "checkpoint written" term.log || fail "no checkpoint message"
  "$exe" --status out.h5 > /dev/null
  [ $? -eq 3 ] || fail "--status should report incomplete (3) after the stop"
  if [ "$mode" = sigterm ]; then
    sample 3 5 > resume.log 2>&1 || { cat resume.log; fail "resume failed"; }
    grep -q "computing in batches of 3 as the file was created, not run.batch_size = 5" resume.log ||
      { cat resume.log; fail "the resume does not say that it keeps the file's batch size"; }
    "$exe" --status out.h5 > /dev/null || fail "--status should report complete (0)"
    same_as_reference
  else
    sample 1 5 --rebatch > resume.log 2>&1 || { cat resume.log; fail "resume with --rebatch failed"; }
    grep -q -- "--rebatch: the remaining samples are computed in batches of 5 .* may differ" resume.log ||
      { cat resume.log; fail "the --rebatch resume does not say that its bytes may differ"; }
    "$exe" --status out.h5 > status.log || { cat status.log; fail "--status should report complete (0)"; }
    grep -q "sample(s) in batches of 5 (--rebatch): those may differ from an uninterrupted run" status.log ||
      { cat status.log; fail "--status does not report the samples computed with --rebatch"; }
    sizes=$(dump compute_batch_size out.h5 | grep -oE '\b[35]\b' | sort | uniq -c | tr -s ' \n' ' ')
    echo "compute_batch_size per sample (count value): $sizes"
    [[ "$sizes" == *" 3"*" 5"* ]] || fail "compute_batch_size should hold both 3 and 5"
    # The samples finished before the stop keep the bytes of the uninterrupted run.
    python3 - <<'PY' || fail "samples computed in batches of 3 differ from the uninterrupted run"
import subprocess, sys
def col(name, f):
    out = subprocess.run(["h5dump", "-y", "-w", "0", "-d", "/" + name, f], capture_output=True, text=True).stdout
    body = out[out.index("DATA {") + 6: out.rindex("}")]
    return [int(v) for v in body.replace(",", " ").split() if v.lstrip("-").isdigit()]
sizes = col("compute_batch_size", "out.h5")
a, b = col("images", "out.h5"), col("images", "ref.h5")
per = len(a) // len(sizes)
kept = [s for s, v in enumerate(sizes) if v == 3]
bad = [s for s in kept if a[s * per:(s + 1) * per] != b[s * per:(s + 1) * per]]
print(f"{len(kept)} samples kept from batches of 3, {len(bad)} differ from the uninterrupted run")
sys.exit(1 if bad else 0)
PY
  fi
  ;;
*) fail "unknown mode $mode" ;;
esac
echo "PASS: $mode"
