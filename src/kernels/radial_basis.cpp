// The radial basis kernels (see the header for what they compute). They compute in double for
// float32 too and round once at the end.
#include "kernels/radial_basis.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "kernels/sin_cos.hpp"

namespace klay::kernels {
namespace {

KernelCallCounts g_cutoff_calls, g_basis_calls, g_encoding_calls;

// Edges handed to a thread at a time by the cutoff (a few flops each).
constexpr int64_t kCutoffEdgesPerTask = 4096;
// The basis goes over blocks of this many edges, whose angles, sines and cosines fit in a small
// buffer; its weight gradient is summed per block, then over the blocks in order, so that it does
// not depend on the number of threads.
constexpr int64_t kEdgesPerBlock = 64;
constexpr int64_t kBlocksPerTask = 4;
// Integer degrees up to this take u^(p−1) by repeated squaring, others std::pow.
constexpr double kLargestIntegerDegree = 64;

// The composite paths: Python KLay's formulas in ATen operators.
at::Tensor cutoff_composite(const at::Tensor& r, const PolynomialCutoffParams& cutoff) {
  const double p = cutoff.degree;
  const at::Tensor u = r * cutoff.inverse_r_max;
  at::Tensor f = 1.0 - ((p + 1.0) * (p + 2.0) / 2.0) * at::pow(u, p);
  f = f + (p * (p + 2.0)) * at::pow(u, p + 1.0);
  f = f - (p * (p + 1.0) / 2.0) * at::pow(u, p + 2.0);
  return f * (u < 1.0);
}

at::Tensor basis_composite(const at::Tensor& r, const at::Tensor& weights, const BesselBasisParams& basis) {
  const at::Tensor column = r.unsqueeze(-1);
  return basis.prefactor * (at::sin(weights * column / basis.r_max) / column);
}

at::Tensor encoding_composite(const at::Tensor& r, const at::Tensor& weights, const BesselBasisParams& basis,
                              const PolynomialCutoffParams& cutoff) {
  return basis_composite(r, weights, basis) * cutoff_composite(r, cutoff).unsqueeze(-1);
}

// The cutoff's coefficients, and its value and derivative at one length.
class Cutoff {
 public:
  explicit Cutoff(const PolynomialCutoffParams& params)
      : inverse_r_max_(params.inverse_r_max),
        p_(params.degree),
        integer_power_(p_ == std::floor(p_) && p_ <= kLargestIntegerDegree),
        a_((p_ + 1.0) * (p_ + 2.0) / 2.0),
        b_(p_ * (p_ + 2.0)),
        c_(p_ * (p_ + 1.0) / 2.0),
        slope_(p_ * (p_ + 1.0) * (p_ + 2.0) / 2.0) {}

  // f(r); with `derivative`, df/dr there too: −p(p+1)(p+2)/2·u^(p−1)·(1−u)²/r_max below r_max,
  // the three terms' derivatives added up (where the composite path cancels them in rounding).
  double value(double r, double* derivative) const {
    const double u = r * inverse_r_max_;
    const double below = power_below(u);  // u^(p−1)
    const double up = below * u;
    const double inside = u < 1.0 ? 1.0 : 0.0;
    if (derivative) {
      const double rest = 1.0 - u;
      *derivative = inside * (-slope_ * below * rest * rest) * inverse_r_max_;
    }
    return (((1.0 - a_ * up) + b_ * (up * u)) - c_ * (up * u * u)) * inside;
  }

 private:
  double power_below(double u) const {
    if (!integer_power_) return std::pow(u, p_ - 1.0);
    double result = 1.0;
    for (int64_t m = static_cast<int64_t>(p_) - 1; m > 0; m >>= 1, u *= u)
      if (m & 1) result *= u;
    return result;
  }

  double inverse_r_max_, p_;
  bool integer_power_;
  double a_, b_, c_, slope_;
};

// One basis call: the basis (the frequencies w/r_max of its weights) and the cutoff it is
// multiplied by, if any.
struct Basis {
  Basis(const at::Tensor& weights, const BesselBasisParams& params, const std::optional<PolynomialCutoffParams>& cut)
      : r_max(params.r_max), prefactor(params.prefactor) {
    const at::Tensor w = weights.to(at::kDouble).contiguous();
    for (int64_t k = 0; k < w.numel(); ++k) frequencies.push_back(w.data_ptr<double>()[k] / r_max);
    if (cut) cutoff.emplace(*cut);
  }
  int64_t size() const { return static_cast<int64_t>(frequencies.size()); }

  double r_max, prefactor;
  std::vector<double> frequencies;
  std::optional<Cutoff> cutoff;
};

// What a basis call carries to its backward.
struct BasisPlan : torch::CustomClassHolder {
  BesselBasisParams basis;
  std::optional<PolynomialCutoffParams> cutoff;

  KernelCallCounts& calls() const { return cutoff ? g_encoding_calls : g_basis_calls; }
  at::Tensor composite(const at::Tensor& r, const at::Tensor& weights) const {
    return cutoff ? encoding_composite(r, weights, basis, *cutoff) : basis_composite(r, weights, basis);
  }
};

struct CutoffPlan : torch::CustomClassHolder {
  PolynomialCutoffParams cutoff;
};

// fn(block, first edge, end edge, sines, cosines) for every block of edges, the blocks split
// among the threads; the sines and cosines of the block's angles w·r/r_max, edge by edge.
template <typename T, typename Fn>
void for_each_block(const Basis& basis, int64_t edges, const T* r, const Fn& fn) {
  const int64_t n = basis.size();
  const int64_t blocks = (edges + kEdgesPerBlock - 1) / kEdgesPerBlock;
  at::parallel_for(0, blocks, kBlocksPerTask, [&](int64_t first, int64_t last) {
    std::vector<double> angles(kEdgesPerBlock * n), sines(angles.size()), cosines(angles.size());
    for (int64_t block = first; block < last; ++block) {
      const int64_t begin = block * kEdgesPerBlock, end = std::min(edges, begin + kEdgesPerBlock);
      for (int64_t e = begin; e < end; ++e)
        for (int64_t k = 0; k < n; ++k) angles[(e - begin) * n + k] = basis.frequencies[k] * static_cast<double>(r[e]);
      sin_cos(angles.data(), sines.data(), cosines.data(), (end - begin) * n);
      fn(block, begin, end, sines.data(), cosines.data());
    }
  });
}

// out[e, k] = b_k(r_e)·f(r_e) with b_k = prefactor·sin(θ_k)/r, θ_k = w_k·r/r_max (f = 1 without
// cutoff); with out_dr, its d/dr there: (prefactor·(w_k/r_max·cos θ_k − sin θ_k/r)/r)·f + b_k·f'.
// x/r is x·(1/r) where 1/r is finite (divisions were half of this loop's time); at r = 0 and at
// subnormal r a division, as in the composite path (0/0 = NaN at r = 0).
template <typename T>
void basis_forward(const Basis& basis, int64_t edges, const T* r, T* out, T* out_dr) {
  const int64_t n = basis.size();
  const double prefactor = basis.prefactor;
  const double* frequencies = basis.frequencies.data();
  for_each_block(basis, edges, r, [&](int64_t, int64_t begin, int64_t end, const double* sines, const double* cosines) {
    for (int64_t e = begin; e < end; ++e) {
      const double length = r[e], inverse = 1.0 / length;
      double f = 1.0, df = 0.0;
      if (basis.cutoff) f = basis.cutoff->value(length, out_dr ? &df : nullptr);
      const double* s = sines + (e - begin) * n;
      const double* c = cosines + (e - begin) * n;
      T* y = out + e * n;
      T* dy = out_dr ? out_dr + e * n : nullptr;
      const auto edge = [&](auto over_length) {
        for (int64_t k = 0; k < n; ++k) y[k] = static_cast<T>(prefactor * over_length(s[k]) * f);
        if (!dy) return;
        for (int64_t k = 0; k < n; ++k) {
          const double b = prefactor * over_length(s[k]);
          const double db = prefactor * over_length(frequencies[k] * c[k] - over_length(s[k]));
          dy[k] = static_cast<T>(db * f + b * df);
        }
      };
      if (std::isfinite(inverse))
        edge([inverse](double x) { return x * inverse; });
      else
        edge([length](double x) { return x / length; });
    }
  });
}

// grad_r[e] = Σ_k g[e, k]·d out[e, k]/dr.
template <typename T>
void basis_backward_lengths(int64_t edges, int64_t n, const T* g, const T* out_dr, T* grad_r) {
  at::parallel_for(0, edges, kEdgesPerBlock * kBlocksPerTask, [&](int64_t first, int64_t last) {
    for (int64_t e = first; e < last; ++e) {
      double sum = 0;
      for (int64_t k = 0; k < n; ++k) sum += static_cast<double>(g[e * n + k]) * out_dr[e * n + k];
      grad_r[e] = static_cast<T>(sum);
    }
  });
}

// grad_w[k] = Σ_e g[e, k]·prefactor·cos θ_k·(r/r_max)/r·f: the angles are evaluated again, as
// only training asks for this gradient.
template <typename T>
std::vector<double> basis_backward_weights(const Basis& basis, int64_t edges, const T* r, const T* g) {
  const int64_t n = basis.size();
  const int64_t blocks = (edges + kEdgesPerBlock - 1) / kEdgesPerBlock;
  std::vector<double> block_sums(blocks * n, 0.0);
  for_each_block(basis, edges, r, [&](int64_t block, int64_t begin, int64_t end, const double*, const double* cosines) {
    double* sum = block_sums.data() + block * n;
    for (int64_t e = begin; e < end; ++e) {
      const double length = r[e];
      const double f = basis.cutoff ? basis.cutoff->value(length, nullptr) : 1.0;
      const double scale = basis.prefactor * ((length / basis.r_max) / length) * f;
      const double* c = cosines + (e - begin) * n;
      for (int64_t k = 0; k < n; ++k) sum[k] += static_cast<double>(g[e * n + k]) * c[k] * scale;
    }
  });
  std::vector<double> grad(n, 0.0);
  for (int64_t block = 0; block < blocks; ++block)
    for (int64_t k = 0; k < n; ++k) grad[k] += block_sums[block * n + k];
  return grad;
}

// The basis of lengths [E] (contiguous): the values [E, n] and, with keep_derivative, d/dr.
std::pair<at::Tensor, at::Tensor> evaluate_basis(const at::Tensor& r, const at::Tensor& weights,
                                                 const BasisPlan& plan, bool keep_derivative) {
  const Basis basis(weights, plan.basis, plan.cutoff);
  at::Tensor out = at::empty({r.size(0), basis.size()}, r.options());
  at::Tensor out_dr = keep_derivative ? at::empty_like(out) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(r.scalar_type(), "radial_basis_forward", [&] {
    basis_forward<scalar_t>(basis, r.size(0), r.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                            keep_derivative ? out_dr.data_ptr<scalar_t>() : nullptr);
  });
  return {out, out_dr};
}

// The cutoff of lengths [E] (contiguous): the values and, with keep_derivative, d/dr.
std::pair<at::Tensor, at::Tensor> evaluate_cutoff(const at::Tensor& r, const PolynomialCutoffParams& params,
                                                  bool keep_derivative) {
  const Cutoff cutoff(params);
  at::Tensor out = at::empty_like(r);
  at::Tensor out_dr = keep_derivative ? at::empty_like(r) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(r.scalar_type(), "polynomial_cutoff_forward", [&] {
    const scalar_t* x = r.data_ptr<scalar_t>();
    scalar_t* y = out.data_ptr<scalar_t>();
    scalar_t* dy = keep_derivative ? out_dr.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, r.numel(), kCutoffEdgesPerTask, [&](int64_t first, int64_t last) {
      for (int64_t e = first; e < last; ++e) {
        double derivative;
        y[e] = static_cast<scalar_t>(cutoff.value(x[e], dy ? &derivative : nullptr));
        if (dy) dy[e] = static_cast<scalar_t>(derivative);
      }
    });
  });
  return {out, out_dr};
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Lengths [E] → [E], only where autograd records the call.
class FusedCutoff : public torch::autograd::Function<FusedCutoff> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& r, const c10::intrusive_ptr<CutoffPlan>& plan) {
    ++g_cutoff_calls.forward;
    auto [out, out_dr] = evaluate_cutoff(r, plan->cutoff, /*keep_derivative=*/true);
    ctx->save_for_backward({r});
    keep_plan(ctx, plan);
    ctx->saved_data["out_dr"] = out_dr;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor r = ctx->get_saved_variables()[0];
    const auto plan = kept_plan<CutoffPlan>(ctx);
    const at::Tensor& g = grad_outputs[0];
    variable_list grads(2);
    if (!g.defined() || !ctx->needs_input_grad(0)) return grads;

    if (at::GradMode::is_enabled()) {
      ++g_cutoff_calls.composite_backward;
      const auto composite = [&](const std::vector<at::Tensor>& v) { return cutoff_composite(v[0], plan->cutoff); };
      return composite_partials({r}, {true}, composite, g, grads.size());
    }
    ++g_cutoff_calls.backward;
    grads[0] = g * ctx->saved_data["out_dr"].toTensor();
    return grads;
  }
};

// Lengths [E] and weights [n] → [E, n]. keep_derivative: the lengths require grad (a Function's
// forward runs without grad mode, so the caller says).
class FusedBasis : public torch::autograd::Function<FusedBasis> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& r, const at::Tensor& weights,
                            const c10::intrusive_ptr<BasisPlan>& plan, bool keep_derivative) {
    ++plan->calls().forward;
    auto [out, out_dr] = evaluate_basis(r, weights, *plan, keep_derivative);
    ctx->save_for_backward({r, weights});
    keep_plan(ctx, plan);
    if (keep_derivative) ctx->saved_data["out_dr"] = out_dr;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &r = saved[0], &weights = saved[1];
    const auto plan = kept_plan<BasisPlan>(ctx);
    const at::Tensor& g = grad_outputs[0];
    const std::vector<bool> wanted{ctx->needs_input_grad(0), ctx->needs_input_grad(1)};
    variable_list grads(4);
    if (!g.defined() || (!wanted[0] && !wanted[1])) return grads;

    if (at::GradMode::is_enabled()) {
      ++plan->calls().composite_backward;
      const auto composite = [&](const std::vector<at::Tensor>& v) { return plan->composite(v[0], v[1]); };
      return composite_partials({r, weights}, wanted, composite, g, grads.size());
    }
    ++plan->calls().backward;
    const at::Tensor gc = g.contiguous();
    const int64_t edges = r.size(0), n = weights.numel();
    AT_DISPATCH_FLOATING_TYPES(r.scalar_type(), "radial_basis_backward", [&] {
      if (wanted[0]) {
        grads[0] = at::empty_like(r);
        basis_backward_lengths<scalar_t>(edges, n, gc.data_ptr<scalar_t>(),
                                         ctx->saved_data["out_dr"].toTensor().data_ptr<scalar_t>(),
                                         grads[0].data_ptr<scalar_t>());
      }
      if (wanted[1]) {
        const Basis basis(weights, plan->basis, plan->cutoff);
        const std::vector<double> grad = basis_backward_weights<scalar_t>(basis, edges, r.data_ptr<scalar_t>(),
                                                                          gc.data_ptr<scalar_t>());
        grads[1] = at::tensor(grad, at::kDouble).to(weights.scalar_type()).view(weights.sizes());
      }
    });
    return grads;
  }
};

// Whether autograd records a call with these inputs.
bool recorded(const at::Tensor& r, const at::Tensor& weights = {}) {
  return at::GradMode::is_enabled() && (r.requires_grad() || (weights.defined() && weights.requires_grad()));
}

at::Tensor fused_or_composite(const at::Tensor& r, const at::Tensor& weights, const BesselBasisParams& basis,
                              const std::optional<PolynomialCutoffParams>& cutoff) {
  auto plan = c10::make_intrusive<BasisPlan>();
  plan->basis = basis;
  plan->cutoff = cutoff;
  if (!kernels_take({r, weights}) || weights.dim() != 1) return plan->composite(r, weights);
  std::vector<int64_t> sizes = r.sizes().vec();
  sizes.push_back(weights.size(0));
  const at::Tensor lengths = flattened(r).contiguous();
  if (recorded(r, weights))
    return viewed_as(FusedBasis::apply(lengths, weights, plan, r.requires_grad()), sizes);
  ++plan->calls().forward;
  return viewed_as(evaluate_basis(lengths, weights, *plan, false).first, sizes);
}

}  // namespace

at::Tensor polynomial_cutoff(const at::Tensor& r, const PolynomialCutoffParams& cutoff) {
  if (!kernels_take({r})) return cutoff_composite(r, cutoff);
  const at::Tensor lengths = flattened(r).contiguous();
  if (recorded(r)) {
    auto plan = c10::make_intrusive<CutoffPlan>();
    plan->cutoff = cutoff;
    return viewed_as(FusedCutoff::apply(lengths, plan), r.sizes());
  }
  ++g_cutoff_calls.forward;
  return viewed_as(evaluate_cutoff(lengths, cutoff, false).first, r.sizes());
}

at::Tensor bessel_basis(const at::Tensor& r, const at::Tensor& weights, const BesselBasisParams& basis) {
  return fused_or_composite(r, weights, basis, std::nullopt);
}

at::Tensor radial_basis_edge_encoding(const at::Tensor& r, const at::Tensor& weights, const BesselBasisParams& basis,
                                      const PolynomialCutoffParams& cutoff) {
  return fused_or_composite(r, weights, basis, cutoff);
}

KernelCounters polynomial_cutoff_counters() { return g_cutoff_calls.snapshot(); }
KernelCounters bessel_basis_counters() { return g_basis_calls.snapshot(); }
KernelCounters radial_basis_edge_encoding_counters() { return g_encoding_calls.snapshot(); }

}  // namespace klay::kernels
