#include "kernels/kernel_autograd.hpp"

#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <mutex>
#include <set>

#include "base/environment.hpp"

namespace klay::kernels {
namespace {

std::atomic<bool> g_enabled{switched_on_by_environment("KLAY_FUSED_KERNELS")};

}  // namespace

void set_fused_kernels_enabled(bool enabled) { g_enabled = enabled; }
bool fused_kernels_enabled() { return g_enabled; }

bool kernels_take(std::initializer_list<at::Tensor> tensors) {
  if (!fused_kernels_enabled() || tensors.size() == 0) return false;
  const at::ScalarType dtype = tensors.begin()->scalar_type();
  if (dtype != at::kDouble && dtype != at::kFloat) return false;
  for (const at::Tensor& t : tensors)
    if (t.defined() && (!t.device().is_cpu() || t.scalar_type() != dtype)) return false;
  return true;
}

int kernel_loop_threads() {
  const int64_t tasks = at::get_num_threads();
  std::mutex mutex;
  std::set<int> threads;
  at::parallel_for(0, tasks, 1, [&](int64_t, int64_t) {
    const std::lock_guard<std::mutex> lock(mutex);
    threads.insert(at::get_thread_num());
  });
  return static_cast<int>(threads.size());
}

std::vector<at::Tensor> composite_partials(const std::vector<at::Tensor>& inputs, const std::vector<bool>& wanted,
                                           const std::function<at::Tensor(const std::vector<at::Tensor>&)>& composite,
                                           const at::Tensor& grad_output, size_t num_grads) {
  std::vector<at::Tensor> views, wrt;
  for (size_t k = 0; k < inputs.size(); ++k) {
    views.push_back(inputs[k].defined() ? inputs[k].view_as(inputs[k]) : inputs[k]);
    if (wanted[k]) wrt.push_back(views.back());
  }
  const at::Tensor y = composite(views);
  const std::vector<at::Tensor> d = torch::autograd::grad({y}, wrt, {grad_output}, /*retain_graph=*/true,
                                                          /*create_graph=*/true, /*allow_unused=*/true);
  std::vector<at::Tensor> grads(num_grads);
  for (size_t k = 0, next = 0; k < inputs.size(); ++k)
    if (wanted[k]) grads[k] = d[next++];
  return grads;
}

}  // namespace klay::kernels
