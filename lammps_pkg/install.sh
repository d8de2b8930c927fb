#!/usr/bin/env bash
# Adds the KLAY package (pair_style klay) to a LAMMPS source tree for a built-in build with
# LAMMPS's CMake (the traditional make build is not supported):
#
#   lammps_pkg/install.sh /path/to/lammps
#   cmake -S /path/to/lammps/cmake -B build -DPKG_KLAY=on \
#         -DKLAY_DIR=<klay-lammps build dir> -DKLAY_INCLUDE_DIR=<klay-lammps>/src/include [other options]
#
# It copies the sources (and lammps_api.cmake, which adapts them to this LAMMPS's API) into
# src/KLAY/, installs cmake/Modules/Packages/KLAY.cmake and registers
# KLAY in cmake/CMakeLists.txt (the package list and the packages with a CMake module).
# Running it again refreshes the sources and leaves the registration as it is.
# Without rebuilding LAMMPS, the plugin (libklay_lammps.so from the klay-lammps build) does the same.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lammps=${1:?usage: $0 LAMMPS_SOURCE_DIR}
cmake_lists="$lammps/cmake/CMakeLists.txt"
[[ -f "$lammps/src/pair.h" && -f "$cmake_lists" ]] ||
  { echo "install.sh: $lammps is not a LAMMPS source tree (no src/pair.h or cmake/CMakeLists.txt)" >&2; exit 1; }
grep -q '^set(STANDARD_PACKAGES' "$cmake_lists" && grep -q '^foreach(PKG_WITH_INCL ' "$cmake_lists" ||
  { echo "install.sh: $cmake_lists does not have the package lists this script extends" >&2; exit 1; }

mkdir -p "$lammps/src/KLAY"
cp "$here/pair_klay.h" "$here/pair_klay.cpp" "$here/lammps_api.cmake" "$lammps/src/KLAY/"
cp "$here/KLAY.cmake" "$lammps/cmake/Modules/Packages/KLAY.cmake"

if ! grep -q '^  KLAY$' "$cmake_lists"; then
  sed -i 's/^set(STANDARD_PACKAGES$/&\n  KLAY/' "$cmake_lists"
fi
# the first PKG_WITH_INCL loop includes the package modules that add to the lammps target
if ! grep -q '^foreach(PKG_WITH_INCL KLAY ' "$cmake_lists"; then
  sed -i '0,/^foreach(PKG_WITH_INCL /s//&KLAY /' "$cmake_lists"
fi
[[ $(grep -c '^  KLAY$' "$cmake_lists") == 1 && $(grep -c '^foreach(PKG_WITH_INCL KLAY ' "$cmake_lists") == 1 ]] ||
  { echo "install.sh: could not register KLAY in $cmake_lists" >&2; exit 1; }

echo "KLAY package installed in $lammps/src/KLAY"
echo "configure LAMMPS with: -DPKG_KLAY=on -DKLAY_DIR=<klay-lammps build dir> -DKLAY_INCLUDE_DIR=$(cd "$here/.." && pwd)/src/include"
