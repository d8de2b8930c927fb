# Runs the part-include check (cmake/KlayParts.cmake) on a fixture tree and passes when the check
# fails naming each expected violation ("file:line: part 'P' includes "H" of part 'Q'").
#   cmake -DKLAY_PARTS_SCRIPT=... -DKLAY_PARTS_TABLE=... -DKLAY_SOURCE_ROOT=<fixture tree>
#         -DEXPECTED=<violation>[|<violation>...] -P expect_violations.cmake
execute_process(
  COMMAND ${CMAKE_COMMAND} -DKLAY_PARTS_TABLE=${KLAY_PARTS_TABLE} -DKLAY_SOURCE_ROOT=${KLAY_SOURCE_ROOT}
          -P ${KLAY_PARTS_SCRIPT}
  RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
message("${output}")
if(result EQUAL 0)
  message(FATAL_ERROR "the check passed a tree with includes against the direction")
endif()
# CMake wraps long messages; compare with the line breaks as spaces.
string(REGEX REPLACE "[ \t\r\n]+" " " output "${output}")
string(REPLACE "|" ";" EXPECTED "${EXPECTED}")
foreach(violation IN LISTS EXPECTED)
  string(FIND "${output}" "${violation}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the check's message does not name: ${violation}")
  endif()
endforeach()
