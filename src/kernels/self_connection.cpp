// The self-connection kernel (see the header for what it computes).
#include "kernels/self_connection.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include "kernels/irrep_blocks.hpp"
#include "kernels/row_matmul.hpp"
#include "kernels/uvu_convolution.hpp"
#include "kernels/zero_columns.hpp"

namespace klay::kernels {
namespace {

KernelCallCounts g_calls;

// The paths into one output irrep entry, as columns of z and rows of its stacked weights.
struct OutputGroup {
  struct Path {
    int64_t in1, in2;   // first column of the entry in x and in the attributes
    int64_t mul1, mul2;
    int64_t weight_offset;  // of W_p [mul1, mul2, mul_out] in the flat weights
    double scale;       // path coefficient times the Wigner-3j diagonal
    int64_t column;     // first column of z, (u, v) row-major
    // The first path of the backward's order (groups, then their paths) to reach its x entry:
    // it writes that entry's gradient, the later ones add to it.
    bool writes_grad_x = false;
    int64_t entry1;  // its x entry's index in irreps_in1
  };
  int64_t out_offset = 0, mul_out = 0, d = 1, width = 0;
  std::vector<Path> paths;
};

struct Plan : torch::CustomClassHolder {
  std::vector<OutputGroup> groups;
  ColumnRuns unwritten_out;  // the outputs no path reaches: zero
  ColumnRuns unread_x;       // the columns of x no path reads: their gradient is zero
  std::shared_ptr<const e3nn::TensorProductImpl> tp;  // for the composite (double-backward) path
};

c10::intrusive_ptr<Plan> make_plan(const e3nn::TensorProductImpl& tp) {
  for (const e3nn::MulIrrep& entry : tp.irreps_in2())
    if (entry.ir.l != 0) return {};
  const std::vector<int64_t> offsets1 = tp.irreps_in1().offsets(), offsets2 = tp.irreps_in2().offsets(),
                             offsets_out = tp.irreps_out().offsets();
  std::vector<OutputGroup> by_output(tp.irreps_out().size());
  for (size_t o = 0; o < by_output.size(); ++o) {
    by_output[o].out_offset = offsets_out[o];
    by_output[o].mul_out = tp.irreps_out()[o].mul;
    by_output[o].d = tp.irreps_out()[o].ir.dim();
  }
  int64_t weight_offset = 0;
  for (const e3nn::TensorProductImpl::Path& p : tp.paths()) {
    if (p.ins.mode != e3nn::ConnectionMode::uvw || !p.ins.has_weight) return {};
    const std::optional<double> coupling = e3nn::scalar_coupling(p.w3j);
    if (!coupling) return {};
    if (p.mul1 > 0 && p.mul2 > 0 && p.mul_out > 0) {
      OutputGroup& group = by_output[p.ins.i_out];
      group.paths.push_back({offsets1[p.ins.i_in1], offsets2[p.ins.i_in2], p.mul1, p.mul2, weight_offset,
                             p.coefficient * *coupling, group.width, false, p.ins.i_in1});
      group.width += p.mul1 * p.mul2;
    }
    weight_offset += p.weight_size;
  }
  auto plan = c10::make_intrusive<Plan>();
  std::vector<bool> read(tp.irreps_in1().size(), false);
  for (OutputGroup& group : by_output) {
    if (group.paths.empty()) {
      if (group.mul_out > 0) plan->unwritten_out.emplace_back(group.out_offset, group.mul_out * group.d);
      continue;
    }
    for (OutputGroup::Path& p : group.paths) {
      p.writes_grad_x = !read[p.entry1];
      read[p.entry1] = true;
    }
    plan->groups.push_back(std::move(group));
  }
  for (size_t e = 0; e < read.size(); ++e)
    if (!read[e] && tp.irreps_in1()[e].dim() > 0) plan->unread_x.emplace_back(offsets1[e], tp.irreps_in1()[e].dim());
  plan->tp = std::dynamic_pointer_cast<const e3nn::TensorProductImpl>(tp.shared_from_this());
  return plan;
}

// The group's paths' weights stacked [width, mul_out] (or its transpose [mul_out, width]), each
// scaled by its path's scale as ATen scales a tensor of T by a double: in T. A loop, where narrow,
// view, mul and cat per path were a dozen ATen operations per call between the threads' work.
template <typename T>
std::vector<T> stacked_weights(const OutputGroup& group, const T* weight, bool transposed) {
  std::vector<T> stacked(group.width * group.mul_out);
  for (const OutputGroup::Path& p : group.paths) {
    const T scale = static_cast<T>(p.scale);
    const T* w = weight + p.weight_offset;
    for (int64_t r = 0; r < p.mul1 * p.mul2; ++r)
      for (int64_t c = 0; c < group.mul_out; ++c) {
        const int64_t row = p.column + r;
        stacked[transposed ? c * group.width + row : row * group.mul_out + c] = w[r * group.mul_out + c] * scale;
      }
  }
  return stacked;
}

// Rows of a [N, width] matrix (x, attributes, output) by their row length.
template <typename T>
struct Rows {
  T* data;
  int64_t stride;
  T* operator[](int64_t n) const { return data + n * stride; }
};

// z[(n, k), column + u·mul2 + v] = x[n, in1 + u·d + k]·a[n, in2 + v] for rows n in [first, last),
// z holding those rows from its start.
template <typename T>
void fill_products(const OutputGroup& group, int64_t first, int64_t last, Rows<const T> x, Rows<const T> a, T* z) {
  const int64_t d = group.d, width = group.width;
  for (int64_t n = first; n < last; ++n)
    for (int64_t k = 0; k < d; ++k) {
      T* zr = z + ((n - first) * d + k) * width;
      for (const OutputGroup::Path& p : group.paths) {
        const T* xp = x[n] + p.in1;
        const T* ap = a[n] + p.in2;
        for (int64_t u = 0; u < p.mul1; ++u) {
          const T xv = xp[u * d + k];
          T* zu = zr + p.column + u * p.mul2;
          for (int64_t v = 0; v < p.mul2; ++v) zu[v] = xv * ap[v];
        }
      }
    }
}

// Between the output layout out[n, offset + w·d + k] and y[(n, k), w] (the entry's component-major
// rows), for rows [first, last), y holding those rows from its start; added to out's entries when
// `add`, else written over them.
template <typename T>
void scatter_output(const OutputGroup& group, int64_t first, int64_t last, const T* y, Rows<T> out, bool add) {
  const EntryLayout entry{group.mul_out, group.d, out.stride, group.d * group.mul_out, group.mul_out};
  to_multiplicity_major(entry, last - first, y, out[first] + group.out_offset, add);
}
template <typename T>
void gather_output(const OutputGroup& group, int64_t first, int64_t last, Rows<const T> g, T* y) {
  const EntryLayout entry{group.mul_out, group.d, g.stride, group.d * group.mul_out, group.mul_out};
  to_component_major(entry, last - first, g[first] + group.out_offset, y);
}

// From gz[(n, k), (p, u, v)], the gradient of z for rows [first, last) (gz holding those rows from
// its start): grad_x += Σ_v gz·a and grad_a += Σ_{u,k} gz·x, reading gz row by row. Each sum is
// kept in a register: summing into grad_a[v] element by element chained every step through memory
// (a load, add and store of the same address).
template <typename T>
void products_backward(const OutputGroup& group, int64_t first, int64_t last, Rows<const T> x, Rows<const T> a,
                       const T* gz, Rows<T> grad_x, Rows<T> grad_a) {
  const int64_t d = group.d, width = group.width;
  for (int64_t n = first; n < last; ++n) {
    const T* gn = gz + (n - first) * d * width;
    for (const OutputGroup::Path& p : group.paths) {
      const T* xp = x[n] + p.in1;
      const T* ap = a[n] + p.in2;
      if (grad_x.data)
        for (int64_t k = 0; k < d; ++k)
          for (int64_t u = 0; u < p.mul1; ++u) {
            const T* gu = gn + k * width + p.column + u * p.mul2;
            T sum = 0;
            for (int64_t v = 0; v < p.mul2; ++v) sum += gu[v] * ap[v];
            T& target = grad_x[n][p.in1 + u * d + k];
            target = p.writes_grad_x ? sum : target + sum;
          }
      if (grad_a.data)
        for (int64_t v = 0; v < p.mul2; ++v) {
          T sum = 0;
          for (int64_t k = 0; k < d; ++k)
            for (int64_t u = 0; u < p.mul1; ++u) sum += gn[k * width + p.column + u * p.mul2 + v] * xp[u * d + k];
          grad_a[n][p.in2 + v] += sum;
        }
    }
  }
}

// Rows handed to the blocked forward and backward at a time: their z and y stay in cache (the
// products run in rows_times's register tiles whatever the weights' size; past 256 KiB of stacked
// weights those run below BLAS's rate, 0.75x at 512 KiB).
constexpr int64_t kRowsPerBlock = 32;

// f(first, last) over the rows, kRowsPerBlock at a time, on every thread.
template <typename F>
void for_each_row_block(int64_t rows, const F& f) {
  at::parallel_for(0, rows, kRowsPerBlock, [&](int64_t begin, int64_t end) {
    for (int64_t first = begin; first < end; first += kRowsPerBlock) f(first, std::min(first + kRowsPerBlock, end));
  });
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The kernel's forward, written over `out` ([N, dim_out], contiguous) or added to it, and its
// backward (the gradients of x, the attributes and the weights, first in a list of num_grads), for
// the two autograd functions below.
at::Tensor product_forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& attrs, const at::Tensor& weight,
                           const at::Tensor& out, bool add, const c10::intrusive_ptr<Plan>& plan) {
  ++g_calls.forward;
  const at::Tensor xc = x.contiguous(), ac = attrs.contiguous(), wc = weight.contiguous();
  const int64_t rows = xc.size(0), dim_out = out.size(1);
  // Per block of rows: z = x ⊗ attributes, y = z · W, scattered to the output (rows_times).
  for (const OutputGroup& group : plan->groups) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "self_connection_forward", [&] {
      const std::vector<scalar_t> w = stacked_weights(group, wc.data_ptr<scalar_t>(), /*transposed=*/false);
      const Rows<const scalar_t> xr{xc.data_ptr<scalar_t>(), xc.size(1)}, ar{ac.data_ptr<scalar_t>(), ac.size(1)};
      const Rows<scalar_t> outr{out.data_ptr<scalar_t>(), dim_out};
      for_each_row_block(rows, [&](int64_t first, int64_t last) {
        std::vector<scalar_t> z(kRowsPerBlock * group.d * group.width), y(kRowsPerBlock * group.d * group.mul_out);
        fill_products<scalar_t>(group, first, last, xr, ar, z.data());
        rows_times<scalar_t>(z.data(), group.width, w.data(), group.mul_out, y.data(), group.mul_out,
                             (last - first) * group.d, group.width, group.mul_out);
        scatter_output<scalar_t>(group, first, last, y.data(), outr, add);
      });
    });
  }
  ctx->save_for_backward({xc, ac, wc});
  keep_plan(ctx, plan);
  return out;
}

variable_list product_backward(AutogradContext* ctx, const variable_list& grad_outputs, size_t num_grads) {
  const variable_list saved = ctx->get_saved_variables();
  const at::Tensor &x = saved[0], &attrs = saved[1], &weight = saved[2];
  const auto plan = kept_plan<Plan>(ctx);
  const at::Tensor& g = grad_outputs[0];
  variable_list grads(num_grads);
  const bool want[3] = {ctx->needs_input_grad(0), ctx->needs_input_grad(1), ctx->needs_input_grad(2)};
  if (!g.defined() || !(want[0] || want[1] || want[2])) return grads;

  if (at::GradMode::is_enabled()) {
    ++g_calls.composite_backward;
    const auto composite = [&](const std::vector<at::Tensor>& v) {
      return plan->tp->forward_with_weight(v[0], v[1], v[2]);
    };
    return composite_partials({x, attrs, weight}, {want[0], want[1], want[2]}, composite, g, grads.size());
  }

  ++g_calls.backward;
  const at::Tensor gc = g.contiguous();
  const int64_t rows = x.size(0);
  // Each entry of x's gradient is written by its first path (writes_grad_x), or zero when unread.
  at::Tensor grad_x;
  if (want[0]) {
    grad_x = at::empty_like(x, at::MemoryFormat::Contiguous);
    zero_columns(grad_x, plan->unread_x);
  }
  at::Tensor grad_a = want[1] ? at::zeros_like(attrs) : at::Tensor();
  at::Tensor grad_w = want[2] ? at::zeros_like(weight) : at::Tensor();
  for (const OutputGroup& group : plan->groups) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "self_connection_backward", [&] {
      const Rows<const scalar_t> xr{x.data_ptr<scalar_t>(), x.size(1)}, ar{attrs.data_ptr<scalar_t>(), attrs.size(1)},
          gr{gc.data_ptr<scalar_t>(), gc.size(1)};
      auto rows_of = [](at::Tensor& t) {
        return Rows<scalar_t>{t.defined() ? t.data_ptr<scalar_t>() : nullptr, t.defined() ? t.size(1) : 0};
      };
      const Rows<scalar_t> grad_xr = rows_of(grad_x), grad_ar = rows_of(grad_a);
      // Per block of rows: gy gathered from the output's gradient, gz = gy · Wᵀ, into x and the attributes.
      if (want[0] || want[1]) {
        const std::vector<scalar_t> wt = stacked_weights(group, weight.data_ptr<scalar_t>(), /*transposed=*/true);
        for_each_row_block(rows, [&](int64_t first, int64_t last) {
          std::vector<scalar_t> gy(kRowsPerBlock * group.d * group.mul_out),
              gz(kRowsPerBlock * group.d * group.width);
          gather_output<scalar_t>(group, first, last, gr, gy.data());
          rows_times<scalar_t>(gy.data(), group.mul_out, wt.data(), group.width, gz.data(), group.width,
                               (last - first) * group.d, group.mul_out, group.width);
          products_backward<scalar_t>(group, first, last, xr, ar, gz.data(), grad_xr, grad_ar);
        });
      }
      // The weights' gradient (training) sums over every row: z and gy whole, then one product.
      if (want[2]) {
        const at::Tensor z = at::empty({rows * group.d, group.width}, x.options());
        const at::Tensor gy = at::empty({rows * group.d, group.mul_out}, x.options());
        for_each_row_block(rows, [&](int64_t first, int64_t last) {
          fill_products<scalar_t>(group, first, last, xr, ar, z.data_ptr<scalar_t>() + first * group.d * group.width);
          gather_output<scalar_t>(group, first, last, gr, gy.data_ptr<scalar_t>() + first * group.d * group.mul_out);
        });
        const at::Tensor gw = at::mm(z.t(), gy);  // [width, mul_out]
        for (const OutputGroup::Path& p : group.paths)
          grad_w.narrow(0, p.weight_offset, p.mul1 * p.mul2 * group.mul_out)
              .copy_(gw.narrow(0, p.column, p.mul1 * p.mul2).reshape(-1) * p.scale);
      }
    });
  }
  grads[0] = grad_x;
  grads[1] = grad_a;
  grads[2] = grad_w;
  return grads;
}

class SelfConnection : public torch::autograd::Function<SelfConnection> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& attrs,
                            const at::Tensor& weight, const c10::intrusive_ptr<Plan>& plan) {
    const int64_t rows = x.size(0), dim_out = plan->tp->irreps_out().dim();
    at::Tensor out = at::empty({rows, dim_out}, x.options());
    zero_columns(out, plan->unwritten_out);
    return product_forward(ctx, x, attrs, weight, out, /*add=*/false, plan);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return product_backward(ctx, grad_outputs, 4);
  }
};

// sum + the product, written into sum's storage: an in-place operation to autograd (mark_dirty),
// so that a convolution's message plus its self-connection costs no zero-filled product and no
// separate addition.
class AddedSelfConnection : public torch::autograd::Function<AddedSelfConnection> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& attrs,
                            const at::Tensor& weight, const at::Tensor& sum, const c10::intrusive_ptr<Plan>& plan) {
    ctx->mark_dirty({sum});
    return product_forward(ctx, x, attrs, weight, sum, /*add=*/true, plan);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    variable_list grads = product_backward(ctx, grad_outputs, 5);
    if (ctx->needs_input_grad(3)) grads[3] = grad_outputs[0];
    return grads;
  }
};

}  // namespace

bool self_connection_supports(const e3nn::TensorProductImpl& tp) { return static_cast<bool>(make_plan(tp)); }

KernelCounters self_connection_counters() { return g_calls.snapshot(); }

namespace {

at::Tensor run(const e3nn::TensorProductImpl& tp, const at::Tensor& x, const at::Tensor& attrs,
               const at::Tensor& weight, const at::Tensor& sum) {
  const at::Tensor& w = tp.internal_weights() ? tp.weight : weight;
  const bool fitting = x.dim() == 2 && attrs.dim() == 2 && x.size(0) == attrs.size(0) &&
                       x.size(1) == tp.irreps_in1().dim() && attrs.size(1) == tp.irreps_in2().dim() &&
                       w.defined() && w.dim() == 1 && w.size(0) == tp.weight_numel();
  const c10::intrusive_ptr<Plan> plan =
      fitting && kernels_take({x, attrs, w, sum}) ? make_plan(tp) : c10::intrusive_ptr<Plan>();
  // Written in place only where autograd allows it and nothing else sees the storage change
  // through another view; otherwise the sum is a new tensor.
  const bool in_place = plan && sum.defined() && sum.dim() == 2 && sum.size(0) == x.size(0) &&
                        sum.size(1) == tp.irreps_out().dim() && sum.is_contiguous() && !sum.is_view() &&
                        !(sum.is_leaf() && sum.requires_grad());
  if (in_place) return AddedSelfConnection::apply(x, attrs, w, sum, plan);
  const at::Tensor product = plan ? SelfConnection::apply(x, attrs, w, plan) : tp.forward(x, attrs, weight);
  return sum.defined() ? sum + product : product;
}

}  // namespace

at::Tensor self_connection(const e3nn::TensorProductImpl& tp, const at::Tensor& x, const at::Tensor& attrs,
                           const at::Tensor& weight) {
  return run(tp, x, attrs, weight, at::Tensor());
}

at::Tensor add_self_connection(at::Tensor sum, const e3nn::TensorProductImpl& tp, const at::Tensor& x,
                               const at::Tensor& attrs, const at::Tensor& weight) {
  return run(tp, x, attrs, weight, sum);
}

}  // namespace klay::kernels
