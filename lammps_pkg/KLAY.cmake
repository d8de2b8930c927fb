# KLAY package (pair_style klay) built into LAMMPS: links the klay runtime library (libklay.so
# from a klay-lammps build) and includes its C API header klay.h. Installed into
# cmake/Modules/Packages/ by klay-lammps' lammps_pkg/install.sh.
#   cmake ../cmake -DPKG_KLAY=on -DKLAY_DIR=<klay-lammps build dir> -DKLAY_INCLUDE_DIR=<klay-lammps>/src/include
set(KLAY_DIR "" CACHE PATH "klay-lammps build directory (holds src/libklay.so)")
set(KLAY_INCLUDE_DIR "" CACHE PATH "directory holding klay.h (klay-lammps/src/include)")
find_library(KLAY_LIBRARY NAMES klay HINTS ${KLAY_DIR}/src ${KLAY_DIR} NO_DEFAULT_PATH)
find_path(KLAY_HEADER_DIR klay.h HINTS ${KLAY_INCLUDE_DIR} NO_DEFAULT_PATH)
if(NOT KLAY_LIBRARY OR NOT KLAY_HEADER_DIR)
  message(FATAL_ERROR "PKG_KLAY needs -DKLAY_DIR=<klay-lammps build dir with src/libklay.so> and "
    "-DKLAY_INCLUDE_DIR=<klay-lammps>/src/include (found library '${KLAY_LIBRARY}', header dir '${KLAY_HEADER_DIR}')")
endif()
# LAMMPS's CMake calls its src/ directory LAMMPS_SOURCE_DIR.
include(${LAMMPS_SOURCE_DIR}/KLAY/lammps_api.cmake)
klay_lammps_api_definitions(${LAMMPS_SOURCE_DIR} KLAY_LAMMPS_API)
target_compile_definitions(lammps PRIVATE ${KLAY_LAMMPS_API})
target_include_directories(lammps PRIVATE ${KLAY_HEADER_DIR})
target_link_libraries(lammps PRIVATE ${KLAY_LIBRARY})
