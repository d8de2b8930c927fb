// e3nn.o3.Linear, docs/layers.md#linear.
#include "e3nn/linear.hpp"

#include <ATen/ATen.h>
#include <c10/util/accumulate.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "base/error.hpp"

namespace klay::e3nn {

LinearImpl::LinearImpl(Irreps irreps_in, Irreps irreps_out, at::TensorOptions options)
    : irreps_in_(std::move(irreps_in)), irreps_out_(std::move(irreps_out)) {
  const size_t n_in = irreps_in_.size(), n_out = irreps_out_.size();

  // Weight offset of each instruction, in e3nn's instruction order (i_in-major).
  std::map<std::pair<int, int>, int64_t> weight_offset;
  std::vector<int64_t> fan_in(n_out, 0);
  std::vector<bool> reached(n_out, false);
  for (size_t i = 0; i < n_in; ++i) {
    for (size_t o = 0; o < n_out; ++o) {
      if (irreps_in_[i].ir != irreps_out_[o].ir) continue;
      weight_offset[{static_cast<int>(i), static_cast<int>(o)}] = weight_numel_;
      weight_numel_ += irreps_in_[i].mul * irreps_out_[o].mul;
      fan_in[o] += irreps_in_[i].mul;
      if (irreps_in_[i].mul > 0 && irreps_out_[o].mul > 0) reached[o] = true;
    }
  }

  // One group per irrep present on both sides, in order of first appearance in irreps_in.
  std::vector<Irrep> group_irreps;
  for (const auto& entry : irreps_in_)
    if (irreps_out_.contains(entry.ir) &&
        std::find(group_irreps.begin(), group_irreps.end(), entry.ir) == group_irreps.end())
      group_irreps.push_back(entry.ir);
  for (const Irrep& ir : group_irreps) {
    IrrepGroup g;
    g.ir = ir;
    g.d = ir.dim();
    for (size_t i = 0; i < n_in; ++i)
      if (irreps_in_[i].ir == ir) {
        g.inputs.push_back(static_cast<int>(i));
        g.rows += irreps_in_[i].mul;
      }
    for (size_t o = 0; o < n_out; ++o)
      if (irreps_out_[o].ir == ir) {
        g.outputs.push_back(static_cast<int>(o));
        g.output_columns.push_back(g.cols);
        g.cols += irreps_out_[o].mul;
      }
    std::vector<int64_t> index(g.rows * g.cols);
    std::vector<double> coefficient(g.rows * g.cols);
    int64_t row0 = 0;
    for (int i : g.inputs) {
      const int64_t mul_in = irreps_in_[i].mul;
      for (size_t k = 0; k < g.outputs.size(); ++k) {
        const int o = g.outputs[k];
        const int64_t mul_out = irreps_out_[o].mul, col0 = g.output_columns[k];
        const int64_t offset = weight_offset.at({i, o});
        const double alpha = 1.0 / std::sqrt(static_cast<double>(fan_in[o] > 0 ? fan_in[o] : 1));
        for (int64_t u = 0; u < mul_in; ++u)
          for (int64_t w = 0; w < mul_out; ++w) {
            index[(row0 + u) * g.cols + col0 + w] = offset + u * mul_out + w;
            coefficient[(row0 + u) * g.cols + col0 + w] = alpha;
          }
      }
      row0 += mul_in;
    }
    g.weight_index = at::tensor(index, at::kLong);
    g.coefficient = at::tensor(coefficient, options.dtype(at::kDouble)).view({g.rows, g.cols}).to(options);
    groups_.push_back(std::move(g));
  }

  if (weight_numel_ > 0)
    weight = register_parameter("weight", at::randn({weight_numel_}, options));
  else
    weight = register_buffer("weight", at::empty({0}, options));
  register_buffer("bias", at::empty({0}, options));
  std::vector<at::Tensor> mask;
  for (size_t o = 0; o < n_out; ++o)
    mask.push_back(at::full({irreps_out_[o].dim()}, reached[o] ? 1.0 : 0.0, options));
  register_buffer("output_mask", mask.empty() ? at::empty({0}, options) : at::cat(mask));
}

at::Tensor LinearImpl::forward(const at::Tensor& features) const { return forward_with_weight(features, weight, nullptr); }

at::Tensor LinearImpl::forward(const at::Tensor& features, const std::vector<Irrep>& only) const {
  return forward_with_weight(features, weight, &only);
}

bool LinearImpl::computes(const Irrep& ir, const std::vector<Irrep>* only) {
  return !only || std::find(only->begin(), only->end(), ir) != only->end();
}

LinearImpl::InputColumns LinearImpl::input_columns(const std::vector<Irrep>* only) const {
  InputColumns columns;
  for (const MulIrrep& entry : irreps_in_) {
    columns.first.push_back(computes(entry.ir, only) ? columns.width : -1);
    if (computes(entry.ir, only)) columns.width += entry.dim();
  }
  return columns;
}

at::Tensor LinearImpl::forward_with_weight(const at::Tensor& features, const at::Tensor& weight,
                                           const std::vector<Irrep>* only) const {
  // The input's blocks: every entry of irreps_in, or only those of the irreps in `only`.
  const InputColumns input = input_columns(only);
  std::vector<int64_t> widths;
  std::vector<int> block_of(irreps_in_.size(), -1);
  for (size_t i = 0; i < irreps_in_.size(); ++i)
    if (input.first[i] >= 0) {
      block_of[i] = static_cast<int>(widths.size());
      widths.push_back(irreps_in_[i].dim());
    }
  const int64_t width = input.width;
  if (features.dim() < 1 || features.size(-1) != width)
    throw Error("o3.Linear(" + irreps_in_.to_string() + " -> " + irreps_out_.to_string() + "): input has width " +
                std::to_string(features.dim() ? features.size(-1) : 0) + ", expected " + std::to_string(width));
  std::vector<int64_t> shape(features.sizes().begin(), features.sizes().end() - 1);
  const int64_t n = c10::multiply_integers(shape);
  const at::Tensor x = features.reshape({n, width});
  const std::vector<at::Tensor> blocks = x.split_with_sizes(widths, 1);

  std::vector<at::Tensor> pieces(irreps_out_.size());
  for (const IrrepGroup& g : groups_) {
    if (!computes(g.ir, only)) continue;
    std::vector<at::Tensor> inputs;
    for (int i : g.inputs)
      inputs.push_back(blocks[block_of[i]].reshape({n, irreps_in_[i].mul, g.d}));
    // [n, d, Σ mul_in] @ [Σ mul_in, Σ mul_out]: one matmul over n·d rows for every instruction of the group.
    // Contiguous first: libtorch 1.13's matmul does not fold a transposed 3-d operand into one mm
    // but runs a bmm of n tiny products, each a select and a dispatch (a third of an MD step).
    const at::Tensor stacked = (inputs.size() == 1 ? inputs[0] : at::cat(inputs, 1)).transpose(1, 2).contiguous();
    // The coefficients are not state, so a model cast to float32 leaves them in float64.
    const at::Tensor matrix =
        weight.index_select(0, g.weight_index).view({g.rows, g.cols}) * g.coefficient.to(weight.scalar_type());
    const at::Tensor result = at::matmul(stacked, matrix);
    std::vector<int64_t> column_counts;
    for (int o : g.outputs) column_counts.push_back(irreps_out_[o].mul);
    const std::vector<at::Tensor> columns = result.split_with_sizes(column_counts, 2);
    for (size_t k = 0; k < g.outputs.size(); ++k) {
      const int o = g.outputs[k];
      pieces[o] = columns[k].transpose(1, 2).reshape({n, irreps_out_[o].dim()});
    }
  }
  for (size_t o = 0; o < pieces.size(); ++o)
    if (!pieces[o].defined()) pieces[o] = at::zeros({n, irreps_out_[o].dim()}, x.options());
  shape.push_back(irreps_out_.dim());
  return (pieces.empty() ? at::zeros({n, 0}, x.options()) : at::cat(pieces, 1)).view(shape);
}

}  // namespace klay::e3nn
