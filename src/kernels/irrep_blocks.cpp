// The layout copies' entry points (see the header).
#include "kernels/irrep_blocks.hpp"

namespace klay::kernels {
namespace {

template <typename T>
void to_component_major_baseline(const EntryLayout& e, int64_t rows, const T* features, T* matrix) {
  copy_to_component_major(e, rows, features, matrix);
}
template <typename T, bool Add>
void to_multiplicity_major_baseline(const EntryLayout& e, int64_t rows, const T* matrix, T* features) {
  copy_to_multiplicity_major<T, Add>(e, rows, matrix, features);
}
#ifdef KLAY_HAVE_AVX2_ENTRY
template <typename T>
KLAY_AVX2_ENTRY void to_component_major_avx2(const EntryLayout& e, int64_t rows, const T* features, T* matrix) {
  copy_to_component_major(e, rows, features, matrix);
}
template <typename T, bool Add>
KLAY_AVX2_ENTRY void to_multiplicity_major_avx2(const EntryLayout& e, int64_t rows, const T* matrix, T* features) {
  copy_to_multiplicity_major<T, Add>(e, rows, matrix, features);
}
template <typename T>
KLAY_AVX512_ENTRY void to_component_major_avx512(const EntryLayout& e, int64_t rows, const T* features, T* matrix) {
  copy_to_component_major(e, rows, features, matrix);
}
template <typename T, bool Add>
KLAY_AVX512_ENTRY void to_multiplicity_major_avx512(const EntryLayout& e, int64_t rows, const T* matrix,
                                                    T* features) {
  copy_to_multiplicity_major<T, Add>(e, rows, matrix, features);
}
#endif

}  // namespace

template <typename T>
void to_component_major(const EntryLayout& e, int64_t rows, const T* features, T* matrix) {
  KLAY_WIDEST_ENTRY(to_component_major, T)(e, rows, features, matrix);
}

template <typename T>
void to_multiplicity_major(const EntryLayout& e, int64_t rows, const T* matrix, T* features, bool add) {
  if (add) KLAY_WIDEST_ENTRY(to_multiplicity_major, T, true)(e, rows, matrix, features);
  else KLAY_WIDEST_ENTRY(to_multiplicity_major, T, false)(e, rows, matrix, features);
}

template void to_component_major<float>(const EntryLayout&, int64_t, const float*, float*);
template void to_component_major<double>(const EntryLayout&, int64_t, const double*, double*);
template void to_multiplicity_major<float>(const EntryLayout&, int64_t, const float*, float*, bool);
template void to_multiplicity_major<double>(const EntryLayout&, int64_t, const double*, double*, bool);

}  // namespace klay::kernels
