// The edge vectors kernel (see the header for what it computes).
#include "kernels/edge_vectors.hpp"

#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <atomic>
#include <string>

#include "base/error.hpp"

namespace klay::kernels {
namespace {

KernelCallCounts g_calls;

// Edges handed to a thread at a time: a few ns each, so a task outweighs waking a thread.
constexpr int64_t kEdgesPerTask = 8192;

at::Tensor composite_edge_vectors(const at::Tensor& pos, const at::Tensor& edge_index, const at::Tensor& shift) {
  return pos.index_select(0, edge_index[1]) - pos.index_select(0, edge_index[0]) + shift;
}

// out[e] = pos[receiver[e]] − pos[sender[e]] + shift[e · shift_stride]; false when a node is
// outside 0..nodes−1.
template <typename T>
bool forward_kernel(int64_t edges, int64_t nodes, const int64_t* sender, const int64_t* receiver, const T* pos,
                    const T* shift, int64_t shift_stride, T* out) {
  std::atomic<bool> inside{true};
  at::parallel_for(0, edges, kEdgesPerTask, [&](int64_t first, int64_t last) {
    for (int64_t e = first; e < last; ++e) {
      const int64_t i = sender[e], j = receiver[e];
      if (i < 0 || i >= nodes || j < 0 || j >= nodes) {
        inside = false;
        return;
      }
      for (int k = 0; k < 3; ++k) out[3 * e + k] = pos[3 * j + k] - pos[3 * i + k] + shift[e * shift_stride + k];
    }
  });
  return inside;
}

// grad_pos[receiver] += g, grad_pos[sender] −= g. One thread: edges of one node are anywhere, and
// this pass is a few additions per edge.
template <typename T>
void scatter_kernel(int64_t edges, const int64_t* sender, const int64_t* receiver, const T* g, T* grad_pos) {
  for (int64_t e = 0; e < edges; ++e)
    for (int k = 0; k < 3; ++k) {
      grad_pos[3 * receiver[e] + k] += g[3 * e + k];
      grad_pos[3 * sender[e] + k] -= g[3 * e + k];
    }
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class FusedEdgeVectors : public torch::autograd::Function<FusedEdgeVectors> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& pos, const at::Tensor& shift,
                            const at::Tensor& edge_index) {
    ++g_calls.forward;
    const at::Tensor p = pos.contiguous(), s = shift.contiguous(), index = edge_index.contiguous();
    const int64_t edges = index.size(1), nodes = p.size(0);
    const int64_t shift_stride = s.dim() == 2 && s.size(0) == edges ? 3 : 0;  // else one row for all
    at::Tensor out = at::empty({edges, 3}, p.options());
    bool inside = true;
    AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "edge_vectors_forward", [&] {
      inside = forward_kernel<scalar_t>(edges, nodes, index.data_ptr<int64_t>(), index.data_ptr<int64_t>() + edges,
                                        p.data_ptr<scalar_t>(), s.data_ptr<scalar_t>(), shift_stride,
                                        out.data_ptr<scalar_t>());
    });
    if (!inside) throw Error("edge vectors: edge_index refers to a node outside 0.." + std::to_string(nodes - 1));
    ctx->save_for_backward({pos, shift});
    ctx->saved_data["edge_index"] = index;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &pos = saved[0], &shift = saved[1];
    const at::Tensor index = ctx->saved_data["edge_index"].toTensor();
    const at::Tensor& g = grad_outputs[0];
    variable_list grads(3);
    const bool wants_pos = ctx->needs_input_grad(0), wants_shift = ctx->needs_input_grad(1);
    if (!g.defined() || (!wants_pos && !wants_shift)) return grads;

    if (at::GradMode::is_enabled()) {
      ++g_calls.composite_backward;
      const auto composite = [&](const std::vector<at::Tensor>& v) { return composite_edge_vectors(v[0], index, v[1]); };
      return composite_partials({pos, shift}, {wants_pos, wants_shift}, composite, g, grads.size());
    }

    ++g_calls.backward;
    if (wants_shift) grads[1] = at::sum_to(g, shift.sizes());
    if (wants_pos) {
      const at::Tensor gc = g.contiguous();
      at::Tensor grad_pos = at::zeros({pos.size(0), 3}, pos.options());
      const int64_t edges = index.size(1);
      AT_DISPATCH_FLOATING_TYPES(pos.scalar_type(), "edge_vectors_backward", [&] {
        scatter_kernel<scalar_t>(edges, index.data_ptr<int64_t>(), index.data_ptr<int64_t>() + edges,
                                 gc.data_ptr<scalar_t>(), grad_pos.data_ptr<scalar_t>());
      });
      grads[0] = grad_pos;
    }
    return grads;
  }
};

// A shift the kernel reads: one row per edge, or one row (or a 3-vector) for every edge.
bool shift_fits(const at::Tensor& shift, int64_t edges) {
  if (shift.dim() == 1) return shift.size(0) == 3;
  return shift.dim() == 2 && shift.size(1) == 3 && (shift.size(0) == edges || shift.size(0) == 1);
}

}  // namespace

at::Tensor edge_vectors(const at::Tensor& pos, const at::Tensor& edge_index, const at::Tensor& shift) {
  const bool fusable = kernels_take({pos, shift}) && pos.dim() == 2 && pos.size(1) == 3 &&
                       edge_index.scalar_type() == at::kLong && edge_index.device().is_cpu() &&
                       edge_index.dim() == 2 && edge_index.size(0) == 2 && shift_fits(shift, edge_index.size(1));
  if (!fusable) return composite_edge_vectors(pos, edge_index, shift);
  return FusedEdgeVectors::apply(pos, shift, edge_index);
}

KernelCounters edge_vectors_counters() { return g_calls.snapshot(); }

}  // namespace klay::kernels
