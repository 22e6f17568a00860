#!/usr/bin/env bash
# Validates every experiment config in jobs/*.toml without the model weights: each one must load, validate and
# plan (`adaptdiff-sample JOB --dry-run`) with model.init = "random" (seeded random weights: no checkpoint files
# are opened) and identities.count reduced so that the plan is quick. Also checks that no two jobs share an
# output file and that every job keeps its model paths relative (../models/...) with a "fill in" comment.
#
# Usage: check_jobs.sh ADAPTDIFF_SAMPLE SOURCE_DIR
set -euo pipefail
(($# == 2)) || { echo "usage: $0 ADAPTDIFF_SAMPLE SOURCE_DIR" >&2; exit 2; }
bin=$1
src=$2

shopt -s nullglob
jobs=("$src"/jobs/*.toml)
((${#jobs[@]} > 0)) || { echo "check_jobs: no jobs/*.toml under $src" >&2; exit 1; }

fail=0
declare -A output_of=()
for job in "${jobs[@]}"; do
  name=${job##*/}
  # output.path, as written in the file (the plan line below prints it resolved).
  out=$(awk '/^[[:space:]]*\[/ { sec = $0; next } sec ~ /^\[output\]/ && /^[[:space:]]*path[[:space:]]*=/ {
               v = $0; sub(/^[^"]*"/, "", v); sub(/".*$/, "", v); print v; exit }' "$job")
  if [[ -z $out ]]; then
    echo "FAIL $name: no [output] path"; fail=1
  elif [[ -n ${output_of[$out]:-} ]]; then
    echo "FAIL $name: output $out is also the output of ${output_of[$out]}"; fail=1
  else
    output_of[$out]=$name
  fi
  for key in unet decoder; do
    if ! grep -Eq "^$key = \"\.\./models/[^\"]+\"[[:space:]]+#.*fill in" "$job"; then
      echo "FAIL $name: model.$key should be a ../models/... path with a \"fill in\" comment"; fail=1
    fi
  done

  set +e
  log=$("$bin" "$job" --dry-run --set model.init=random --set identities.count=4 --set run.threads=1 2>&1)
  rc=$?
  set -e
  if ((rc != 0)); then
    echo "FAIL $name: --dry-run exited $rc"; printf '%s\n' "$log" | sed 's/^/    /'; fail=1
    continue
  fi
  plan=$(printf '%s\n' "$log" | grep -E "plan: [0-9]+ (DDPM|DDIM) steps" | sed 's/.*plan: //')
  echo "ok   $name: $plan"
done
exit "$fail"
