#!/usr/bin/env bash
# Static checks of the Slurm scripts (no Slurm needed): bash -n and shellcheck (when installed) on
# slurm/*.sbatch and tests/slurm/*.sh; the #SBATCH lines the requeue logic depends on; no absolute paths; and
# adaptdiff-1node.sbatch and adaptdiff-multinode.sbatch identical below their "# ---- settings" line.
#
# Usage: lint.sh SOURCE_DIR
set -euo pipefail
(($# == 1)) || { echo "usage: $0 SOURCE_DIR" >&2; exit 2; }
src=$1
fail=0
scripts=("$src"/slurm/adaptdiff-1node.sbatch "$src"/slurm/adaptdiff-multinode.sbatch "$src"/tests/slurm/*.sh)

for f in "${scripts[@]}"; do
  bash -n "$f" || { echo "FAIL bash -n $f"; fail=1; }
done
if command -v shellcheck >/dev/null; then
  shellcheck -s bash "${scripts[@]}" || { echo "FAIL shellcheck"; fail=1; }
else
  echo "note: shellcheck not installed; skipped"
fi

for f in "$src"/slurm/adaptdiff-1node.sbatch "$src"/slurm/adaptdiff-multinode.sbatch; do
  for want in '--signal=B:USR1@' '--requeue' '--open-mode=append' '--ntasks-per-node=' '--gpus-per-task=1' \
              '--cpus-per-task='; do
    grep -q -- "^#SBATCH $want" "$f" || { echo "FAIL ${f##*/}: no '#SBATCH $want'"; fail=1; }
  done
  if grep -v '^#' "$f" | grep -Eq '(^|[[:space:]"=])/(work|home|scratch|data|tmp|opt)/'; then
    echo "FAIL ${f##*/}: absolute path"; fail=1
  fi
done

if ! diff <(sed -n '/^# ---- settings/,$p' "$src/slurm/adaptdiff-1node.sbatch") \
          <(sed -n '/^# ---- settings/,$p' "$src/slurm/adaptdiff-multinode.sbatch"); then
  echo "FAIL adaptdiff-1node.sbatch and adaptdiff-multinode.sbatch differ below '# ---- settings'"
  fail=1
fi
((fail)) || echo "slurm scripts: ok"
exit "$fail"
