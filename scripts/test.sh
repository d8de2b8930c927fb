#!/usr/bin/env bash
# The README's test command: installs what is missing (apt, as root), builds everything once
# (LAMMPS 4 Feb 2025 and stable 29 Sep 2021 from Debian's source packages into a cache outside
# the tree, ccache for our code) and runs the whole test suite with ctest. Idempotent: a second
# run rebuilds only what changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KLAY_BUILD_DIR:-$root/build}
jobs=${KLAY_JOBS:-$(nproc)}

# The tests compare against KLay's reference outputs in the project's shared/ folder, which sits
# next to the repository; say so before a long build rather than fail a hundred tests after it.
shared=${KLAY_SHARED_DIR:-$root/../shared}
if [ ! -d "$shared/conformance" ]; then
  echo "scripts/test.sh: KLay's conformance data is not at $shared/conformance; put the project's" \
       "shared/ folder next to the repository or set KLAY_SHARED_DIR to it" >&2
  exit 2
fi

bash "$root/scripts/install_deps.sh"
source "$root/scripts/configure.sh"   # sets KLAY_CMAKE_ARGS (LAMMPS location when available)

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DKLAY_SHARED_DIR="$(cd "$shared" && pwd)" \
  "${KLAY_CMAKE_ARGS[@]}"
cmake --build "$build" -j"$jobs"
cd "$build"
OMP_NUM_THREADS=1 ctest --output-on-failure -j"$jobs" "$@"
