// o3.Linear as a kernel (see the header for what it computes).
#include "kernels/linear.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/accumulate.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <vector>

#include "kernels/irrep_blocks.hpp"
#include "kernels/kernel_autograd.hpp"
#include "kernels/prefetch.hpp"
#include "kernels/row_matmul.hpp"
#include "kernels/uvu_convolution.hpp"
#include "kernels/vector_units.hpp"
#include "kernels/zero_columns.hpp"

namespace klay::kernels {
namespace {

KernelCallCounts g_calls;

// Feature rows handed to a thread at a time by the gathers and scatters.
constexpr int64_t kRowsPerTask = 256;

// What a forward computes: the groups of the irreps it reads, their entries and weight blocks.
struct Plan : torch::CustomClassHolder {
  struct Group {
    int64_t d = 1, rows = 0, cols = 0;
    // The entries, `first` each one's first row (inputs) or column (outputs) of the weight block.
    std::vector<IrrepBlock> inputs, outputs;
    at::Tensor weight_index, coefficient;  // e3nn::LinearImpl::IrrepGroup's
  };
  // The module outlives the graphs built from its forwards, as the tensor product of a
  // convolution does (kernels/uvu_convolution.cpp).
  const e3nn::LinearImpl* linear = nullptr;
  bool restricted = false;
  std::vector<e3nn::Irrep> only;
  int64_t width_in = 0, width_out = 0;
  std::vector<Group> groups;
  // The input columns no group reads (their gradient is zero) and the output columns no group
  // writes (outputs without a path, or outside the columns asked for, are zero).
  ColumnRuns unread_in, unwritten_out;
  // Only some output columns were asked for: the composite forward computes the others too.
  bool columns_asked = false;

  const std::vector<e3nn::Irrep>* only_or_null() const { return restricted ? &only : nullptr; }

  // What the groups compute, by the module's composite forward (the fallback, and what a backward
  // with create_graph differentiates); a mask made here, not with the plan every call, as the
  // kernels never need it.
  at::Tensor composite(const at::Tensor& features, const at::Tensor& weight) const {
    const at::Tensor out = linear->forward_with_weight(features, weight, only_or_null());
    if (!columns_asked) return out;
    at::Tensor written = at::ones({width_out}, out.options());
    for (const auto& [first, count] : unwritten_out) written.narrow(0, first, count).zero_();
    return out * written;
  }
};

// (first, count) of each run of columns not set in `written`.
ColumnRuns unwritten_runs(const std::vector<bool>& written) {
  ColumnRuns runs;
  for (size_t c = 0; c < written.size(); ++c) {
    if (written[c]) continue;
    if (!runs.empty() && runs.back().first + runs.back().second == static_cast<int64_t>(c))
      ++runs.back().second;
    else
      runs.emplace_back(static_cast<int64_t>(c), 1);
  }
  return runs;
}

// `columns` (output columns in any order, or null: all): the multiplicity channels holding one of
// them are computed, whole; the others are zero.
c10::intrusive_ptr<Plan> make_plan(const e3nn::LinearImpl& linear, const std::vector<e3nn::Irrep>* only,
                                   const std::vector<int64_t>* columns = nullptr) {
  auto plan = c10::make_intrusive<Plan>();
  plan->linear = &linear;
  plan->restricted = only != nullptr;
  if (only) plan->only = *only;
  const e3nn::Irreps &irreps_in = linear.irreps_in(), &irreps_out = linear.irreps_out();
  const e3nn::LinearImpl::InputColumns input = linear.input_columns(only);
  const std::vector<int64_t> output_columns = irreps_out.offsets();
  plan->width_in = input.width;
  plan->width_out = irreps_out.dim();
  std::vector<bool> asked(columns ? plan->width_out : 0, false);
  if (columns)
    for (int64_t c : *columns) {
      TORCH_CHECK(c >= 0 && c < plan->width_out, "linear: output column ", c, " of ", plan->width_out);
      asked[c] = true;
    }
  std::vector<bool> read(irreps_in.size(), false), written(plan->width_out, false);
  for (const e3nn::LinearImpl::IrrepGroup& g : linear.groups()) {
    if (!e3nn::LinearImpl::computes(g.ir, only)) continue;
    Plan::Group group{g.d, g.rows, 0, {}, {}, g.weight_index, g.coefficient};
    std::vector<int64_t> block_columns;  // of g's weight block, the ones this plan computes
    for (size_t k = 0; k < g.outputs.size(); ++k) {
      const int o = g.outputs[k];
      const int64_t base = output_columns[o];
      bool extends = false;  // the previous channel was computed: a run of the same block
      for (int64_t u = 0; u < irreps_out[o].mul; ++u) {
        const int64_t first = base + u * g.d;
        const bool computed =
            !columns || std::any_of(asked.begin() + first, asked.begin() + first + g.d, [](bool a) { return a; });
        if (computed) {
          if (extends) ++group.outputs.back().mul;
          else group.outputs.push_back({first, 1, static_cast<int64_t>(block_columns.size())});
          block_columns.push_back(g.output_columns[k] + u);
          std::fill(written.begin() + first, written.begin() + first + g.d, true);
        }
        extends = computed;
      }
    }
    if (block_columns.empty()) continue;
    group.cols = static_cast<int64_t>(block_columns.size());
    if (group.cols != g.cols) {
      const at::Tensor kept = at::tensor(block_columns, at::kLong);
      group.weight_index = g.weight_index.view({g.rows, g.cols}).index_select(1, kept).reshape({-1});
      group.coefficient = g.coefficient.index_select(1, kept.to(g.coefficient.device())).contiguous();
    }
    int64_t row = 0;
    for (int i : g.inputs) {
      group.inputs.push_back({input.first[i], irreps_in[i].mul, row});
      row += irreps_in[i].mul;
      read[i] = true;
    }
    plan->groups.push_back(std::move(group));
  }
  for (size_t i = 0; i < irreps_in.size(); ++i)
    if (input.first[i] >= 0 && irreps_in[i].dim() > 0 && !read[i])
      plan->unread_in.emplace_back(input.first[i], irreps_in[i].dim());
  plan->unwritten_out = unwritten_runs(written);
  plan->columns_asked = columns != nullptr;
  return plan;
}

// Scalar entries side by side in the features are already the group's matrix (a strided view).
bool in_place(const std::vector<IrrepBlock>& blocks, int64_t d) {
  if (d != 1) return false;
  for (const IrrepBlock& b : blocks)
    if (b.column != blocks.front().column + b.first) return false;
  return true;
}

// The entries of features [n, width] as the group's component-major matrix [n·d, total].
template <typename T>
at::Tensor group_matrix(const at::Tensor& features, const std::vector<IrrepBlock>& blocks, int64_t d, int64_t total) {
  if (in_place(blocks, d)) return features.narrow(1, blocks.front().column, total);
  const int64_t n = features.size(0), width = features.size(1);
  at::Tensor matrix = at::empty({n * d, total}, features.options());
  const T* src = features.data_ptr<T>();
  T* dst = matrix.data_ptr<T>();
  at::parallel_for(0, n, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (const IrrepBlock& b : blocks)
      to_component_major(block_layout(b, d, total, width), end - begin, src + begin * width + b.column,
                         dst + begin * d * total + b.first);
  });
  return matrix;
}

// The product a·b [n·d, total] written to the entries of target [n, width] (the inverse of
// group_matrix).
template <typename T>
void product_into(const at::Tensor& a, const at::Tensor& b, at::Tensor& target, const std::vector<IrrepBlock>& blocks,
                  int64_t d, int64_t total) {
  if (in_place(blocks, d)) {
    at::Tensor view = target.narrow(1, blocks.front().column, total);
    row_matmul_out(view, a, b);
    return;
  }
  const at::Tensor product = row_matmul(a, b);
  const int64_t n = target.size(0), width = target.size(1);
  const T* src = product.data_ptr<T>();
  T* dst = target.data_ptr<T>();
  at::parallel_for(0, n, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (const IrrepBlock& b : blocks)
      to_multiplicity_major(block_layout(b, d, total, width), end - begin, src + begin * d * total + b.first,
                            dst + begin * width + b.column, /*add=*/false);
  });
}

// Feature rows gathered, multiplied and scattered at a time by grouped_product.
constexpr int64_t kRowsPerBlock = 32;

// What grouped_product computes: target's entries `outputs` = (features' entries `inputs` as the
// group's matrix) · b, b [in_total, out_total] row-major.
template <typename T>
struct GroupedProduct {
  const T* features;
  int64_t width_in;
  const std::vector<IrrepBlock>* inputs;
  int64_t in_total;
  const T* b;
  T* target;
  int64_t width_out;
  const std::vector<IrrepBlock>* outputs;
  int64_t d, out_total;
  bool gather, scatter;
};

// Feature rows [begin, end) of a grouped product, kRowsPerBlock at a time gathered into the thread's
// own scratch, multiplied and scattered, so that they stay in cache where group_matrix and
// product_into pass whole matrices through memory; the same numbers.
template <typename T>
KLAY_KERNEL_BODY void grouped_rows(const GroupedProduct<T>& p, int64_t begin, int64_t end) {
  const int64_t d = p.d, in_total = p.in_total, out_total = p.out_total;
  const ColumnSpan read = column_span(*p.inputs, d), written = column_span(*p.outputs, d);
  std::vector<T> a_block(p.gather ? kRowsPerBlock * d * in_total : 0),
      c_block(p.scatter ? kRowsPerBlock * d * out_total : 0);
  for (int64_t r0 = begin; r0 < end; r0 += kRowsPerBlock) {
    const int64_t rows = std::min(kRowsPerBlock, end - r0);
    const T* a = p.features + r0 * p.width_in + p.inputs->front().column;
    int64_t lda = p.width_in;
    if (p.gather) {
      for (int64_t r = 0; r < rows; ++r) {
        if (r0 + r + kPrefetchRowsAhead < end)
          prefetch(p.features + (r0 + r + kPrefetchRowsAhead) * p.width_in + read.first, read.count);
        gather_rows(p.features + (r0 + r) * p.width_in, p.width_in, 1, *p.inputs, d, in_total,
                    a_block.data() + r * d * in_total);
      }
      a = a_block.data();
      lda = in_total;
    }
    T* c = p.scatter ? c_block.data() : p.target + r0 * p.width_out + p.outputs->front().column;
    rows_times<T>(a, lda, p.b, out_total, c, p.scatter ? out_total : p.width_out, rows * d, in_total, out_total);
    if (p.scatter)
      for (int64_t r = 0; r < rows; ++r) {
        if (r0 + r + kPrefetchRowsAhead < end)
          prefetch_for_writing(p.target + (r0 + r + kPrefetchRowsAhead) * p.width_out + written.first, written.count);
        scatter_rows(c_block.data() + r * d * out_total, *p.outputs, d, out_total, p.target + (r0 + r) * p.width_out,
                     p.width_out, 1);
      }
  }
}

template <typename T>
void grouped_rows_baseline(const GroupedProduct<T>& p, int64_t begin, int64_t end) {
  grouped_rows(p, begin, end);
}
#ifdef KLAY_HAVE_AVX2_ENTRY
template <typename T>
KLAY_AVX2_ENTRY void grouped_rows_avx2(const GroupedProduct<T>& p, int64_t begin, int64_t end) {
  grouped_rows(p, begin, end);
}
template <typename T>
KLAY_AVX512_ENTRY void grouped_rows_avx512(const GroupedProduct<T>& p, int64_t begin, int64_t end) {
  grouped_rows(p, begin, end);
}
#endif

// grouped_rows over all rows, on the threads, in the widest vector units the CPU has. For right
// operands rows_times takes.
template <typename T>
void grouped_product(const at::Tensor& features, const std::vector<IrrepBlock>& inputs, int64_t in_total,
                     const at::Tensor& b, at::Tensor& target, const std::vector<IrrepBlock>& outputs, int64_t d,
                     int64_t out_total) {
  const GroupedProduct<T> p{features.data_ptr<T>(), features.size(1), &inputs, in_total,
                            b.data_ptr<T>(),        target.data_ptr<T>(), target.size(1), &outputs,
                            d,                      out_total,           !in_place(inputs, d), !in_place(outputs, d)};
  const auto rows = KLAY_WIDEST_ENTRY(grouped_rows, T);
  at::parallel_for(0, features.size(0), kRowsPerBlock, [&](int64_t begin, int64_t end) { rows(p, begin, end); });
}

// grouped_product where rows_times takes b, else group_matrix and product_into.
template <typename T>
void group_product(const at::Tensor& features, const std::vector<IrrepBlock>& inputs, int64_t in_total,
                   const at::Tensor& b, at::Tensor& target, const std::vector<IrrepBlock>& outputs, int64_t d,
                   int64_t out_total) {
  if (rows_times_takes(b.numel() * static_cast<int64_t>(sizeof(T)))) {
    grouped_product<T>(features, inputs, in_total, b.contiguous(), target, outputs, d, out_total);
    return;
  }
  product_into<T>(group_matrix<T>(features, inputs, d, in_total), b, target, outputs, d, out_total);
}

// The group's scaled weight block [rows, cols] (or its transpose [cols, rows], for the backward):
// weight[index] · 1/√F(o), as the composite forms it (the coefficients converted to the weight's
// type first: float64 ones here by a cast, not an ATen conversion, and the transpose written as
// such, not copied by ATen, every call of every MD step).
template <typename T>
at::Tensor weight_block(const Plan::Group& g, const at::Tensor& weight, bool transposed = false) {
  const int64_t height = transposed ? g.cols : g.rows, width = transposed ? g.rows : g.cols;
  at::Tensor block = at::empty({height, width}, weight.options());
  const int64_t* index = g.weight_index.data_ptr<int64_t>();
  const T* w = weight.data_ptr<T>();
  T* out = block.data_ptr<T>();
  const auto scale = [&](const auto* c) {
    for (int64_t i = 0; i < g.rows; ++i)
      for (int64_t j = 0; j < g.cols; ++j) {
        const int64_t k = i * g.cols + j;
        out[transposed ? j * g.rows + i : k] = w[index[k]] * static_cast<T>(c[k]);
      }
  };
  if (g.coefficient.scalar_type() == at::kDouble && g.coefficient.is_contiguous()) {
    scale(g.coefficient.data_ptr<double>());
  } else {
    const at::Tensor coefficient = g.coefficient.to(weight.scalar_type()).contiguous();
    scale(coefficient.data_ptr<T>());
  }
  return block;
}

// d(block)/d(weight) applied to the block's gradient [rows, cols]: every weight entry sits in one
// place of one block.
template <typename T>
void add_weight_gradient(const Plan::Group& g, const at::Tensor& block_gradient, at::Tensor& grad_weight) {
  const at::Tensor gb = block_gradient.contiguous();
  const at::Tensor coefficient = g.coefficient.to(grad_weight.scalar_type()).contiguous();
  const int64_t* index = g.weight_index.data_ptr<int64_t>();
  const T* d = gb.data_ptr<T>();
  const T* c = coefficient.data_ptr<T>();
  T* out = grad_weight.data_ptr<T>();
  for (int64_t j = 0; j < g.rows * g.cols; ++j) out[index[j]] += d[j] * c[j];
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class FusedLinear : public torch::autograd::Function<FusedLinear> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const c10::intrusive_ptr<Plan>& plan) {
    ++g_calls.forward;
    const at::Tensor xc = x.contiguous(), wc = weight.contiguous();
    const int64_t n = xc.size(0);
    at::Tensor out = at::empty({n, plan->width_out}, x.options());
    zero_columns(out, plan->unwritten_out);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_linear_forward", [&] {
      for (const Plan::Group& g : plan->groups)
        group_product<scalar_t>(xc, g.inputs, g.rows, weight_block<scalar_t>(g, wc), out, g.outputs, g.d, g.cols);
    });
    ctx->save_for_backward({xc, wc});
    keep_plan(ctx, plan);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1];
    const auto plan = kept_plan<Plan>(ctx);
    const at::Tensor& g = grad_outputs[0];
    variable_list grads(3);
    const bool want[2] = {ctx->needs_input_grad(0), ctx->needs_input_grad(1)};
    if (!g.defined() || !(want[0] || want[1])) return grads;

    if (at::GradMode::is_enabled()) {
      ++g_calls.composite_backward;
      const auto composite = [&](const std::vector<at::Tensor>& v) { return plan->composite(v[0], v[1]); };
      return composite_partials({x, weight}, {want[0], want[1]}, composite, g, grads.size());
    }

    ++g_calls.backward;
    const at::Tensor gc = g.contiguous();
    at::Tensor grad_x;
    if (want[0]) {
      grad_x = at::empty_like(x, at::MemoryFormat::Contiguous);
      zero_columns(grad_x, plan->unread_in);
    }
    at::Tensor grad_weight = want[1] ? at::zeros_like(weight) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_linear_backward", [&] {
      for (const Plan::Group& group : plan->groups) {
        if (want[0])
          group_product<scalar_t>(gc, group.outputs, group.cols, weight_block<scalar_t>(group, weight, true), grad_x,
                                  group.inputs, group.d, group.rows);
        if (want[1])
          add_weight_gradient<scalar_t>(group,
                                        at::mm(group_matrix<scalar_t>(x, group.inputs, group.d, group.rows).t(),
                                               group_matrix<scalar_t>(gc, group.outputs, group.d, group.cols)),
                                        grad_weight);
      }
    });
    grads[0] = grad_x;
    grads[1] = grad_weight;
    return grads;
  }
};

at::Tensor run(const e3nn::LinearImpl& linear, const at::Tensor& features, const std::vector<e3nn::Irrep>* only,
               const std::vector<int64_t>* columns = nullptr) {
  const c10::intrusive_ptr<Plan> plan = make_plan(linear, only, columns);
  // The composite forward reports features of the wrong width.
  if (!kernels_take({features, linear.weight}) || features.dim() < 1 || features.size(-1) != plan->width_in)
    return plan->composite(features, linear.weight);
  if (features.dim() == 2) return FusedLinear::apply(features, linear.weight, plan);
  std::vector<int64_t> shape(features.sizes().begin(), features.sizes().end() - 1);
  const at::Tensor x = features.reshape({c10::multiply_integers(shape), plan->width_in});
  shape.push_back(plan->width_out);
  return FusedLinear::apply(x, linear.weight, plan).view(shape);
}

}  // namespace

KernelCounters linear_counters() { return g_calls.snapshot(); }

at::Tensor linear(const e3nn::LinearImpl& linear, const at::Tensor& features) {
  return run(linear, features, nullptr);
}

at::Tensor linear(const e3nn::LinearImpl& linear, const at::Tensor& features, const std::vector<e3nn::Irrep>& only) {
  return run(linear, features, &only);
}

at::Tensor linear(const e3nn::LinearImpl& linear, const at::Tensor& features, const std::vector<e3nn::Irrep>& only,
                  const std::vector<int64_t>& columns) {
  return run(linear, features, &only, &columns);
}

}  // namespace klay::kernels
