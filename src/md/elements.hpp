// Chemical element symbols <-> atomic numbers (H = 1 … Og = 118). Torch-free.
#pragma once
#include <string>

namespace klay::md {

// 0 if `symbol` is not an element symbol (exact case: "Si", not "SI").
int atomic_number(const std::string& symbol);
// "" if z is outside 1..118.
std::string element_symbol(int z);

}  // namespace klay::md
