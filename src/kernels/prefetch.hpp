// Asking the CPU to load data a kernel will read soon. The backwards read tensors their forward
// saved long before (evicted to L3 or memory by then) at columns in a permuted order, which the
// hardware's stream prefetchers do not follow: without this, those loads stall one by one.
#pragma once
#include <cstdint>

namespace klay::kernels {

// Every cache line of `count` values from `data` (a hint: addresses past the data are harmless).
template <typename T>
inline void prefetch(const T* data, int64_t count) {
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
  for (int64_t k = 0; k < count; k += kLine) __builtin_prefetch(data + k);
}

// The same for data about to be written (fetched for ownership, so that the stores do not queue).
template <typename T>
inline void prefetch_for_writing(T* data, int64_t count) {
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
  for (int64_t k = 0; k < count; k += kLine) __builtin_prefetch(data + k, 1);
}

// Rows a loop over feature rows asks for ahead of the one it works on: far enough for a load from
// memory to arrive, near enough not to flood the CPU's queue of outstanding loads.
constexpr int64_t kPrefetchRowsAhead = 4;

}  // namespace klay::kernels
