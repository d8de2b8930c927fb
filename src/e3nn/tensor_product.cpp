// e3nn.o3.TensorProduct / FullyConnectedTensorProduct / ElementwiseTensorProduct,
// docs/layers.md#tensor-product.
#include "e3nn/tensor_product.hpp"

#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <c10/util/accumulate.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "e3nn/wigner_3j.hpp"
#include "base/error.hpp"

namespace klay::e3nn {
namespace {

int64_t path_elements(ConnectionMode mode, int64_t mul1, int64_t mul2) {
  switch (mode) {
    case ConnectionMode::uvw: return mul1 * mul2;
    case ConnectionMode::uvu: return mul2;
    case ConnectionMode::uuu: return 1;
  }
  return 0;
}

const char* mode_name(ConnectionMode mode) {
  switch (mode) {
    case ConnectionMode::uvw: return "uvw";
    case ConnectionMode::uvu: return "uvu";
    case ConnectionMode::uuu: return "uuu";
  }
  return "?";
}

// e3nn's generated code handles these paths with closed forms instead of a stored 3j buffer.
bool is_specialised(const TPInstruction& ins, int l1, int l2, int l3) {
  return l1 == 0 || l2 == 0 || l3 == 0 || (ins.mode == ConnectionMode::uuu && l1 == 1 && l2 == 1 && l3 == 1);
}

std::string w3j_buffer_name(int l1, int l2, int l3) {
  return "_w3j_" + std::to_string(l1) + "_" + std::to_string(l2) + "_" + std::to_string(l3);
}

}  // namespace

TensorProductImpl::TensorProductImpl(Irreps irreps_in1, Irreps irreps_in2, Irreps irreps_out,
                                     std::vector<TPInstruction> instructions, bool internal_weights,
                                     at::TensorOptions options)
    : irreps_in1_(std::move(irreps_in1)),
      irreps_in2_(std::move(irreps_in2)),
      irreps_out_(std::move(irreps_out)),
      instructions_(std::move(instructions)),
      internal_weights_(internal_weights) {
  const std::string where = "TensorProduct(" + irreps_in1_.to_string() + " x " + irreps_in2_.to_string() + " -> " +
                            irreps_out_.to_string() + ")";
  std::vector<int64_t> elements_into(irreps_out_.size(), 0);
  for (const auto& ins : instructions_) {
    if (ins.i_in1 < 0 || ins.i_in1 >= static_cast<int>(irreps_in1_.size()) || ins.i_in2 < 0 ||
        ins.i_in2 >= static_cast<int>(irreps_in2_.size()) || ins.i_out < 0 ||
        ins.i_out >= static_cast<int>(irreps_out_.size()))
      throw Error(where + ": instruction refers to an entry that does not exist");
    const MulIrrep &e1 = irreps_in1_[ins.i_in1], &e2 = irreps_in2_[ins.i_in2], &eo = irreps_out_[ins.i_out];
    const auto allowed = irrep_product(e1.ir, e2.ir);
    if (std::find(allowed.begin(), allowed.end(), eo.ir) == allowed.end())
      throw Error(where + ": " + eo.ir.to_string() + " is not in " + e1.ir.to_string() + " x " + e2.ir.to_string());
    const bool weighted_mode = ins.mode != ConnectionMode::uuu;
    if (ins.has_weight != weighted_mode)
      throw Error(where + ": mode " + mode_name(ins.mode) + (weighted_mode ? " needs" : " does not support") +
                  " weights here");
    if ((ins.mode == ConnectionMode::uvu && eo.mul != e1.mul) ||
        (ins.mode == ConnectionMode::uuu && (e2.mul != e1.mul || eo.mul != e1.mul)))
      throw Error(where + ": multiplicities do not fit mode " + mode_name(ins.mode));
    elements_into[ins.i_out] += path_elements(ins.mode, e1.mul, e2.mul);
  }

  auto compiled = register_module("_compiled_main_left_right", std::make_shared<torch::nn::Module>());
  std::map<std::tuple<int, int, int>, at::Tensor> w3j_of;
  // Buffers first, so a triple shared by a specialised and a generic path reads the buffer everywhere.
  for (const auto& ins : instructions_) {
    const int l1 = irreps_in1_[ins.i_in1].ir.l, l2 = irreps_in2_[ins.i_in2].ir.l, l3 = irreps_out_[ins.i_out].ir.l;
    if (!is_specialised(ins, l1, l2, l3) && !w3j_of.count({l1, l2, l3}))
      w3j_of[{l1, l2, l3}] = compiled->register_buffer(w3j_buffer_name(l1, l2, l3), wigner_3j(l1, l2, l3).to(options));
  }
  std::vector<bool> reached(irreps_out_.size(), false);
  for (const auto& ins : instructions_) {
    const MulIrrep &e1 = irreps_in1_[ins.i_in1], &e2 = irreps_in2_[ins.i_in2], &eo = irreps_out_[ins.i_out];
    const int l1 = e1.ir.l, l2 = e2.ir.l, l3 = eo.ir.l;
    auto& w3j = w3j_of[{l1, l2, l3}];
    if (!w3j.defined()) w3j = wigner_3j(l1, l2, l3).to(options);
    Path path{ins, e1.mul, e2.mul, eo.mul, e1.ir.dim(), e2.ir.dim(), eo.ir.dim(), 0, 0.0, w3j};
    if (ins.mode == ConnectionMode::uvw) path.weight_size = e1.mul * e2.mul * eo.mul;
    if (ins.mode == ConnectionMode::uvu) path.weight_size = e1.mul * e2.mul;
    weight_numel_ += path.weight_size;
    double alpha = static_cast<double>(eo.ir.dim());
    if (elements_into[ins.i_out] > 0) alpha /= static_cast<double>(elements_into[ins.i_out]);
    path.coefficient = std::sqrt(alpha * ins.path_weight);
    // e3nn: the output is reached if some path into it has a nonzero weight and no empty dimension.
    if (ins.path_weight != 0 && e1.mul > 0 && e2.mul > 0 && eo.mul > 0) reached[ins.i_out] = true;
    paths_.push_back(std::move(path));
  }

  if (internal_weights_ && weight_numel_ > 0)
    weight = register_parameter("weight", at::randn({weight_numel_}, options));
  else
    weight = register_buffer("weight", at::empty({0}, options));
  std::vector<at::Tensor> mask;
  for (size_t o = 0; o < irreps_out_.size(); ++o)
    mask.push_back(at::full({irreps_out_[o].dim()}, reached[o] ? 1.0 : 0.0, options));
  register_buffer("output_mask", mask.empty() ? at::empty({0}, options) : at::cat(mask));
}

RestrictedTensorProduct restrict_outputs(const TensorProductImpl& tp, const std::vector<Irrep>& irreps, bool compact) {
  const auto is_kept = [&](const Irrep& ir) { return std::find(irreps.begin(), irreps.end(), ir) != irreps.end(); };
  // An output entry's index in the restricted product (-1: dropped from a compact one).
  std::vector<int> out_index(tp.irreps_out().size(), -1);
  int kept_outputs = 0;
  for (size_t o = 0; o < out_index.size(); ++o) {
    if (!compact) out_index[o] = static_cast<int>(o);
    else if (is_kept(tp.irreps_out()[o].ir)) out_index[o] = kept_outputs++;
  }
  std::vector<TPInstruction> kept;
  std::vector<size_t> kept_paths;
  std::vector<int64_t> weight_columns;
  int64_t offset = 0;
  for (size_t k = 0; k < tp.paths_.size(); ++k) {
    const TensorProductImpl::Path& path = tp.paths_[k];
    if (is_kept(tp.irreps_out()[path.ins.i_out].ir)) {
      kept.push_back(path.ins);
      kept.back().i_out = out_index[path.ins.i_out];
      kept_paths.push_back(k);
      for (int64_t w = 0; w < path.weight_size; ++w) weight_columns.push_back(offset + w);
    }
    offset += path.weight_size;
  }
  RestrictedTensorProduct restricted;
  if (kept.empty()) return restricted;
  const Irreps irreps_out = compact ? tp.irreps_out().keeping(irreps) : tp.irreps_out();
  restricted.tp = TensorProduct(tp.irreps_in1(), tp.irreps_in2(), irreps_out, std::move(kept), false,
                                tp.paths_.front().w3j.options());
  for (size_t k = 0; k < kept_paths.size(); ++k) restricted.tp->paths_[k].w3j = tp.paths_[kept_paths[k]].w3j;
  restricted.weight_columns = at::tensor(weight_columns, at::kLong);
  return restricted;
}

// s[n, u, c] = Σ_i a[n, u, i] t[n, i, c]. The contracted axis is a 2l+1 ≤ ~13 wide irrep axis, so one
// broadcast multiply-add per i over all rows beats a batched matmul of n tiny matrices by far.
// unbind, not select per i: its backward is one stack instead of a zero-filled full gradient per i.
namespace {
at::Tensor contract_irrep_axis(const at::Tensor& a, const at::Tensor& t) {
  const std::vector<at::Tensor> a_i = a.unbind(2), t_i = t.unbind(1);
  at::Tensor s = a_i[0].unsqueeze(-1) * t_i[0].unsqueeze(1);
  for (size_t i = 1; i < a_i.size(); ++i) s = s.addcmul(a_i[i].unsqueeze(-1), t_i[i].unsqueeze(1));
  return s;
}

}  // namespace

// W[0,0,0] when a [d1, 1, d3] Wigner-3j block is that number times the identity (l2 = 0, as e3nn
// computes it), read from the buffer itself since loading weights may overwrite it; else nothing.
std::optional<double> scalar_coupling(const at::Tensor& w3j) {
  if (w3j.size(1) != 1 || w3j.size(0) != w3j.size(2) || !w3j.device().is_cpu()) return std::nullopt;
  const at::Tensor c = w3j.to(at::kDouble).contiguous();
  const double* v = c.data_ptr<double>();
  const int64_t d = w3j.size(0);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t k = 0; k < d; ++k)
      if (v[i * d + k] != (i == k ? v[0] : 0.0)) return std::nullopt;
  return v[0];
}
// a [n, mul1, d1], b [n, mul2, d2], w [n or 1, weight_size] → [n, mul_out, d3] (without the coefficient).
at::Tensor TensorProductImpl::path_output(const Path& p, const at::Tensor& a, const at::Tensor& b,
                                          const at::Tensor& w) const {
  const int64_t n = a.size(0);
  // A computed (unregistered) w3j constant stays float64 when the model is cast to float32.
  const at::Tensor w3j = p.w3j.to(a.scalar_type());
  if (p.ins.mode == ConnectionMode::uuu) {
    const at::Tensor outer = (a.unsqueeze(-1) * b.unsqueeze(-2)).reshape({n * p.mul1, p.d1 * p.d2});
    return at::matmul(outer, w3j.reshape({p.d1 * p.d2, p.d3})).view({n, p.mul1, p.d3});
  }
  const int64_t wn = w.size(0);  // n (per-row weights) or 1 (shared)
  if (p.ins.mode == ConnectionMode::uvw && wn == 1) {
    if (const std::optional<double> diagonal = scalar_coupling(w3j)) {
      // A scalar second operand (node attributes, one-hot elements): W[i,0,k] = δ_ik·W[0,0,0], so
      // y[n,w,k] = W[0,0,0]·Σ_{u,v} w[u,v,w] a[n,u,k] b[n,v], one broadcast product and one mm.
      const at::Tensor ab = (a.unsqueeze(2) * b.reshape({n, 1, p.mul2, 1})).reshape({n, p.mul1 * p.mul2, p.d1});
      return at::matmul(ab.transpose(1, 2).contiguous(), w.reshape({p.mul1 * p.mul2, p.mul_out}) * *diagonal)
          .transpose(1, 2);
    }
  }
  // s[n, u, v, k] = Σ_{i,j} a[n,u,i] b[n,v,j] W[i,j,k]: first (b·W) as one matmul over all rows.
  const at::Tensor bw = at::matmul(b.reshape({n * p.mul2, p.d2}), w3j.permute({1, 0, 2}).reshape({p.d2, p.d1 * p.d3}))
                            .view({n, p.mul2, p.d1, p.d3})
                            .permute({0, 2, 1, 3});  // [n, d1, mul2, d3]
  const at::Tensor s = contract_irrep_axis(a, bw.reshape({n, p.d1, p.mul2 * p.d3}));  // [n, mul1, mul2·d3]
  if (p.ins.mode == ConnectionMode::uvu) {
    // y[n,u,k] = Σ_v w[u,v] s[n,u,v,k]; with one v (edge spherical harmonics) there is nothing to sum.
    if (p.mul2 == 1) return s.view({n, p.mul1, p.d3}) * w.reshape({wn, p.mul1, 1});
    return (s.view({n, p.mul1, p.mul2, p.d3}) * w.reshape({wn, p.mul1, p.mul2, 1})).sum(2);
  }
  // uvw: y[n,w,k] = Σ_{u,v} w[u,v,w] s[n,u,v,k]. With shared weights, st is made contiguous so
  // that matmul folds it into one mm (a transposed 3-d operand becomes a bmm of n tiny products).
  const at::Tensor st = s.view({n, p.mul1 * p.mul2, p.d3}).transpose(1, 2);
  if (wn == 1) return at::matmul(st.contiguous(), w.reshape({p.mul1 * p.mul2, p.mul_out})).transpose(1, 2);
  return at::matmul(st, w.reshape({wn, p.mul1 * p.mul2, p.mul_out})).transpose(1, 2);
}

at::Tensor TensorProductImpl::forward(const at::Tensor& x1, const at::Tensor& x2, const at::Tensor& ext_weight) const {
  return forward_with_weight(x1, x2, internal_weights_ ? weight : ext_weight);
}

at::Tensor TensorProductImpl::forward_with_weight(const at::Tensor& x1, const at::Tensor& x2,
                                                  const at::Tensor& given_weight) const {
  auto where = [&] { return "TensorProduct(" + irreps_in1_.to_string() + " x " + irreps_in2_.to_string() + ")"; };
  if (x1.dim() < 1 || x1.size(-1) != irreps_in1_.dim() || x2.dim() < 1 || x2.size(-1) != irreps_in2_.dim())
    throw Error(where() + ": inputs must have widths " + std::to_string(irreps_in1_.dim()) + " and " +
                std::to_string(irreps_in2_.dim()));
  at::Tensor w = weight;
  if (weight_numel_ > 0) {
    if (!given_weight.defined() || given_weight.dim() < 1 || given_weight.size(-1) != weight_numel_)
      throw Error(where() + ": needs an external weight of width " + std::to_string(weight_numel_));
    w = given_weight;
  }
  const bool shared = w.dim() <= 1;
  std::vector<int64_t> batch(x1.sizes().begin(), x1.sizes().end() - 1);
  batch = at::infer_size(batch, std::vector<int64_t>(x2.sizes().begin(), x2.sizes().end() - 1));
  if (!shared) batch = at::infer_size(batch, std::vector<int64_t>(w.sizes().begin(), w.sizes().end() - 1));
  const int64_t n = c10::multiply_integers(batch);
  auto flatten = [&](const at::Tensor& t) {
    std::vector<int64_t> full = batch;
    full.push_back(t.size(-1));
    return t.expand(full).reshape({n, t.size(-1)});
  };
  const at::Tensor a_all = flatten(x1), b_all = flatten(x2);
  const at::Tensor w_all = shared ? w.reshape({1, weight_numel_}) : flatten(w);

  const std::vector<at::Tensor> blocks1 = a_all.split_with_sizes(irreps_in1_.widths(), 1);
  const std::vector<at::Tensor> blocks2 = b_all.split_with_sizes(irreps_in2_.widths(), 1);
  std::vector<int64_t> weight_sizes;
  for (const Path& p : paths_) weight_sizes.push_back(p.weight_size);
  const std::vector<at::Tensor> path_weights =
      weight_numel_ > 0 ? w_all.split_with_sizes(weight_sizes, 1) : std::vector<at::Tensor>(paths_.size());
  std::vector<at::Tensor> outputs(irreps_out_.size());
  for (size_t k = 0; k < paths_.size(); ++k) {
    const Path& p = paths_[k];
    if (p.mul1 == 0 || p.mul2 == 0 || p.mul_out == 0) continue;
    const at::Tensor a = blocks1[p.ins.i_in1].reshape({n, p.mul1, p.d1});
    const at::Tensor b = blocks2[p.ins.i_in2].reshape({n, p.mul2, p.d2});
    // The path coefficient scales the (smaller) weights rather than the output.
    const at::Tensor y = p.weight_size > 0 ? path_output(p, a, b, path_weights[k] * p.coefficient)
                                           : path_output(p, a, b, at::Tensor()) * p.coefficient;
    at::Tensor& out = outputs[p.ins.i_out];
    out = out.defined() ? out + y : y;
  }
  for (size_t o = 0; o < outputs.size(); ++o)
    outputs[o] = outputs[o].defined() ? outputs[o].reshape({n, irreps_out_[o].dim()})
                                      : at::zeros({n, irreps_out_[o].dim()}, a_all.options());
  batch.push_back(irreps_out_.dim());
  return (outputs.empty() ? at::zeros({n, 0}, a_all.options()) : at::cat(outputs, 1)).view(batch);
}

TensorProduct fully_connected_tensor_product(const Irreps& in1, const Irreps& in2, const Irreps& out,
                                             bool internal_weights, at::TensorOptions options) {
  std::vector<TPInstruction> instructions;
  for (size_t i1 = 0; i1 < in1.size(); ++i1)
    for (size_t i2 = 0; i2 < in2.size(); ++i2) {
      const auto allowed = irrep_product(in1[i1].ir, in2[i2].ir);
      for (size_t o = 0; o < out.size(); ++o)
        if (std::find(allowed.begin(), allowed.end(), out[o].ir) != allowed.end())
          instructions.push_back(TPInstruction{static_cast<int>(i1), static_cast<int>(i2), static_cast<int>(o),
                                               ConnectionMode::uvw, true, 1.0});
    }
  return TensorProduct(in1, in2, out, std::move(instructions), internal_weights, options);
}

TensorProduct elementwise_tensor_product(const Irreps& irreps_in1, const Irreps& irreps_in2,
                                         at::TensorOptions options) {
  std::vector<MulIrrep> in1 = irreps_in1.simplify().entries(), in2 = irreps_in2.simplify().entries();
  if (irreps_in1.num_irreps() != irreps_in2.num_irreps())
    throw Error("ElementwiseTensorProduct(" + irreps_in1.to_string() + ", " + irreps_in2.to_string() +
                "): the inputs must have the same number of irreps");
  // Split the larger of each pair so that the multiplicities line up entry by entry.
  for (size_t i = 0; i < in1.size(); ++i) {
    if (in1[i].mul < in2[i].mul) {
      in2.insert(in2.begin() + i + 1, MulIrrep{in2[i].mul - in1[i].mul, in2[i].ir});
      in2[i].mul = in1[i].mul;
    } else if (in2[i].mul < in1[i].mul) {
      in1.insert(in1.begin() + i + 1, MulIrrep{in1[i].mul - in2[i].mul, in1[i].ir});
      in1[i].mul = in2[i].mul;
    }
  }
  std::vector<MulIrrep> out;
  std::vector<TPInstruction> instructions;
  for (size_t i = 0; i < in1.size(); ++i)
    for (const Irrep& ir : irrep_product(in1[i].ir, in2[i].ir)) {
      instructions.push_back(TPInstruction{static_cast<int>(i), static_cast<int>(i), static_cast<int>(out.size()),
                                           ConnectionMode::uuu, false, 1.0});
      out.push_back(MulIrrep{in1[i].mul, ir});
    }
  return TensorProduct(Irreps(std::move(in1)), Irreps(std::move(in2)), Irreps(std::move(out)),
                       std::move(instructions), false, options);
}

}  // namespace klay::e3nn
