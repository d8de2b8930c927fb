# Sourced by the README's commands: the CMake arguments every build of this project uses.
# LAMMPS is built once into a cache outside the work tree by scripts/get_lammps.sh, whose last
# two lines are LAMMPS_SOURCE_DIR=... and LAMMPS_BUILD_DIR=...: the current LAMMPS the project
# develops against, and LAMMPS stable 29 Sep 2021, the oldest release the plugin is tested with.
lammps_paths=$("$root/scripts/get_lammps.sh" | tail -n 2)
eval "$lammps_paths"
lammps2021_paths=$("$root/scripts/get_lammps.sh" 29Sep2021 | tail -n 2 | sed 's/^LAMMPS_/LAMMPS2021_/')
eval "$lammps2021_paths"
KLAY_CMAKE_ARGS=(-DKLAY_WITH_LAMMPS=ON "-DLAMMPS_SOURCE_DIR=$LAMMPS_SOURCE_DIR" "-DLAMMPS_BUILD_DIR=$LAMMPS_BUILD_DIR"
                 "-DLAMMPS2021_SOURCE_DIR=$LAMMPS2021_SOURCE_DIR" "-DLAMMPS2021_BUILD_DIR=$LAMMPS2021_BUILD_DIR")
