// The sparse contraction step (see the header for what it computes).
#include "kernels/symmetric_contraction.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <string>
#include <vector>

#include "e3nn/symmetric_contraction.hpp"
#include "kernels/entry_values.hpp"
#include "kernels/kernel_autograd.hpp"
#include "kernels/uvu_convolution.hpp"
#include "base/error.hpp"

namespace klay::kernels {
namespace {

KernelCallCounts g_calls;

// Rows handed to a thread at a time.
constexpr int64_t kRowsPerTask = 64;

// The non-zero entries of U read as [A, L, P], grouped by a (the output column).
struct SparseU : torch::CustomClassHolder {
  struct Entry {
    int32_t i, p;  // feature component, element-weight column
    double value;
  };
  int64_t outputs = 0, coupling = 0, params = 0;
  std::vector<int64_t> begin;  // entries of output a: [begin[a], begin[a + 1])
  std::vector<Entry> entries;

  template <typename T>
  std::vector<T> values() const {
    return entry_values<T>(entries);
  }
};

c10::intrusive_ptr<SparseU> sparse_u(const at::Tensor& u, int64_t coupling, int64_t params) {
  auto plan = c10::make_intrusive<SparseU>();
  plan->coupling = coupling;
  plan->params = params;
  plan->outputs = u.numel() / (coupling * params);
  const at::Tensor dense = u.to(at::kDouble).contiguous();
  const double* v = dense.data_ptr<double>();
  plan->begin.reserve(plan->outputs + 1);
  for (int64_t a = 0; a < plan->outputs; ++a) {
    plan->begin.push_back(static_cast<int64_t>(plan->entries.size()));
    for (int64_t i = 0; i < coupling; ++i)
      for (int64_t p = 0; p < params; ++p) {
        const double value = v[(a * coupling + i) * params + p];
        if (value != 0.0) plan->entries.push_back({static_cast<int32_t>(i), static_cast<int32_t>(p), value});
      }
  }
  plan->begin.push_back(static_cast<int64_t>(plan->entries.size()));
  return plan;
}

// next[r, a] = Σ_entries(a) v·x[r, i]·θ[r, p] + Σ_i b[r, a·L + i]·x[r, i]
template <typename T>
void forward_kernel(const SparseU& u, int64_t rows, const T* x, const T* theta, const T* b, T* next) {
  const std::vector<T> value = u.values<T>();
  const int64_t L = u.coupling, P = u.params, A = u.outputs;
  at::parallel_for(0, rows, kRowsPerTask, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      const T* xr = x + r * L;
      const T* tr = theta + r * P;
      const T* br = b ? b + r * A * L : nullptr;
      T* out = next + r * A;
      for (int64_t a = 0; a < A; ++a) {
        T s = 0;
        for (int64_t e = u.begin[a]; e < u.begin[a + 1]; ++e) {
          const SparseU::Entry& entry = u.entries[e];
          s += value[e] * xr[entry.i] * tr[entry.p];
        }
        if (br)
          for (int64_t i = 0; i < L; ++i) s += br[a * L + i] * xr[i];
        out[a] = s;
      }
    }
  });
}

// The gradients of Σ g·next; each output pointer may be null (not wanted). Rows are independent,
// so every thread writes rows of its own.
template <typename T>
void backward_kernel(const SparseU& u, int64_t rows, const T* x, const T* theta, const T* b, const T* g, T* grad_x,
                     T* grad_theta, T* grad_b) {
  const std::vector<T> value = u.values<T>();
  const int64_t L = u.coupling, P = u.params, A = u.outputs;
  at::parallel_for(0, rows, kRowsPerTask, [&](int64_t first, int64_t last) {
    std::vector<T> gx(L), gt(P);
    for (int64_t r = first; r < last; ++r) {
      const T* xr = x + r * L;
      const T* tr = theta + r * P;
      const T* br = b ? b + r * A * L : nullptr;
      const T* gr = g + r * A;
      std::fill(gx.begin(), gx.end(), T(0));
      std::fill(gt.begin(), gt.end(), T(0));
      for (int64_t a = 0; a < A; ++a) {
        const T ga = gr[a];
        for (int64_t e = u.begin[a]; e < u.begin[a + 1]; ++e) {
          const SparseU::Entry& entry = u.entries[e];
          const T vg = value[e] * ga;
          gx[entry.i] += vg * tr[entry.p];
          gt[entry.p] += vg * xr[entry.i];
        }
        if (br)
          for (int64_t i = 0; i < L; ++i) gx[i] += ga * br[a * L + i];
        if (grad_b)
          for (int64_t i = 0; i < L; ++i) grad_b[(r * A + a) * L + i] = ga * xr[i];
      }
      if (grad_x) std::copy(gx.begin(), gx.end(), grad_x + r * L);
      if (grad_theta) std::copy(gt.begin(), gt.end(), grad_theta + r * P);
    }
  });
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class SparseContractionStep : public torch::autograd::Function<SparseContractionStep> {
 public:
  // The first step has no previous one: autograd's apply does not take an undefined tensor, so
  // `b` is then an empty placeholder and has_b false.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& theta, const at::Tensor& b,
                            bool has_b, const at::Tensor& u, const c10::intrusive_ptr<SparseU>& plan) {
    ++g_calls.forward;
    const at::Tensor xc = x.contiguous(), tc = theta.contiguous(), bc = has_b ? b.contiguous() : at::Tensor();
    const int64_t rows = xc.size(0);
    at::Tensor next = at::empty({rows, plan->outputs}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sparse_contraction_forward", [&] {
      forward_kernel<scalar_t>(*plan, rows, xc.data_ptr<scalar_t>(), tc.data_ptr<scalar_t>(),
                               bc.defined() ? bc.data_ptr<scalar_t>() : nullptr, next.data_ptr<scalar_t>());
    });
    ctx->save_for_backward({xc, tc, bc, u});
    ctx->saved_data["plan"] = c10::IValue::make_capsule(plan);
    return next;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    // b is undefined for a first step.
    const at::Tensor &x = saved[0], &theta = saved[1], &b = saved[2], &u = saved[3];
    const at::Tensor& g = grad_outputs[0];
    variable_list grads(6);
    const bool want[3] = {ctx->needs_input_grad(0), ctx->needs_input_grad(1), b.defined() && ctx->needs_input_grad(2)};
    if (!g.defined() || !(want[0] || want[1] || want[2])) return grads;

    if (at::GradMode::is_enabled()) {
      ++g_calls.composite_backward;
      const auto composite = [&](const std::vector<at::Tensor>& v) {
        return e3nn::composite_contraction_step(v[0], v[1], v[2], u);
      };
      return composite_partials({x, theta, b}, {want[0], want[1], want[2]}, composite, g, grads.size());
    }

    ++g_calls.backward;
    const auto plan = c10::static_intrusive_pointer_cast<SparseU>(ctx->saved_data["plan"].toCapsule());
    const at::Tensor gc = g.contiguous();
    at::Tensor grad_x = want[0] ? at::empty_like(x) : at::Tensor();
    at::Tensor grad_theta = want[1] ? at::empty_like(theta) : at::Tensor();
    at::Tensor grad_b = want[2] ? at::empty_like(b) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sparse_contraction_backward", [&] {
      auto ptr = [](const at::Tensor& t) { return t.defined() ? t.data_ptr<scalar_t>() : nullptr; };
      backward_kernel<scalar_t>(*plan, x.size(0), x.data_ptr<scalar_t>(), theta.data_ptr<scalar_t>(), ptr(b),
                                gc.data_ptr<scalar_t>(), ptr(grad_x), ptr(grad_theta), ptr(grad_b));
    });
    grads[0] = grad_x;
    grads[1] = grad_theta;
    grads[2] = grad_b;
    return grads;
  }
};

}  // namespace

KernelCounters contraction_counters() {
  return g_calls.snapshot();
}

at::Tensor sparse_contraction_step(const at::Tensor& x, const at::Tensor& theta, const at::Tensor& b,
                                   const at::Tensor& u) {
  if (x.dim() != 2 || theta.dim() != 2 || theta.size(0) != x.size(0) || x.size(1) == 0 || theta.size(1) == 0 ||
      u.numel() % (x.size(1) * theta.size(1)) != 0)
    throw Error("symmetric contraction step: features " + c10::str(x.sizes()) + ", element weights " +
                c10::str(theta.sizes()) + " and U " + c10::str(u.sizes()) + " do not fit together");
  const int64_t coupling = x.size(1), params = theta.size(1), outputs = u.numel() / (coupling * params);
  if (b.defined() && (b.dim() != 2 || b.size(0) != x.size(0) || b.size(1) != outputs * coupling))
    throw Error("symmetric contraction step: the previous step is " + c10::str(b.sizes()) + ", expected [" +
                std::to_string(x.size(0)) + ", " + std::to_string(outputs * coupling) + "]");
  if (!kernels_take({x, theta, b})) return e3nn::composite_contraction_step(x, theta, b, u);
  return SparseContractionStep::apply(x, theta, b.defined() ? b : at::empty({0}, x.options()), b.defined(), u,
                                     sparse_u(u, coupling, params));
}

}  // namespace klay::kernels
