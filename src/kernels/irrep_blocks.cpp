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

template <typename T, bool Add>
void to_multiplicity_major_in_widest(const EntryLayout& e, int64_t rows, const T* matrix, T* features) {
#ifdef KLAY_HAVE_AVX2_ENTRY
  if (avx512_vector_units()) return to_multiplicity_major_avx512<T, Add>(e, rows, matrix, features);
  if (wide_vector_units()) return to_multiplicity_major_avx2<T, Add>(e, rows, matrix, features);
#endif
  to_multiplicity_major_baseline<T, Add>(e, rows, matrix, features);
}

}  // namespace

template <typename T>
void to_component_major(const EntryLayout& e, int64_t rows, const T* features, T* matrix) {
#ifdef KLAY_HAVE_AVX2_ENTRY
  if (avx512_vector_units()) return to_component_major_avx512(e, rows, features, matrix);
  if (wide_vector_units()) return to_component_major_avx2(e, rows, features, matrix);
#endif
  to_component_major_baseline(e, rows, features, matrix);
}

template <typename T>
void to_multiplicity_major(const EntryLayout& e, int64_t rows, const T* matrix, T* features, bool add) {
  if (add) to_multiplicity_major_in_widest<T, true>(e, rows, matrix, features);
  else to_multiplicity_major_in_widest<T, false>(e, rows, matrix, features);
}

template void to_component_major<float>(const EntryLayout&, int64_t, const float*, float*);
template void to_component_major<double>(const EntryLayout&, int64_t, const double*, double*);
template void to_multiplicity_major<float>(const EntryLayout&, int64_t, const float*, float*, bool);
template void to_multiplicity_major<double>(const EntryLayout&, int64_t, const double*, double*, bool);

}  // namespace klay::kernels
