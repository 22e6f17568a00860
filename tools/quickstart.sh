#!/usr/bin/env bash
# The built-in demo, end to end on a fresh machine: install, build, run on 2 MPI ranks, summarise.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh build
mpi_flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || mpi_flags+=(--allow-run-as-root)
mpiexec "${mpi_flags[@]}" -n 2 build/src/app/adaptdiff-sample configs/quickstart.toml
echo
echo "== what was written: out/quickstart.h5"
h5ls -r out/quickstart.h5
echo
echo "== first identities and their Far-Neg negatives (index, cosine similarity)"
h5dump -d /negative_index -s 0 -c 8 out/quickstart.h5 | sed -n '/DATA {/,/}/p'
h5dump -d /negative_similarity -s 0 -c 8 out/quickstart.h5 | sed -n '/DATA {/,/}/p'
echo
echo "== a look at the images: contact sheets per identity and one overview sheet"
rm -rf out/quickstart-export  # the demo's output is made anew each time: so is its export
build/src/app/adaptdiff-export out/quickstart.h5 --out out/quickstart-export --format grid
echo "overview sheet: $(pwd)/out/quickstart-export/overview.png"
