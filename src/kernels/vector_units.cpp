#include "kernels/vector_units.hpp"

#include <atomic>

namespace klay::kernels {
namespace {

std::atomic<bool> g_wide_vectors{true};

}  // namespace

bool wide_vector_units() {
#ifdef KLAY_HAVE_AVX2_ENTRY
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has && g_wide_vectors;
#else
  return false;
#endif
}

bool avx512_vector_units() {
#ifdef KLAY_HAVE_AVX2_ENTRY
  static const bool has = __builtin_cpu_supports("x86-64-v4");
  return has && g_wide_vectors;
#else
  return false;
#endif
}

void set_wide_vector_units_enabled(bool enabled) { g_wide_vectors = enabled; }

}  // namespace klay::kernels
