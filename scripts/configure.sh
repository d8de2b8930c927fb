# Sourced by the README's commands: the CMake arguments every build of this project uses.
# LAMMPS is built once into a cache outside the work tree by scripts/get_lammps.sh, whose last
# two lines are LAMMPS_SOURCE_DIR=... and LAMMPS_BUILD_DIR=...
lammps_paths=$("$root/scripts/get_lammps.sh" | tail -n 2)
eval "$lammps_paths"
KLAY_CMAKE_ARGS=(-DKLAY_WITH_LAMMPS=ON "-DLAMMPS_SOURCE_DIR=$LAMMPS_SOURCE_DIR" "-DLAMMPS_BUILD_DIR=$LAMMPS_BUILD_DIR")
