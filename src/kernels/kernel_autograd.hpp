// What the kernels share: the process-wide switch and which tensors a kernel takes, call counters
// (tests prove a kernel ran) and the backward with create_graph, which differentiates the kernel's
// composite path instead.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/csrc/autograd/custom_function.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <vector>

namespace klay::kernels {

// Process-wide switch (tests and benchmarks compare both paths); on by default, or off when the
// environment variable KLAY_FUSED_KERNELS is 0.
void set_fused_kernels_enabled(bool enabled);
bool fused_kernels_enabled();

// True when the kernels are switched on and every defined tensor is on the CPU in float64 or
// float32, all of one type: what each kernel needs; anything else runs the composite path.
bool kernels_take(std::initializer_list<at::Tensor> tensors);

// How many threads a kernel's at::parallel_for loop runs on with ATen's current thread count: the
// kernels are compiled with OpenMP so that this is at::get_num_threads(); 1 means that every kernel
// runs serially whatever `threads` asks (benchmarks print it, a test checks it).
int kernel_loop_threads();

// t with `sizes`, or t itself where it has them already: a view of the same shape is still a node
// of the autograd graph, forward and backward (a dozen per MD step of the Si example, all between
// the threads' parallel work).
inline at::Tensor viewed_as(const at::Tensor& t, at::IntArrayRef sizes) {
  return t.sizes() == sizes ? t : t.view(sizes);
}
// t as rows of `width` values (reshape to [-1, width]), or t itself where it is that already.
inline at::Tensor as_rows(const at::Tensor& t, int64_t width) {
  return t.dim() == 2 && t.size(1) == width ? t : t.reshape({-1, width});
}
// t as one dimension (reshape to [-1]), or t itself where it is that already.
inline at::Tensor flattened(const at::Tensor& t) { return t.dim() == 1 ? t : t.reshape({-1}); }

// A kernel's plan, kept on its autograd node by the forward for the backward (as a capsule: an
// object autograd carries along without tensor semantics).
template <typename Plan>
void keep_plan(torch::autograd::AutogradContext* ctx, const c10::intrusive_ptr<Plan>& plan) {
  ctx->saved_data["plan"] = c10::IValue::make_capsule(plan);
}
template <typename Plan>
c10::intrusive_ptr<Plan> kept_plan(torch::autograd::AutogradContext* ctx) {
  return c10::static_intrusive_pointer_cast<Plan>(ctx->saved_data["plan"].toCapsule());
}

// Calls of a kernel's forward and backward since the process started.
struct KernelCounters {
  int64_t forward_calls = 0;
  int64_t backward_calls = 0;
  int64_t composite_backward_calls = 0;  // backwards with create_graph (second derivatives)
};

// One kernel's counters, incremented from any thread.
struct KernelCallCounts {
  std::atomic<int64_t> forward{0}, backward{0}, composite_backward{0};
  KernelCounters snapshot() const { return {forward.load(), backward.load(), composite_backward.load()}; }
};

// A backward with create_graph (training's force loss) must return gradients that are themselves
// differentiable, so it differentiates `composite` (the kernel's composite path, exact to every
// order) at `inputs` against `grad_output`. Each input enters through a view of its own:
// autograd::grad with respect to a saved input itself would also count paths through the other
// inputs (the edge attributes of a second convolution are ancestors of its node features), not
// only the partial derivative. Returns `num_grads` gradients, defined where `wanted` (inputs
// that are undefined are passed on undefined and must not be wanted).
std::vector<at::Tensor> composite_partials(const std::vector<at::Tensor>& inputs, const std::vector<bool>& wanted,
                                           const std::function<at::Tensor(const std::vector<at::Tensor>&)>& composite,
                                           const at::Tensor& grad_output, size_t num_grads);

}  // namespace klay::kernels
