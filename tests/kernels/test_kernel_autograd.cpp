// What every kernel shares (src/kernels/kernel_autograd.hpp).
#include "kernels/kernel_autograd.hpp"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

namespace klay::kernels {
namespace {

// at::parallel_for runs its body serially in code compiled without OpenMP, which once left every
// kernel on one thread whatever `threads` asked.
TEST(KernelThreads, KernelLoopsRunOnEveryThreadAsked) {
  const int before = at::get_num_threads();
  for (int threads : {1, 2, 3}) {
    at::set_num_threads(threads);
    EXPECT_EQ(kernel_loop_threads(), threads) << threads << " threads asked";
  }
  at::set_num_threads(before);
}

}  // namespace
}  // namespace klay::kernels
