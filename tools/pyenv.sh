#!/usr/bin/env bash
# Creates the Python environment of adaptdiff's evaluation tests at build/pyenv (or $1): a venv that sees
# Debian's python3-numpy, -h5py, -matplotlib and -sklearn (tools/setup.sh installs them) and has pyeer from PyPI.
# Idempotent: a second run only checks that pyeer imports. Exit 0 ready; 1 the venv cannot be made; 3 pyeer
# could not be installed (e.g. PyPI unreachable: the venv is still usable for everything else).
# Environment: ADAPTDIFF_PYEER_VERSION (default 0.5.6, the version whose conventions adaptdiff-eval reproduces).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-build/pyenv}
version=${ADAPTDIFF_PYEER_VERSION:-0.5.6}
if [ ! -x "$venv/bin/python3" ]; then
  mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
if "$venv/bin/python3" -c "import pyeer, importlib.metadata as m; assert m.version('pyeer') == '$version'" 2>/dev/null; then
  exit 0
fi
if ! "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check --timeout 20 --retries 1 \
    "pyeer==$version" >&2; then
  echo "pyenv.sh: could not install pyeer==$version into $venv (is PyPI reachable?)" >&2
  exit 3
fi
