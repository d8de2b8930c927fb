// What the kernels' tests compare for a module of one input (the gate, the norm activation): its
// output, d(probe·out)/d(input), and d/d(input) of a probe of that gradient, with the fused
// kernels switched on or off.
#pragma once
#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <functional>

#include "kernels/uvu_convolution.hpp"

namespace klay::kernels {

struct Derivatives {
  at::Tensor out, grad, second;
};

inline Derivatives one_input_derivatives(const std::function<at::Tensor(const at::Tensor&)>& module, bool fused,
                                         const at::Tensor& features, at::ScalarType dtype, bool second_order) {
  set_fused_kernels_enabled(fused);
  const at::Tensor x = features.to(dtype).requires_grad_();
  const at::Tensor out = module(x);
  const at::Tensor probe = at::sin(at::arange(out.numel(), out.options())).view_as(out);
  const at::Tensor grad = torch::autograd::grad({(out * probe).sum()}, {x}, {}, true, second_order)[0];
  Derivatives d{out.detach(), grad.detach(), {}};
  if (second_order) {
    const at::Tensor probe_x = at::cos(at::arange(grad.numel(), grad.options())).view_as(grad);
    d.second = torch::autograd::grad({(grad * probe_x).sum()}, {x})[0].detach();
  }
  set_fused_kernels_enabled(true);
  return d;
}

}  // namespace klay::kernels
