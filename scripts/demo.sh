#!/usr/bin/env bash
# The README's main command: installs what is missing (apt, as root), builds LAMMPS once (cached
# outside the tree), the runtime, the `klay` tool and the KLAY plugin, then runs the example MD
# on 2 MPI ranks. Idempotent: a second run only re-runs the simulation.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KLAY_BUILD_DIR:-$root/build}
jobs=${KLAY_JOBS:-$(nproc)}

bash "$root/scripts/install_deps.sh"
source "$root/scripts/configure.sh"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "${KLAY_CMAKE_ARGS[@]}" >/dev/null
cmake --build "$build" -j"$jobs" --target klay_cli klay_lammps

example=$root/examples/soft_sphere
echo
echo "== klay validate: the example model's build plan =="
"$build/klay" validate "$example/model.yaml"
echo
echo "== LAMMPS: NVT then NVE, 256 atoms, 2 MPI ranks (examples/soft_sphere/in.lmp) =="
cd "$example"
OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -np 2 "$build/lmp" -in in.lmp \
  -log "$build/soft_sphere.log"
echo
echo "Log: $build/soft_sphere.log"
