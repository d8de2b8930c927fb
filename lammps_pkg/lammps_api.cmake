# Which LAMMPS API the KLAY package compiles against. Calls the package makes changed after
# LAMMPS stable 29 Sep 2021 (the oldest release it supports), and development releases changed
# them at different times, so the package asks the headers of the LAMMPS it is built with rather
# than a version number. Used by the plugin build (lammps_pkg/CMakeLists.txt) and, inside a LAMMPS
# source tree, by the package build (KLAY.cmake).
#
#   klay_lammps_api_definitions(<LAMMPS src/ directory> <output variable>)
# sets the output variable to the KLAY_LAMMPS_HAS_* compile definitions pair_klay.cpp reads.
function(klay_lammps_api_definitions header_dir out)
  set(definitions)
  file(READ "${header_dir}/neighbor.h" neighbor_header)
  # Neighbor::add_request(Pair *, NeighConst flags); before it, request() and flags set on the
  # returned NeighRequest
  if(neighbor_header MATCHES "add_request\\(class Pair")
    list(APPEND definitions KLAY_LAMMPS_HAS_ADD_REQUEST)
  endif()
  file(READ "${header_dir}/comm.h" comm_header)
  # Comm::reverse_comm(Pair *) overloaded per style; before it, reverse_comm_pair(Pair *)
  if(comm_header MATCHES "reverse_comm\\(class Pair")
    list(APPEND definitions KLAY_LAMMPS_HAS_OVERLOADED_REVERSE_COMM)
  endif()
  file(READ "${header_dir}/pair.h" pair_header)
  # Pair::finish(), called at the end of a run (the pair style's timing breakdown); before it,
  # a pair style had no end-of-run hook
  if(pair_header MATCHES "virtual void finish\\(\\)")
    list(APPEND definitions KLAY_LAMMPS_HAS_PAIR_FINISH)
  endif()
  set(${out} ${definitions} PARENT_SCOPE)
endfunction()
