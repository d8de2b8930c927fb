// The gate kernel (see the header for what it computes).
#include "kernels/gate.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include "kernels/irrep_blocks.hpp"
#include "kernels/prefetch.hpp"
#include "kernels/scalar_activation.hpp"
#include "kernels/uvu_convolution.hpp"
#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

KernelCallCounts g_calls;

// Rows handed to a thread at a time.
constexpr int64_t kRowsPerTask = 64;
// Rows whose activations go to ScaledActivation::apply together.
constexpr int64_t kRowsPerBatch = 16;

struct Plan : torch::CustomClassHolder {
  struct Activated {  // an output column, or a gate: the activation of one input column
    int64_t input;
    ScaledActivation act;
  };
  struct Run {  // scalars or gates [first, end), which share one activation (an irrep's)
    int64_t first, end;
    ScaledActivation act;
  };
  // Gated copies u < mul of a d-wide irrep: output column S + out_first + u·d + k is input column
  // in_first + u·d + k times gate gate_first + u times scale (S: the scalars before them).
  struct GatedRun {
    int64_t out_first, in_first, gate_first, mul, d;
    double scale;
  };
  int64_t dim_in = 0, dim_out = 0;
  std::vector<Activated> scalars, gates;
  std::vector<Run> scalar_runs, gate_runs;
  std::vector<GatedRun> gated_runs;
  // Each input column is one scalar, one gate or one gated component (as e3nn's Gate lays them
  // out): the backward then writes every entry of a row of the gradient, with no zeros first.
  bool covers_every_input = false;
  std::shared_ptr<const e3nn::GateImpl> module;  // for the composite (double-backward) path
};

// The activated columns of `columns` (int64), entry by entry of the activation's irreps.
bool add_activated(const e3nn::Activation& activation, const at::Tensor& columns, std::vector<Plan::Activated>& out,
                   std::vector<Plan::Run>& runs) {
  const at::Tensor c = columns.to(at::kLong).contiguous();
  const int64_t* column = c.data_ptr<int64_t>();
  int64_t j = 0;
  for (size_t e = 0; e < activation.irreps_in().size(); ++e) {
    const std::optional<ScaledActivation> act = scaled_activation(activation.activations()[e]);
    if (!act) return false;
    const int64_t first = j;
    for (int64_t i = 0; i < activation.irreps_in()[e].dim(); ++i, ++j) {
      if (j >= c.numel()) return false;
      out.push_back({column[j], *act});
    }
    if (j > first) runs.push_back({first, j, *act});
  }
  return j == c.numel();
}

c10::intrusive_ptr<Plan> make_plan(const e3nn::GateImpl& gate) {
  auto plan = c10::make_intrusive<Plan>();
  plan->dim_in = gate.irreps_in().dim();
  plan->dim_out = gate.irreps_out().dim();
  if (!add_activated(gate.scalars_activation(), gate.scalars_columns(), plan->scalars, plan->scalar_runs) ||
      !add_activated(gate.gates_activation(), gate.gates_columns(), plan->gates, plan->gate_runs))
    return {};
  // The elementwise product: gated copy u of entry i times gate u of entry i, a uuu path l ⊗ 0 → l.
  const e3nn::TensorProductImpl& product = gate.gated_product();
  const at::Tensor gated_columns = gate.gated_columns().to(at::kLong).contiguous();
  const int64_t* gated_column = gated_columns.data_ptr<int64_t>();
  const std::vector<int64_t> offsets1 = product.irreps_in1().offsets(), offsets2 = product.irreps_in2().offsets(),
                             offsets_out = product.irreps_out().offsets();
  const int64_t width = product.irreps_out().dim();
  if (gated_columns.numel() != product.irreps_in1().dim() ||
      static_cast<int64_t>(plan->gates.size()) != product.irreps_in2().dim() ||
      plan->dim_out != static_cast<int64_t>(plan->scalars.size()) + width)
    return {};
  // Per output column: input column times activated gate times scale.
  struct Gated {
    int64_t input, gate;
    double scale;
  };
  std::vector<Gated> gated(width, Gated{-1, -1, 0.0});
  for (const e3nn::TensorProductImpl::Path& p : product.paths()) {
    const std::optional<double> coupling = e3nn::scalar_coupling(p.w3j);
    if (p.ins.mode != e3nn::ConnectionMode::uuu || p.d2 != 1 || !coupling) return {};
    for (int64_t u = 0; u < p.mul1; ++u)
      for (int64_t k = 0; k < p.d1; ++k)
        gated[offsets_out[p.ins.i_out] + u * p.d3 + k] = {gated_column[offsets1[p.ins.i_in1] + u * p.d1 + k],
                                                          offsets2[p.ins.i_in2] + u, p.coefficient * *coupling};
  }
  for (const Gated& g : gated)
    if (g.input < 0) return {};
  // Each entry's gated input columns are side by side (e3nn's Gate sorts whole entries): one run
  // per entry. Any other layout goes to the module.
  for (const e3nn::TensorProductImpl::Path& p : product.paths()) {
    const int64_t out_first = offsets_out[p.ins.i_out], size = p.mul1 * p.d1;
    if (size == 0) continue;
    const Gated& first = gated[out_first];
    for (int64_t t = 0; t < size; ++t)
      if (gated[out_first + t].input != first.input + t) return {};
    plan->gated_runs.push_back({out_first, first.input, first.gate, p.mul1, p.d1, first.scale});
  }
  std::vector<int> readers(plan->dim_in, 0);
  bool in_range = true;
  const auto read = [&](int64_t column) {
    if (column < 0 || column >= plan->dim_in) in_range = false;
    else ++readers[column];
  };
  for (const Plan::Activated& a : plan->scalars) read(a.input);
  for (const Plan::Activated& a : plan->gates) read(a.input);
  for (const Plan::GatedRun& run : plan->gated_runs)
    for (int64_t t = 0; t < run.mul * run.d; ++t) read(run.in_first + t);
  plan->covers_every_input = in_range && std::all_of(readers.begin(), readers.end(), [](int n) { return n == 1; });
  plan->module = std::dynamic_pointer_cast<const e3nn::GateImpl>(gate.shared_from_this());
  return plan;
}

template <typename T>
struct Scratch {
  std::vector<T> in, values, derivatives;
};

// The activations and their derivatives (either destination null when not wanted) of the columns
// `activated` in `rows` rows of x, one batch per run: into values[r·activated.size() + j] and
// derivatives[…].
template <typename T>
void activate_rows(const std::vector<Plan::Activated>& activated, const std::vector<Plan::Run>& runs, const T* x,
                   int64_t dim_in, int64_t rows, T* values, T* derivatives, Scratch<T>& scratch) {
  const int64_t width = static_cast<int64_t>(activated.size());
  for (const Plan::Run& run : runs) {
    const int64_t length = run.end - run.first, n = rows * length;
    scratch.in.resize(n);
    scratch.values.resize(values ? n : 0);
    scratch.derivatives.resize(derivatives ? n : 0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < length; ++i) scratch.in[r * length + i] = x[r * dim_in + activated[run.first + i].input];
    run.act.apply(scratch.in.data(), values ? scratch.values.data() : nullptr,
                  derivatives ? scratch.derivatives.data() : nullptr, n);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < length; ++i) {
        if (values) values[r * width + run.first + i] = scratch.values[r * length + i];
        if (derivatives) derivatives[r * width + run.first + i] = scratch.derivatives[r * length + i];
      }
  }
}

// One run of gated copies of a row, with the irrep's width d known at compile time where it is
// compiled (D > 0), so that the loops vectorize: out = x · gate · scale.
template <typename T, int D>
KLAY_KERNEL_BODY void gated_forward(const Plan::GatedRun& run, const T* xn, const T* gates, T* on) {
  const int64_t d = D > 0 ? D : run.d;
  const T scale = static_cast<T>(run.scale);
  const T* __restrict x = xn + run.in_first;
  const T* __restrict gate = gates + run.gate_first;
  T* __restrict out = on + run.out_first;
  for (int64_t u = 0; u < run.mul; ++u)
    for (int64_t k = 0; k < d; ++k) out[u * d + k] = x[u * d + k] * gate[u] * scale;
}

// Its backward from the output's gradient gn: the gated inputs' gradient into grad, and each gate's
// Σ_k g·scale·x (its 2l+1 components summed in a register) added to grad_gates.
template <typename T, int D>
KLAY_KERNEL_BODY void gated_backward(const Plan::GatedRun& run, const T* xn, const T* gn, const T* gates, T* grad,
                                     T* grad_gates) {
  const int64_t d = D > 0 ? D : run.d;
  const T scale = static_cast<T>(run.scale);
  const T* __restrict x = xn + run.in_first;
  const T* __restrict g = gn + run.out_first;
  const T* __restrict gate = gates + run.gate_first;
  T* __restrict grad_in = grad + run.in_first;
  T* __restrict grad_gate = grad_gates + run.gate_first;
  for (int64_t u = 0; u < run.mul; ++u) {
    T sum = 0;
    for (int64_t k = 0; k < d; ++k) {
      const T scaled = g[u * d + k] * scale;
      grad_in[u * d + k] = scaled * gate[u];
      sum += scaled * x[u * d + k];
    }
    grad_gate[u] += sum;
  }
}

template <typename T>
KLAY_KERNEL_BODY void forward_rows(const Plan& plan, bool scalars_only, int64_t first, int64_t last, const T* x,
                                   T* out) {
  const int64_t S = static_cast<int64_t>(plan.scalars.size()), G = static_cast<int64_t>(plan.gates.size());
  Scratch<T> scratch;
  std::vector<T> scalars(kRowsPerBatch * S), gates(kRowsPerBatch * G);
  for (int64_t n0 = first; n0 < last; n0 += kRowsPerBatch) {
    const int64_t batch = std::min(kRowsPerBatch, last - n0);
    const T* xb = x + n0 * plan.dim_in;
    activate_rows<T>(plan.scalars, plan.scalar_runs, xb, plan.dim_in, batch, scalars.data(), nullptr, scratch);
    if (!scalars_only)
      activate_rows<T>(plan.gates, plan.gate_runs, xb, plan.dim_in, batch, gates.data(), nullptr, scratch);
    for (int64_t r = 0; r < batch; ++r) {
      const T* xn = x + (n0 + r) * plan.dim_in;
      T* on = out + (n0 + r) * plan.dim_out;
      std::copy(scalars.begin() + r * S, scalars.begin() + (r + 1) * S, on);
      if (scalars_only) {
        std::fill(on + S, on + plan.dim_out, T(0));
        continue;
      }
      const T* gn = gates.data() + r * G;
      for (const Plan::GatedRun& run : plan.gated_runs) {
#define KLAY_GATED_FORWARD(D) gated_forward<T, D>(run, xn, gn, on + S)
        KLAY_FOR_IRREP_WIDTH(run.d, KLAY_GATED_FORWARD);
#undef KLAY_GATED_FORWARD
      }
    }
  }
}

// Every input column is a scalar, a gate or a gated component (covers_every_input), so each row of
// grad_x is written whole; with the scalars only, the gates' and gated inputs' entries are zeros.
template <typename T>
KLAY_KERNEL_BODY void backward_rows(const Plan& plan, bool scalars_only, int64_t first, int64_t last, const T* x,
                                    const T* g, T* grad_x) {
  const int64_t S = static_cast<int64_t>(plan.scalars.size()), G = static_cast<int64_t>(plan.gates.size());
  Scratch<T> scratch;
  std::vector<T> scalar_derivatives(kRowsPerBatch * S), gates(kRowsPerBatch * G), gate_derivatives(kRowsPerBatch * G),
      grad_gates(G);
  for (int64_t n0 = first; n0 < last; n0 += kRowsPerBatch) {
    const int64_t batch = std::min(kRowsPerBatch, last - n0);
    const T* xb = x + n0 * plan.dim_in;
    activate_rows<T>(plan.scalars, plan.scalar_runs, xb, plan.dim_in, batch, nullptr, scalar_derivatives.data(),
                     scratch);
    if (!scalars_only)
      activate_rows<T>(plan.gates, plan.gate_runs, xb, plan.dim_in, batch, gates.data(), gate_derivatives.data(),
                       scratch);
    for (int64_t r = 0; r < batch; ++r) {
      const int64_t n = n0 + r;
      const T* xn = x + n * plan.dim_in;
      const T* gn = g + n * plan.dim_out;
      T* grad = grad_x + n * plan.dim_in;
      if (n + 1 < last) prefetch(xn + plan.dim_in, plan.dim_in);
      if (scalars_only || !plan.covers_every_input) std::fill(grad, grad + plan.dim_in, T(0));
      for (int64_t j = 0; j < S; ++j) grad[plan.scalars[j].input] = gn[j] * scalar_derivatives[r * S + j];
      if (scalars_only) continue;
      std::fill(grad_gates.begin(), grad_gates.end(), T(0));
      for (const Plan::GatedRun& run : plan.gated_runs) {
#define KLAY_GATED_BACKWARD(D) gated_backward<T, D>(run, xn, gn + S, gates.data() + r * G, grad, grad_gates.data())
        KLAY_FOR_IRREP_WIDTH(run.d, KLAY_GATED_BACKWARD);
#undef KLAY_GATED_BACKWARD
      }
      for (int64_t t = 0; t < G; ++t) grad[plan.gates[t].input] = grad_gates[t] * gate_derivatives[r * G + t];
    }
  }
}

template <typename T>
void forward_rows_baseline(const Plan& plan, bool scalars_only, int64_t first, int64_t last, const T* x, T* out) {
  forward_rows(plan, scalars_only, first, last, x, out);
}
template <typename T>
void backward_rows_baseline(const Plan& plan, bool scalars_only, int64_t first, int64_t last, const T* x, const T* g,
                            T* grad_x) {
  backward_rows(plan, scalars_only, first, last, x, g, grad_x);
}
#ifdef KLAY_HAVE_AVX2_ENTRY
template <typename T>
KLAY_AVX2_ENTRY void forward_rows_avx2(const Plan& plan, bool scalars_only, int64_t first, int64_t last, const T* x,
                                       T* out) {
  forward_rows(plan, scalars_only, first, last, x, out);
}
template <typename T>
KLAY_AVX2_ENTRY void backward_rows_avx2(const Plan& plan, bool scalars_only, int64_t first, int64_t last, const T* x,
                                        const T* g, T* grad_x) {
  backward_rows(plan, scalars_only, first, last, x, g, grad_x);
}
template <typename T>
KLAY_AVX512_ENTRY void forward_rows_avx512(const Plan& plan, bool scalars_only, int64_t first, int64_t last,
                                           const T* x, T* out) {
  forward_rows(plan, scalars_only, first, last, x, out);
}
template <typename T>
KLAY_AVX512_ENTRY void backward_rows_avx512(const Plan& plan, bool scalars_only, int64_t first, int64_t last,
                                            const T* x, const T* g, T* grad_x) {
  backward_rows(plan, scalars_only, first, last, x, g, grad_x);
}
#endif

// The rows on the threads, in the widest vector units the CPU has.
template <typename T>
void forward_kernel(const Plan& plan, bool scalars_only, int64_t rows, const T* x, T* out) {
  const auto entry = KLAY_WIDEST_ENTRY(forward_rows, T);
  at::parallel_for(0, rows, kRowsPerTask,
                   [&](int64_t first, int64_t last) { entry(plan, scalars_only, first, last, x, out); });
}
template <typename T>
void backward_kernel(const Plan& plan, bool scalars_only, int64_t rows, const T* x, const T* g, T* grad_x) {
  const auto entry = KLAY_WIDEST_ENTRY(backward_rows, T);
  at::parallel_for(0, rows, kRowsPerTask,
                   [&](int64_t first, int64_t last) { entry(plan, scalars_only, first, last, x, g, grad_x); });
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class FusedGate : public torch::autograd::Function<FusedGate> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& features, bool scalars_only,
                            const c10::intrusive_ptr<Plan>& plan) {
    ++g_calls.forward;
    const at::Tensor x = features.contiguous();
    at::Tensor out = at::empty({x.size(0), plan->dim_out}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gate_forward", [&] {
      forward_kernel<scalar_t>(*plan, scalars_only, x.size(0), x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>());
    });
    ctx->save_for_backward({x});
    keep_plan(ctx, plan);
    ctx->saved_data["scalars_only"] = scalars_only;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const auto plan = kept_plan<Plan>(ctx);
    const bool scalars_only = ctx->saved_data["scalars_only"].toBool();
    const at::Tensor& g = grad_outputs[0];
    variable_list grads(3);
    if (!g.defined() || !ctx->needs_input_grad(0)) return grads;

    if (at::GradMode::is_enabled()) {
      ++g_calls.composite_backward;
      const auto composite = [&](const std::vector<at::Tensor>& v) {
        return scalars_only ? plan->module->forward_scalars(v[0]) : plan->module->forward(v[0]);
      };
      return composite_partials({x}, {true}, composite, g, grads.size());
    }

    ++g_calls.backward;
    const at::Tensor gc = g.contiguous();
    at::Tensor grad_x = at::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gate_backward", [&] {
      backward_kernel<scalar_t>(*plan, scalars_only, x.size(0), x.data_ptr<scalar_t>(), gc.data_ptr<scalar_t>(),
                                grad_x.data_ptr<scalar_t>());
    });
    grads[0] = grad_x;
    return grads;
  }
};

at::Tensor fused_or_module(const e3nn::GateImpl& module, const at::Tensor& features, bool scalars_only) {
  const bool fusable =
      kernels_take({features}) && features.dim() >= 1 && features.size(-1) == module.irreps_in().dim();
  const c10::intrusive_ptr<Plan> plan = fusable ? make_plan(module) : c10::intrusive_ptr<Plan>();
  if (!plan) return scalars_only ? module.forward_scalars(features) : module.forward(features);
  std::vector<int64_t> shape = features.sizes().vec();
  shape.back() = plan->dim_out;
  return viewed_as(FusedGate::apply(as_rows(features, plan->dim_in), scalars_only, plan), shape);
}

}  // namespace

at::Tensor gate(const e3nn::GateImpl& module, const at::Tensor& features) {
  return fused_or_module(module, features, false);
}

at::Tensor gate_scalars(const e3nn::GateImpl& module, const at::Tensor& features) {
  return fused_or_module(module, features, true);
}

bool gate_kernel_supports(const e3nn::GateImpl& module) { return static_cast<bool>(make_plan(module)); }

KernelCounters gate_counters() { return g_calls.snapshot(); }

}  // namespace klay::kernels
