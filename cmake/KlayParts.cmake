# The parts of the code and the direction of their dependencies (docs/architecture.md).
#
# The root CMakeLists.txt declares every part once with klay_part(): the folders and files it owns
# and the parts it uses (its arrows). The same declaration gives the libraries their
# target_link_libraries (klay_link_part) and checks every `#include "..."` of every part
# (klay_check_part_includes): a part may include only its own headers and those of the parts its
# arrows reach, so a header of a part above it fails the configure and the build.
#
# Script mode runs the check alone (the build runs it this way whenever a source changes):
#   cmake -DKLAY_PARTS_TABLE=<table written by klay_write_parts_table> -DKLAY_SOURCE_ROOT=<tree>
#         [-DKLAY_STAMP=<file touched on success>] -P KlayParts.cmake

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  cmake_minimum_required(VERSION 3.18)
endif()

# Where a quoted #include is looked for, after the including file's own folder.
set(KLAY_INCLUDE_ROOTS src src/include builder/include tests)

# klay_part(<name> PATHS <folder or file relative to the repository root>... [USES <part>...]
#           [IN_LIBKLAY])
# IN_LIBKLAY: the part's code is linked into libklay.so, the one shared library that the LAMMPS
# plugin, the KIM driver and klay_ase load; the part's own library is then an object library.
macro(klay_part name)
  cmake_parse_arguments(_klay_part "IN_LIBKLAY" "" "PATHS;USES" ${ARGN})
  list(APPEND KLAY_PARTS ${name})
  set(KLAY_PART_PATHS_${name} ${_klay_part_PATHS})
  set(KLAY_PART_USES_${name} ${_klay_part_USES})
  set(KLAY_PART_IN_LIBKLAY_${name} ${_klay_part_IN_LIBKLAY})
endmacro()

# The table for script mode.
function(klay_write_parts_table file)
  set(text "set(KLAY_PARTS ${KLAY_PARTS})\n")
  foreach(part IN LISTS KLAY_PARTS)
    string(APPEND text "set(KLAY_PART_PATHS_${part} ${KLAY_PART_PATHS_${part}})\n"
                       "set(KLAY_PART_USES_${part} ${KLAY_PART_USES_${part}})\n")
  endforeach()
  file(WRITE ${file} "${text}")
endfunction()

# target_link_libraries(klay_<part> PUBLIC ...) for exactly the part's arrows. A part outside
# libklay.so that uses a part inside it links libklay.so: linking the object library again would
# give it a second copy of that code (and of the layers' registrars).
function(klay_link_part part)
  set(libraries)
  foreach(used IN LISTS KLAY_PART_USES_${part})
    if(KLAY_PART_IN_LIBKLAY_${used} AND NOT KLAY_PART_IN_LIBKLAY_${part})
      list(APPEND libraries klay)
    else()
      list(APPEND libraries klay_${used})
    endif()
  endforeach()
  list(REMOVE_DUPLICATES libraries)
  get_target_property(type klay_${part} TYPE)
  if(type STREQUAL "INTERFACE_LIBRARY")
    target_link_libraries(klay_${part} INTERFACE ${libraries})
  else()
    target_link_libraries(klay_${part} PUBLIC ${libraries})
  endif()
endfunction()

# The parts a part may use: its arrows, followed transitively.
function(_klay_reachable part out)
  set(reached)
  set(pending ${KLAY_PART_USES_${part}})
  while(pending)
    list(POP_FRONT pending next)
    if(NOT next IN_LIST reached)
      list(APPEND reached ${next})
      list(APPEND pending ${KLAY_PART_USES_${next}})
    endif()
  endwhile()
  set(${out} ${reached} PARENT_SCOPE)
endfunction()

# The part that owns `path` (relative to the root): the one with the longest path above it (a part
# may sit inside another's folder), or "" when none does.
function(_klay_owner path out)
  set(owner "")
  set(longest 0)
  foreach(part IN LISTS KLAY_PARTS)
    foreach(owned IN LISTS KLAY_PART_PATHS_${part})
      string(FIND "${path}/" "${owned}/" at)
      string(LENGTH "${owned}" length)
      if(at EQUAL 0 AND length GREATER longest)
        set(owner ${part})
        set(longest ${length})
      endif()
    endforeach()
  endforeach()
  set(${out} "${owner}" PARENT_SCOPE)
endfunction()

# The sources and headers a part owns, relative to `root` (without those of a part inside it).
function(klay_part_files root part out)
  set(files)
  foreach(owned IN LISTS KLAY_PART_PATHS_${part})
    if(IS_DIRECTORY ${root}/${owned})
      # In a project, a file added to a part re-runs the configure and so the check.
      set(configure_depends)
      if(NOT CMAKE_SCRIPT_MODE_FILE)
        set(configure_depends CONFIGURE_DEPENDS)
      endif()
      file(GLOB_RECURSE found ${configure_depends} RELATIVE ${root}
           ${root}/${owned}/*.c ${root}/${owned}/*.h ${root}/${owned}/*.cpp ${root}/${owned}/*.hpp)
      list(APPEND files ${found})
    elseif(EXISTS ${root}/${owned})
      list(APPEND files ${owned})
    endif()
  endforeach()
  set(owned_files)
  foreach(file IN LISTS files)
    _klay_owner(${file} owner)
    if(owner STREQUAL part)
      list(APPEND owned_files ${file})
    endif()
  endforeach()
  set(${out} ${owned_files} PARENT_SCOPE)
endfunction()

# 1-based line of the first `text` in `file`.
function(_klay_line_of file text out)
  file(READ ${file} content)
  string(FIND "${content}" "${text}" at)
  string(SUBSTRING "${content}" 0 ${at} before)
  string(REGEX MATCHALL "\n" newlines "${before}")
  list(LENGTH newlines line)
  math(EXPR line "${line} + 1")
  set(${out} ${line} PARENT_SCOPE)
endfunction()

# Fails (FATAL_ERROR) with one line per include of a part that the including part does not use.
function(klay_check_part_includes root)
  foreach(part IN LISTS KLAY_PARTS)
    foreach(used IN LISTS KLAY_PART_USES_${part})
      if(NOT used IN_LIST KLAY_PARTS)
        message(FATAL_ERROR "klay_part(${part}): uses '${used}', which is not a part")
      endif()
    endforeach()
  endforeach()
  set(violations)
  foreach(part IN LISTS KLAY_PARTS)
    _klay_reachable(${part} uses)
    set(allowed ${uses} ${part})
    string(REPLACE ";" ", " may_use "${uses}")
    if(may_use STREQUAL "")
      set(may_use "no other part")
    endif()
    klay_part_files(${root} ${part} files)
    foreach(file IN LISTS files)
      get_filename_component(folder ${file} DIRECTORY)
      file(STRINGS ${root}/${file} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
      foreach(line IN LISTS lines)
        if(NOT line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\"")
          continue()
        endif()
        set(header ${CMAKE_MATCH_1})
        set(owner "")
        foreach(base IN ITEMS ${folder} ${KLAY_INCLUDE_ROOTS})
          if(EXISTS ${root}/${base}/${header} AND NOT IS_DIRECTORY ${root}/${base}/${header})
            file(RELATIVE_PATH resolved ${root} ${root}/${base}/${header})
            _klay_owner(${resolved} owner)
            break()
          endif()
        endforeach()
        if(owner STREQUAL "" OR owner IN_LIST allowed)
          continue()
        endif()
        _klay_line_of(${root}/${file} "\"${header}\"" number)
        string(CONCAT violation "${file}:${number}: part '${part}' includes \"${header}\" of part "
               "'${owner}', which it does not use (${part} may use: ${may_use})")
        list(APPEND violations "${violation}")
      endforeach()
    endforeach()
  endforeach()
  if(violations)
    string(REPLACE ";" "\n" violations "${violations}")
    message(FATAL_ERROR "A part includes a header of a part it does not depend on (the parts and "
      "their arrows: the klay_part() table in CMakeLists.txt, docs/architecture.md#direction):\n"
      "${violations}")
  endif()
endfunction()

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  include(${KLAY_PARTS_TABLE})
  klay_check_part_includes(${KLAY_SOURCE_ROOT})
  if(KLAY_STAMP)
    file(TOUCH ${KLAY_STAMP})
  endif()
endif()
