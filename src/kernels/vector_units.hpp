// How the kernels use the vector units: each loop body is inlined (KLAY_KERNEL_BODY) into a
// baseline x86-64 entry point, an AVX2+FMA one (GCC target attribute, KLAY_AVX2_ENTRY) and, for
// most kernels, an AVX-512 one (KLAY_AVX512_ENTRY), chosen at run time by the CPU, so the library
// runs on any x86-64 and uses the wide units where they exist.
#pragma once

#define KLAY_KERNEL_BODY inline __attribute__((always_inline))
#if defined(__x86_64__) && defined(__GNUC__)
#define KLAY_HAVE_AVX2_ENTRY 1
#define KLAY_AVX2_ENTRY __attribute__((target("avx2,fma")))
// AVX-512 (x86-64-v4) where the CPU has it: registers twice as wide and twice as many. On CPUs
// with full-width 512-bit units (AMD Zen 5, this project's machine: 130-134 against 63-67 GFLOP/s
// of float64 multiply-adds per core, the benchmarks' `peak:` line) that doubles the arithmetic
// rate; elsewhere (Zen 4 splits each 512-bit operation in two) it still halves the instructions
// per element.
#define KLAY_AVX512_ENTRY __attribute__((target("arch=x86-64-v4")))
#endif

// The entry point of a kernel named `name`, for the widest vector units this CPU has (and the tests
// have not switched off): name_avx512, name_avx2 or name_baseline, each with the template arguments
// that follow the name.
#ifdef KLAY_HAVE_AVX2_ENTRY
#define KLAY_WIDEST_ENTRY(name, ...)                                   \
  (::klay::kernels::avx512_vector_units() ? name##_avx512<__VA_ARGS__> \
   : ::klay::kernels::wide_vector_units() ? name##_avx2<__VA_ARGS__>   \
                                          : name##_baseline<__VA_ARGS__>)
#else
#define KLAY_WIDEST_ENTRY(name, ...) name##_baseline<__VA_ARGS__>
#endif

// A plain loop the compiler vectorizes (sin_cos): one copy per vector width (AVX-512,
// AVX2 with FMA, the x86-64 baseline), the dynamic loader picking the one the CPU runs.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KLAY_VECTOR_WIDTH_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KLAY_VECTOR_WIDTH_CLONES
#endif

namespace klay::kernels {

// True when the AVX2+FMA entry points may run: the CPU has both, and they are not switched off.
bool wide_vector_units();
// True when the AVX-512 entry points may run: the CPU has x86-64-v4, and wide units are not switched off.
bool avx512_vector_units();

// The kernels use AVX2+FMA (or AVX-512) where the CPU has them; tests switch that off to check the baseline
// x86-64 code on the same machine.
void set_wide_vector_units_enabled(bool enabled);

}  // namespace klay::kernels
