// The spherical harmonics kernel (see the header for what it computes).
#include "kernels/spherical_harmonics.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

KernelCallCounts g_calls;

// Vectors handed to a thread at a time: ~10 ns each forward (lmax 3), so a task outweighs waking
// a thread and small graphs stay on one.
constexpr int64_t kVectorsPerTask = 2048;

// torch.nn.functional.normalize's floor on the length, as e3nn::spherical_harmonics applies it.
constexpr double kLengthFloor = 1e-12;

// A value and its derivatives with respect to the three components of the unit vector: the
// backward evaluates the same formulas as the forward in this type, which gives each vector's
// Jacobian without storing it. T is a number, or a vector of numbers (one per lane: the backward
// runs a vector register's worth of vectors at a time).
template <typename T>
struct Dual {
  T value;
  T d[3];
  Dual(T v = T{}) : value(v), d{T{}, T{}, T{}} {}
  // A constant (its derivatives zero) in every lane.
  template <typename C, typename = std::enable_if_t<std::is_arithmetic_v<C> && !std::is_arithmetic_v<T>>>
  Dual(C c) : value(T{} + c), d{T{}, T{}, T{}} {}
};

template <typename T>
KLAY_KERNEL_BODY Dual<T> operator+(const Dual<T>& a, const Dual<T>& b) {
  Dual<T> r(a.value + b.value);
  for (int k = 0; k < 3; ++k) r.d[k] = a.d[k] + b.d[k];
  return r;
}

template <typename T>
KLAY_KERNEL_BODY Dual<T> operator-(const Dual<T>& a, const Dual<T>& b) {
  Dual<T> r(a.value - b.value);
  for (int k = 0; k < 3; ++k) r.d[k] = a.d[k] - b.d[k];
  return r;
}

template <typename T>
KLAY_KERNEL_BODY Dual<T> operator*(const Dual<T>& a, const Dual<T>& b) {
  Dual<T> r(a.value * b.value);
  for (int k = 0; k < 3; ++k) r.d[k] = a.d[k] * b.value + a.value * b.d[k];
  return r;
}

template <typename C, typename T, typename = std::enable_if_t<std::is_arithmetic_v<C>>>
KLAY_KERNEL_BODY Dual<T> operator*(C c, const Dual<T>& a) {
  Dual<T> r(c * a.value);
  for (int k = 0; k < 3; ++k) r.d[k] = c * a.d[k];
  return r;
}

// One term of the recursion's sparse matrix: Y^{l+1}_i += c · Y^l_j · v_k.
struct RecursionTerm {
  int64_t i, j, k;
  double c;
};

struct Plan : torch::CustomClassHolder {
  int lmax = 0;
  bool normalize = true;
  e3nn::ShNormalization normalization = e3nn::ShNormalization::component;
  int64_t dim = 1;                                  // (lmax + 1)²
  std::vector<double> divisor;                      // per l: what the normalisation divides block l by
  std::vector<std::vector<RecursionTerm>> recursion;  // index l ≥ 3: the terms making block l + 1
};

c10::intrusive_ptr<Plan> make_plan(int lmax, bool normalize, e3nn::ShNormalization normalization) {
  auto plan = c10::make_intrusive<Plan>();
  plan->lmax = lmax;
  plan->normalize = normalize;
  plan->normalization = normalization;
  plan->dim = static_cast<int64_t>(lmax + 1) * (lmax + 1);
  for (int l = 0; l <= lmax; ++l)
    plan->divisor.push_back(normalization == e3nn::ShNormalization::norm       ? std::sqrt(2.0 * l + 1.0)
                            : normalization == e3nn::ShNormalization::integral ? std::sqrt(4.0 * M_PI)
                                                                               : 1.0);
  plan->recursion.resize(lmax);
  for (int l = 3; l < lmax; ++l) {
    const at::Tensor a = e3nn::spherical_harmonics_recursion_matrix(l).contiguous();
    const double* entry = a.data_ptr<double>();
    const int64_t width = 2 * l + 3;
    for (int64_t j = 0; j < 2 * l + 1; ++j)
      for (int64_t k = 0; k < 3; ++k)
        for (int64_t i = 0; i < width; ++i) {
          const double c = entry[j * 3 * width + k * width + i];
          if (c != 0.0) plan->recursion[l].push_back({i, j, k, c});
        }
  }
  return plan;
}

// Y^0…Y^lmax of the unit vector (x, y, z), component normalisation, in e3nn's order: its closed
// forms, then its recursion. S is T or Dual<T>.
template <typename T, typename S>
KLAY_KERNEL_BODY void component_harmonics(const Plan& plan, const S& x, const S& y, const S& z, S* out) {
  out[0] = S(T(1));
  e3nn::closed_form_harmonics<T>(plan.lmax, x, y, z, out);
  const S v[3] = {x, y, z};
  for (int l = 3; l < plan.lmax; ++l) {
    const S* previous = out + l * l;
    S* next = out + (l + 1) * (l + 1);
    std::fill(next, next + 2 * l + 3, S(T(0)));
    for (const RecursionTerm& t : plan.recursion[l])
      next[t.i] = next[t.i] + (static_cast<T>(t.c) * previous[t.j]) * v[t.k];
  }
}

// A vector's length (e3nn::vector_lengths) and its unit vector u as e3nn::spherical_harmonics forms
// it: v / max(‖v‖, 10⁻¹²), or v itself without normalisation.
template <typename T>
struct Direction {
  T length, divisor;  // divisor: what v is divided by (1 without normalisation)
  bool floored;       // the floor replaced the length
  T u[3];
};

template <typename T>
Direction<T> direction(bool normalize, const T* v) {
  Direction<T> d;
  d.length = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  d.floored = normalize && d.length < static_cast<T>(kLengthFloor);
  d.divisor = !normalize ? T(1) : d.floored ? static_cast<T>(kLengthFloor) : d.length;
  for (int k = 0; k < 3; ++k) d.u[k] = normalize ? v[k] / d.divisor : v[k];
  return d;
}

template <typename T>
void forward_kernel(const Plan& plan, int64_t count, const T* vectors, T* lengths, T* out) {
  at::parallel_for(0, count, kVectorsPerTask, [&](int64_t first, int64_t last) {
    for (int64_t n = first; n < last; ++n) {
      const Direction<T> d = direction(plan.normalize, vectors + 3 * n);
      lengths[n] = d.length;
      T* y = out + n * plan.dim;
      component_harmonics<T, T>(plan, d.u[0], d.u[1], d.u[2], y);
      if (plan.normalization == e3nn::ShNormalization::component) continue;
      for (int l = 0; l <= plan.lmax; ++l)
        for (int64_t i = l * l; i < (l + 1) * (l + 1); ++i) y[i] /= static_cast<T>(plan.divisor[l]);
    }
  });
}

// From the harmonics' gradient g (or none): grad_u = Σ_i g_i/divisor_l ∂Y_i/∂u, then through the
// normalisation u = v/‖v‖: (grad_u − u (u·grad_u)) / ‖v‖, or grad_u / 10⁻¹² where the floor
// replaced the length (the composite path's clamp passes no gradient to the length there).
// From the lengths' gradient (or none): g_len · v/‖v‖, nothing at v = 0 (vector_lengths' where).
// W vectors at a time, one per lane of a vector register: the dual-number harmonics are most of
// the work, and in lanes each costs one vector operation instead of W scalar ones. The last block
// is filled up with the unit vector x̂ (its lanes discarded), so every vector goes through the
// same code whatever the rows a thread is handed.
#pragma GCC diagnostic ignored "-Wpsabi"
template <typename T, int W>
struct LanesOf {
  typedef T type __attribute__((vector_size(W * sizeof(T))));
};
template <typename T, int W>
KLAY_KERNEL_BODY void backward_lanes(const Plan& plan, int64_t first, int64_t last, const T* vectors,
                                     const T* g_lengths, const T* g, T* grad_vectors) {
  using Lanes = typename LanesOf<T, W>::type;
  static const T kFill[3] = {T(1), T(0), T(0)};
  // Allocated at the registers' alignment by hand: GCC drops a vector type's attributes when it
  // is a template argument, so std::vector<Dual<Lanes>> allocates at the baseline target's 16
  // bytes while the AVX-512 code moves 64-byte-aligned registers.
  constexpr std::align_val_t kAlignment{sizeof(Lanes)};
  const std::unique_ptr<void, void (*)(void*)> storage(
      ::operator new(plan.dim * sizeof(Dual<Lanes>), kAlignment),
      [](void* p) { ::operator delete(p, std::align_val_t{sizeof(Lanes)}); });
  Dual<Lanes>* harmonics = static_cast<Dual<Lanes>*>(storage.get());
  std::uninitialized_value_construct_n(harmonics, plan.dim);
  for (int64_t n0 = first; n0 < last; n0 += W) {
    const int lanes = static_cast<int>(std::min<int64_t>(W, last - n0));
    Direction<T> d[W];
    Lanes u[3];
    for (int l = 0; l < W; ++l) {
      d[l] = direction(plan.normalize, l < lanes ? vectors + 3 * (n0 + l) : kFill);
      for (int k = 0; k < 3; ++k) u[k][l] = d[l].u[k];
    }
    Lanes grad_u[3] = {Lanes{}, Lanes{}, Lanes{}};
    if (g) {
      Dual<Lanes> x(u[0]), y(u[1]), z(u[2]);
      x.d[0] = y.d[1] = z.d[2] = Lanes{} + T(1);
      component_harmonics<T, Dual<Lanes>>(plan, x, y, z, harmonics);
      for (int l = 1; l <= plan.lmax; ++l)
        for (int64_t i = l * l; i < (l + 1) * (l + 1); ++i) {
          Lanes gi{};
          for (int lane = 0; lane < lanes; ++lane) {
            const T value = g[(n0 + lane) * plan.dim + i];
            gi[lane] = plan.normalization == e3nn::ShNormalization::component
                           ? value
                           : value / static_cast<T>(plan.divisor[l]);
          }
          for (int k = 0; k < 3; ++k) grad_u[k] += gi * harmonics[i].d[k];
        }
    }
    for (int l = 0; l < lanes; ++l) {
      const int64_t n = n0 + l;
      const T* v = vectors + 3 * n;
      T* grad = grad_vectors + 3 * n;
      std::fill(grad, grad + 3, T(0));
      if (g) {
        const T radial = !plan.normalize || d[l].floored
                             ? T(0)
                             : d[l].u[0] * grad_u[0][l] + d[l].u[1] * grad_u[1][l] + d[l].u[2] * grad_u[2][l];
        for (int k = 0; k < 3; ++k) grad[k] = (grad_u[k][l] - radial * d[l].u[k]) / d[l].divisor;
      }
      if (g_lengths && d[l].length > T(0))
        for (int k = 0; k < 3; ++k) grad[k] += g_lengths[n] * v[k] / d[l].length;
    }
  }
}

// One entry per instruction set, each with the lanes of its widest registers; flatten inlines the
// shared harmonics formulas (e3nn::closed_form_harmonics) into each, compiled for its set.
template <typename T>
__attribute__((flatten)) void backward_lanes_baseline(const Plan& plan, int64_t first, int64_t last, const T* vectors,
                                                      const T* g_lengths, const T* g, T* grad_vectors) {
  backward_lanes<T, 16 / sizeof(T)>(plan, first, last, vectors, g_lengths, g, grad_vectors);
}
#ifdef KLAY_HAVE_AVX2_ENTRY
template <typename T>
KLAY_AVX2_ENTRY __attribute__((flatten)) void backward_lanes_avx2(const Plan& plan, int64_t first, int64_t last,
                                                                  const T* vectors, const T* g_lengths, const T* g,
                                                                  T* grad_vectors) {
  backward_lanes<T, 32 / sizeof(T)>(plan, first, last, vectors, g_lengths, g, grad_vectors);
}
template <typename T>
KLAY_AVX512_ENTRY __attribute__((flatten)) void backward_lanes_avx512(const Plan& plan, int64_t first, int64_t last,
                                                                      const T* vectors, const T* g_lengths,
                                                                      const T* g, T* grad_vectors) {
  backward_lanes<T, 64 / sizeof(T)>(plan, first, last, vectors, g_lengths, g, grad_vectors);
}
#endif

template <typename T>
void backward_kernel(const Plan& plan, int64_t count, const T* vectors, const T* g_lengths, const T* g,
                     T* grad_vectors) {
  const auto lanes = KLAY_WIDEST_ENTRY(backward_lanes, T);
  at::parallel_for(0, count, kVectorsPerTask, [&](int64_t first, int64_t last) {
    lanes(plan, first, last, vectors, g_lengths, g, grad_vectors);
  });
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Outputs (lengths [E], harmonics [E, dim]): the harmonics need the lengths anyway when
// normalising, and the layers that want both get them in one pass.
class FusedSphericalHarmonics : public torch::autograd::Function<FusedSphericalHarmonics> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& vectors, const c10::intrusive_ptr<Plan>& plan) {
    ++g_calls.forward;
    const at::Tensor v = vectors.contiguous();
    at::Tensor lengths = at::empty({v.size(0)}, v.options());
    at::Tensor out = at::empty({v.size(0), plan->dim}, v.options());
    AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "spherical_harmonics_forward", [&] {
      forward_kernel<scalar_t>(*plan, v.size(0), v.data_ptr<scalar_t>(), lengths.data_ptr<scalar_t>(),
                               out.data_ptr<scalar_t>());
    });
    ctx->save_for_backward({v});
    keep_plan(ctx, plan);
    return {lengths, out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor v = ctx->get_saved_variables()[0];
    const auto plan = kept_plan<Plan>(ctx);
    const at::Tensor &g_lengths = grad_outputs[0], &g = grad_outputs[1];
    variable_list grads(2);
    if ((!g.defined() && !g_lengths.defined()) || !ctx->needs_input_grad(0)) return grads;

    if (at::GradMode::is_enabled()) {
      ++g_calls.composite_backward;
      const auto composite = [&](const std::vector<at::Tensor>& inputs) {
        return at::cat({e3nn::vector_lengths(inputs[0]).unsqueeze(-1),
                        e3nn::spherical_harmonics(plan->lmax, inputs[0], plan->normalize, plan->normalization)},
                       -1);
      };
      const at::Tensor both = at::cat({g_lengths.defined() ? g_lengths.unsqueeze(-1) : at::zeros({v.size(0), 1}, v.options()),
                                       g.defined() ? g : at::zeros({v.size(0), plan->dim}, v.options())},
                                      -1);
      return composite_partials({v}, {true}, composite, both, grads.size());
    }

    ++g_calls.backward;
    const at::Tensor gc = g.defined() ? g.contiguous() : g, lc = g_lengths.defined() ? g_lengths.contiguous() : g_lengths;
    at::Tensor grad_v = at::empty_like(v);
    AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "spherical_harmonics_backward", [&] {
      backward_kernel<scalar_t>(*plan, v.size(0), v.data_ptr<scalar_t>(),
                                lc.defined() ? lc.data_ptr<scalar_t>() : nullptr,
                                gc.defined() ? gc.data_ptr<scalar_t>() : nullptr, grad_v.data_ptr<scalar_t>());
    });
    grads[0] = grad_v;
    return grads;
  }
};

// Whether the kernel computes the harmonics of these vectors (else the composite path does, and
// says what is wrong with them). lmax 0: Y^0 is a constant, nothing to fuse or differentiate.
bool kernel_takes(int lmax, const at::Tensor& vectors) {
  return lmax >= 1 && kernels_take({vectors}) && vectors.dim() >= 1 && vectors.size(-1) == 3;
}

// [..., 3] → lengths [...] and harmonics [..., dim].
LengthsAndHarmonics fused(int lmax, const at::Tensor& vectors, bool normalize, e3nn::ShNormalization normalization) {
  const c10::intrusive_ptr<Plan> plan = make_plan(lmax, normalize, normalization);
  std::vector<int64_t> shape = vectors.sizes().vec();
  shape.pop_back();
  const variable_list out = FusedSphericalHarmonics::apply(as_rows(vectors, 3), plan);
  const at::Tensor lengths = viewed_as(out[0], shape);
  shape.push_back(plan->dim);
  return {lengths, viewed_as(out[1], shape)};
}

}  // namespace

at::Tensor spherical_harmonics(int lmax, const at::Tensor& vectors, bool normalize,
                               e3nn::ShNormalization normalization) {
  if (!kernel_takes(lmax, vectors)) return e3nn::spherical_harmonics(lmax, vectors, normalize, normalization);
  return fused(lmax, vectors, normalize, normalization).harmonics;
}

LengthsAndHarmonics lengths_and_spherical_harmonics(int lmax, const at::Tensor& vectors,
                                                    e3nn::ShNormalization normalization) {
  if (!kernel_takes(lmax, vectors))
    return {e3nn::vector_lengths(vectors), e3nn::spherical_harmonics(lmax, vectors, true, normalization)};
  return fused(lmax, vectors, true, normalization);
}

KernelCounters spherical_harmonics_counters() { return g_calls.snapshot(); }

}  // namespace klay::kernels
