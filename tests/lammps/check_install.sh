#!/usr/bin/env bash
# lammps_pkg/install.sh on a scratch copy of a LAMMPS source tree: it registers KLAY, is
# idempotent, LAMMPS's CMake configures with -DPKG_KLAY=on (pair style klay in the generated style
# table) and compiles pair_klay.cpp inside the LAMMPS build. Linking a whole second LAMMPS is left
# out (15-30 minutes on 2 cores); the plugin build links the same sources against liblammps.
#   check_install.sh LAMMPS_SOURCE_DIR KLAY_BUILD_DIR
set -euo pipefail
lammps=${1:?LAMMPS_SOURCE_DIR}
klay_build=${2:?KLAY_BUILD_DIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
scratch=$(mktemp -d /tmp/klay_install_XXXXXX)
trap 'rm -rf "$scratch"' EXIT

fail() { echo "FAIL: $*"; exit 1; }

# everything LAMMPS's CMake reads; not the documentation and examples
mkdir -p "$scratch/lammps"
for part in cmake src lib tools python potentials bench; do
  [[ -e "$lammps/$part" ]] && cp -r "$lammps/$part" "$scratch/lammps/"
done

"$repo/lammps_pkg/install.sh" "$scratch/lammps" >/dev/null
"$repo/lammps_pkg/install.sh" "$scratch/lammps" >/dev/null
cmake_lists="$scratch/lammps/cmake/CMakeLists.txt"
[[ $(grep -c '^  KLAY$' "$cmake_lists") == 1 ]] || fail "KLAY is not listed exactly once in STANDARD_PACKAGES"
[[ $(grep -c 'PKG_WITH_INCL KLAY ' "$cmake_lists") == 1 ]] || fail "KLAY is not registered once as a package with a CMake module"
for f in pair_klay.h pair_klay.cpp lammps_api.cmake; do
  cmp -s "$repo/lammps_pkg/$f" "$scratch/lammps/src/KLAY/$f" || fail "src/KLAY/$f is not a copy of lammps_pkg/$f"
done

build="$scratch/build"
cmake -S "$scratch/lammps/cmake" -B "$build" -DBUILD_MPI=on -DBUILD_SHARED_LIBS=on -DPKG_KLAY=on \
  -DKLAY_DIR="$klay_build" -DKLAY_INCLUDE_DIR="$repo/src/include" >"$scratch/configure.log" 2>&1 ||
  { cat "$scratch/configure.log"; fail "LAMMPS configure with -DPKG_KLAY=on"; }
grep -q 'Enabled packages: KLAY' "$scratch/configure.log" || { cat "$scratch/configure.log"; fail "KLAY is not enabled"; }
grep -q 'PairStyle(klay,PairKLay)' "$build/styles/style_pair.h" 2>/dev/null ||
  grep -rq 'pair_klay.h' "$build/styles/" || fail "pair style klay is not in LAMMPS's generated style table"

object=$(cd "$build" && make help | grep -o '[^ ]*KLAY/pair_klay\.o' | head -n1)
[[ -n "$object" ]] || fail "the LAMMPS build has no target for KLAY/pair_klay.cpp"
(cd "$build" && nice make "$object" >"$scratch/compile.log" 2>&1) ||
  { cat "$scratch/compile.log"; fail "pair_klay.cpp does not compile inside the LAMMPS build"; }
echo "install.sh: KLAY registered once, configured (-DPKG_KLAY=on), pair_klay.cpp compiled in the LAMMPS build"
