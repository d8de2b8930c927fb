// The periodic cell of a conformance reference structure, for the MD glue tests.
#pragma once
#include "md/neighbors.hpp"
#include "reference.hpp"

namespace klay_test {

// structure["cell"] (rows a, b, c) as an md::Cell, periodic along all three directions or none.
inline klay::md::Cell reference_cell(const Value& structure, bool periodic) {
  klay::md::Cell cell;
  const auto c = numbers(member(structure, "cell"));
  for (int a = 0; a < 3; ++a)
    for (int k = 0; k < 3; ++k) cell.vectors[a][k] = c[3 * a + k];
  cell.periodic = {periodic, periodic, periodic};
  return cell;
}

}  // namespace klay_test
