#!/usr/bin/env bash
# Fault tests of adaptdiff-sample's restart guarantees, on the golden tiny model:
#   torture   SIGKILL one rank or all ranks at random moments (fixed seed), 10 times, resuming each time with a
#             random rank count and batch size; then finish. The file must open after every kill and the
#             finished file must equal an uninterrupted run (images, labels, negatives, contexts, record).
#   disk_full the output's file system fills up mid-run: exit code 1 with a clear message; after space is
#             freed the same command resumes and finishes identically.
#   sigterm   SIGTERM to the ranks: exit code 3 (checkpointed), then resume to an identical file.
# Usage: faults.sh MODE SAMPLE_EXE GOLDEN_DIR WORK_DIR MPIEXEC [MPIEXEC_FLAGS...]
# Exit 77 = skipped (e.g. no permission to mount a small tmpfs for disk_full).
set -uo pipefail
mode=$1 exe=$2 golden=$3 work=$4
shift 4
mpi=("$@")
RANDOM=20261130  # fixed seed: the kill schedule is reproducible

rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "FAIL: $*"; exit 1; }

cat > run.toml <<TOML
[model]
architecture = "$golden/model.toml"
unet = "$golden/ema_averaged_model.ckpt"
decoder = "$golden/first_stage_decoder_state_dict.pt"
[identities]
count = 12
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

same_as_reference() {
  for d in images identity sample_index negative_index negative_similarity contexts sample_checksum; do
    cmp -s <(h5dump -d "/$d" ref.h5 | tail -n +2) <(h5dump -d "/$d" out.h5 | tail -n +2) ||
      fail "dataset $d differs from the uninterrupted run"
  done
  echo "identical to the uninterrupted run"
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
  "$exe" --status out.h5 | tail -1
  same_as_reference
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
sigterm)
  setsid "${mpi[@]}" -n 2 "$exe" run.toml > term.log 2>&1 &
  launcher=$!
  for _ in $(seq 1 300); do grep -q "negatives:" term.log && break; sleep 0.1; done  # sampling has begun
  sleep 1
  pkill -TERM -P "$launcher"
  wait "$launcher"
  rc=$?
  [ "$rc" -eq 3 ] || { cat term.log; fail "expected exit code 3 after SIGTERM, got $rc"; }
  grep -q "checkpoint written" term.log || fail "no checkpoint message"
  "$exe" --status out.h5 > /dev/null
  [ $? -eq 3 ] || fail "--status should report incomplete (3) after the stop"
  sample 3 5 > resume.log 2>&1 || { cat resume.log; fail "resume failed"; }
  "$exe" --status out.h5 > /dev/null || fail "--status should report complete (0)"
  same_as_reference
  ;;
*) fail "unknown mode $mode" ;;
esac
echo "PASS: $mode"
