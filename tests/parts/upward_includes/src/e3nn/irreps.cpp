// Fixture: the math includes the MD part above it.
#include "base/error.hpp"
#include "e3nn/irreps.hpp"
#include <vector>

#include "md/xyz.hpp"
