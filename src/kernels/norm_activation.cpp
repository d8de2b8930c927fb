// The norm activation kernel (see the header for what it computes).
#include "kernels/norm_activation.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <memory>
#include <optional>
#include <vector>

#include "kernels/scalar_activation.hpp"
#include "kernels/uvu_convolution.hpp"

namespace klay::kernels {
namespace {

KernelCallCounts g_calls;

// Rows handed to a thread at a time.
constexpr int64_t kRowsPerTask = 64;

// c when a [d, d, 1] (l ⊗ l → 0) or [1, d, d] (0 ⊗ l → l) Wigner-3j block is c times the identity
// over its two d-wide axes; else nothing.
std::optional<double> identity_coupling(const at::Tensor& w3j) {
  if (!w3j.device().is_cpu() || w3j.dim() != 3) return std::nullopt;
  const bool norm = w3j.size(2) == 1 && w3j.size(0) == w3j.size(1);
  const bool multiplier = w3j.size(0) == 1 && w3j.size(1) == w3j.size(2);
  if (!norm && !multiplier) return std::nullopt;
  const int64_t d = norm ? w3j.size(0) : w3j.size(1);
  const at::Tensor c = w3j.to(at::kDouble).contiguous();
  const double* v = c.data_ptr<double>();
  for (int64_t i = 0; i < d; ++i)
    for (int64_t k = 0; k < d; ++k)
      if (v[i * d + k] != (i == k ? v[0] : 0.0)) return std::nullopt;
  return v[0];
}

struct Plan : torch::CustomClassHolder {
  struct Copy {  // one irrep copy: its columns [offset, offset + d)
    int64_t offset = -1, d = 0;
    double norm_scale = 0, out_scale = 0;  // Σ x² coefficient; the multiplier's coefficient
  };
  int64_t dim = 0;
  std::vector<Copy> copies;
  ScaledActivation act;
  double floor = 0;  // ε²
  std::shared_ptr<const e3nn::NormActivationImpl> module;  // for the composite (double-backward) path
};

c10::intrusive_ptr<Plan> make_plan(const e3nn::NormActivationImpl& module) {
  const std::optional<ScaledActivation> act = scaled_activation(module.activation());
  if (!act) return {};
  auto plan = c10::make_intrusive<Plan>();
  plan->act = *act;
  plan->floor = module.epsilon() * module.epsilon();
  plan->dim = module.irreps_in().dim();
  // The squared norms: copy t = output column t, path x_u ⊗ x_u → 0e.
  const e3nn::TensorProductImpl& norms = module.squared_norms();
  plan->copies.resize(norms.irreps_out().dim());
  const std::vector<int64_t> in_offsets = norms.irreps_in1().offsets(), norm_offsets = norms.irreps_out().offsets();
  for (const e3nn::TensorProductImpl::Path& p : norms.paths()) {
    const std::optional<double> c = identity_coupling(p.w3j);
    if (p.ins.mode != e3nn::ConnectionMode::uuu || p.ins.i_in1 != p.ins.i_in2 || p.d3 != 1 || !c) return {};
    for (int64_t u = 0; u < p.mul1; ++u)
      plan->copies[norm_offsets[p.ins.i_out] + u] = {in_offsets[p.ins.i_in1] + u * p.d1, p.d1, p.coefficient * *c, 0};
  }
  // The multiplier: scalar t times copy t, written where the copy is read.
  const e3nn::TensorProductImpl& multiplier = module.scalar_multiplier();
  const std::vector<int64_t> scalar_offsets = multiplier.irreps_in1().offsets(),
                             feature_offsets = multiplier.irreps_in2().offsets(),
                             out_offsets = multiplier.irreps_out().offsets();
  for (const e3nn::TensorProductImpl::Path& p : multiplier.paths()) {
    const std::optional<double> c = identity_coupling(p.w3j);
    if (p.ins.mode != e3nn::ConnectionMode::uuu || p.d1 != 1 || p.d2 != p.d3 || !c) return {};
    for (int64_t u = 0; u < p.mul1; ++u) {
      const int64_t t = scalar_offsets[p.ins.i_in1] + u;
      if (t >= static_cast<int64_t>(plan->copies.size())) return {};
      Plan::Copy& copy = plan->copies[t];
      if (copy.offset != feature_offsets[p.ins.i_in2] + u * p.d2 || copy.offset != out_offsets[p.ins.i_out] + u * p.d3)
        return {};
      copy.out_scale = p.coefficient * *c;
    }
  }
  int64_t covered = 0;
  for (const Plan::Copy& copy : plan->copies) {
    if (copy.offset < 0 || copy.out_scale == 0) return {};
    covered += copy.d;
  }
  if (covered != plan->dim) return {};
  plan->module = std::dynamic_pointer_cast<const e3nn::NormActivationImpl>(module.shared_from_this());
  return plan;
}

// out_k = c₂·φ(r)·x_k with φ = f(r)/r, r = √(c₁ Σ x²) unless clipped at ε (then r is constant).
// Per row and copy the backward needs c₂·φ and c₂·(dφ/dr)·c₁/r (0 when clipped): the forward
// keeps them in `factors` when autograd records the call, so the backward evaluates no activation.
template <typename T>
inline void copy_factors(const Plan& plan, const Plan::Copy& copy, T s, T& phi, T* radial) {
  s *= static_cast<T>(copy.norm_scale);
  const bool clipped = s < static_cast<T>(plan.floor);
  const T r = std::sqrt(clipped ? static_cast<T>(plan.floor) : s);
  const T c2 = static_cast<T>(copy.out_scale);
  if (!radial) {
    phi = plan.act.value(r) / r * c2;
    return;
  }
  T f, df;
  plan.act.value_and_derivative(r, f, df);
  phi = f / r * c2;
  // dφ/dr · dr/dx_k / x_k = (f'(r)/r − f(r)/r²) · c₁/r
  *radial = clipped ? T(0) : (df / r - f / (r * r)) * static_cast<T>(copy.norm_scale) / r * c2;
}

// fn(n, t, copy) for every row n and irrep copy t, the rows split among the threads.
template <typename Fn>
void for_each_copy(const Plan& plan, int64_t rows, const Fn& fn) {
  at::parallel_for(0, rows, kRowsPerTask, [&](int64_t first, int64_t last) {
    for (int64_t n = first; n < last; ++n)
      for (size_t t = 0; t < plan.copies.size(); ++t) fn(n, static_cast<int64_t>(t), plan.copies[t]);
  });
}

template <typename T>
void forward_kernel(const Plan& plan, int64_t rows, const T* x, T* out, T* factors) {
  const int64_t copies = static_cast<int64_t>(plan.copies.size());
  for_each_copy(plan, rows, [&](int64_t n, int64_t t, const Plan::Copy& copy) {
    const T* xc = x + n * plan.dim + copy.offset;
    T* oc = out + n * plan.dim + copy.offset;
    T s = 0;
    for (int64_t k = 0; k < copy.d; ++k) s += xc[k] * xc[k];
    T phi;
    T* kept = factors ? factors + 2 * (n * copies + t) : nullptr;
    copy_factors(plan, copy, s, phi, kept ? kept + 1 : nullptr);
    if (kept) kept[0] = phi;
    for (int64_t k = 0; k < copy.d; ++k) oc[k] = xc[k] * phi;
  });
}

// grad_k = c₂·(φ·g_k + (Σ_j g_j x_j)·(dφ/dr)·(c₁/r)·x_k), from the forward's factors.
template <typename T>
void backward_kernel(const Plan& plan, int64_t rows, const T* x, const T* g, const T* factors, T* grad_x) {
  const int64_t copies = static_cast<int64_t>(plan.copies.size());
  for_each_copy(plan, rows, [&](int64_t n, int64_t t, const Plan::Copy& copy) {
    const T* xc = x + n * plan.dim + copy.offset;
    const T* gc = g + n * plan.dim + copy.offset;
    T* grad = grad_x + n * plan.dim + copy.offset;
    T gx = 0;
    for (int64_t k = 0; k < copy.d; ++k) gx += gc[k] * xc[k];
    const T phi = factors[2 * (n * copies + t)], radial = factors[2 * (n * copies + t) + 1];
    for (int64_t k = 0; k < copy.d; ++k) grad[k] = phi * gc[k] + gx * radial * xc[k];
  });
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class FusedNormActivation : public torch::autograd::Function<FusedNormActivation> {
 public:
  // backward_follows: autograd records this call (a Function's forward itself runs without grad
  // mode, so the caller says).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& features, const c10::intrusive_ptr<Plan>& plan,
                            bool backward_follows) {
    ++g_calls.forward;
    const at::Tensor x = features.contiguous();
    at::Tensor out = at::empty_like(x);
    at::Tensor factors = backward_follows
                             ? at::empty({x.size(0), static_cast<int64_t>(plan->copies.size()), 2}, x.options())
                             : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "norm_activation_forward", [&] {
      forward_kernel<scalar_t>(*plan, x.size(0), x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                               backward_follows ? factors.data_ptr<scalar_t>() : nullptr);
    });
    ctx->save_for_backward({x});
    keep_plan(ctx, plan);
    if (backward_follows) ctx->saved_data["factors"] = factors;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const auto plan = kept_plan<Plan>(ctx);
    const at::Tensor& g = grad_outputs[0];
    variable_list grads(3);
    if (!g.defined() || !ctx->needs_input_grad(0)) return grads;

    if (at::GradMode::is_enabled()) {
      ++g_calls.composite_backward;
      const auto composite = [&](const std::vector<at::Tensor>& v) { return plan->module->forward(v[0]); };
      return composite_partials({x}, {true}, composite, g, grads.size());
    }

    ++g_calls.backward;
    const at::Tensor gc = g.contiguous();
    at::Tensor grad_x = at::empty_like(x);
    const at::Tensor factors = ctx->saved_data["factors"].toTensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "norm_activation_backward", [&] {
      backward_kernel<scalar_t>(*plan, x.size(0), x.data_ptr<scalar_t>(), gc.data_ptr<scalar_t>(),
                                factors.data_ptr<scalar_t>(), grad_x.data_ptr<scalar_t>());
    });
    grads[0] = grad_x;
    return grads;
  }
};

}  // namespace

at::Tensor norm_activation(const e3nn::NormActivationImpl& module, const at::Tensor& features) {
  const bool fusable =
      kernels_take({features}) && features.dim() >= 1 && features.size(-1) == module.irreps_in().dim();
  const c10::intrusive_ptr<Plan> plan = fusable ? make_plan(module) : c10::intrusive_ptr<Plan>();
  if (!plan) return module.forward(features);
  const bool backward_follows = at::GradMode::is_enabled() && features.requires_grad();
  return FusedNormActivation::apply(features.reshape({-1, plan->dim}), plan, backward_follows).view(features.sizes());
}

bool norm_activation_kernel_supports(const e3nn::NormActivationImpl& module) {
  return static_cast<bool>(make_plan(module));
}

KernelCounters norm_activation_counters() { return g_calls.snapshot(); }

}  // namespace klay::kernels
