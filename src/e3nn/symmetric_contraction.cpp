// MACE SymmetricContraction (docs/layers.md#symmetric-contraction-detail).
#include "e3nn/symmetric_contraction.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "e3nn/wigner_3j.hpp"
#include "base/error.hpp"

namespace klay::e3nn {
namespace {

using CouplingList = std::vector<std::pair<Irrep, at::Tensor>>;  // (irrep, tensor [d(irrep), L^ν])

// MACE's _wigner_nj with "component" normalisation: all couplings of ν copies of `coupling`,
// stable-sorted by irrep. With `parity_filter`, every coupling step keeps only irreps with
// p = (-1)^l and l <= 11 (MACE does this for correlation 4 only).
CouplingList wigner_nj(const Irreps& coupling, int nu, bool parity_filter) {
  const int64_t dim = coupling.dim();
  CouplingList out;
  if (nu == 1) {
    const at::Tensor eye = at::eye(dim, at::kDouble);
    int64_t offset = 0;
    for (const auto& entry : coupling)
      for (int64_t u = 0; u < entry.mul; ++u, offset += entry.ir.dim())
        out.emplace_back(entry.ir, eye.narrow(0, offset, entry.ir.dim()));
    return out;
  }
  const int64_t left_dim = static_cast<int64_t>(std::pow(dim, nu - 1));
  for (const auto& [ir_left, c_left] : wigner_nj(coupling, nu - 1, parity_filter)) {
    int64_t offset = 0;
    for (const auto& entry : coupling) {
      for (const Irrep& ir_out : irrep_product(ir_left, entry.ir)) {
        if (parity_filter && (ir_out.p != (ir_out.l % 2 == 0 ? 1 : -1) || ir_out.l > 11)) continue;
        const at::Tensor w3j = wigner_3j(ir_out.l, ir_left.l, entry.ir.l) * std::sqrt(static_cast<double>(ir_out.dim()));
        const at::Tensor c = at::einsum("jk,ijl->ikl", {c_left, w3j});  // [d_out, L^(ν-1), d]
        for (int64_t u = 0; u < entry.mul; ++u) {
          at::Tensor e = at::zeros({ir_out.dim(), left_dim, dim}, at::kDouble);
          e.narrow(2, offset + u * entry.ir.dim(), entry.ir.dim()).copy_(c);
          out.emplace_back(ir_out, e.view({ir_out.dim(), left_dim * dim}));
        }
      }
      offset += entry.dim();
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

// One step of the chain (see composite_contraction_chain) as a matmul with U as a dense matrix.
at::Tensor composite_contraction_step(const at::Tensor& x, const at::Tensor& theta, const at::Tensor& b,
                                      const at::Tensor& u) {
  const int64_t rows = x.size(0), coupling = x.size(1), params = theta.size(1);
  const int64_t rest = u.numel() / (coupling * params);
  const at::Tensor u_by_last = u.reshape({rest, coupling, params}).permute({1, 2, 0}).reshape({coupling * params, rest});
  const at::Tensor outer = (x.unsqueeze(2) * theta.unsqueeze(1)).view({rows, coupling * params});
  const at::Tensor next = at::matmul(outer, u_by_last);
  if (!b.defined()) return next;
  return next + (b.view({rows, rest, coupling}) * x.unsqueeze(1)).sum(-1);
}

}  // namespace

at::Tensor mace_u_matrix(const Irreps& coupling_irreps, const Irrep& irrep_out, int correlation) {
  if (correlation < 1) throw Error("MACE U matrix: correlation must be >= 1");
  std::vector<int64_t> shape{irrep_out.dim()};
  for (int k = 0; k < correlation; ++k) shape.push_back(coupling_irreps.dim());
  std::vector<at::Tensor> basis;
  for (const auto& [ir, c] : wigner_nj(coupling_irreps, correlation, correlation == 4))
    if (ir == irrep_out) basis.push_back(c.view(shape).squeeze());
  if (basis.empty())
    throw Error("MACE U matrix: no coupling of " + std::to_string(correlation) + " copies of " +
                coupling_irreps.to_string() + " gives " + irrep_out.to_string());
  return at::stack(basis, -1);
}

ContractionImpl::ContractionImpl(const Irreps& irreps_in, const Irrep& irrep_out, int correlation,
                                 int64_t num_elements, at::TensorOptions options)
    : correlation_(correlation),
      num_features_(irreps_in.count(Irrep{0, 1})),
      coupling_dim_(0),
      out_dim_(irrep_out.dim()) {
  std::vector<MulIrrep> coupling;
  for (const auto& entry : irreps_in) coupling.push_back(MulIrrep{1, entry.ir});
  const Irreps coupling_irreps(std::move(coupling));
  coupling_dim_ = coupling_irreps.dim();
  for (int nu = 1; nu <= correlation; ++nu)
    u_matrices_.push_back(
        register_buffer("U_matrix_" + std::to_string(nu), mace_u_matrix(coupling_irreps, irrep_out, nu).to(options)));
  weights_.resize(correlation);
  auto weight_list = register_module("weights", std::make_shared<torch::nn::Module>());
  for (int nu = correlation; nu >= 1; --nu) {
    const int64_t params = u_matrices_[nu - 1].size(-1);
    at::Tensor w = at::randn({num_elements, params, num_features_}, options) / static_cast<double>(params);
    weights_[nu - 1] = nu == correlation ? register_parameter("weights_max", w)
                                         : weight_list->register_parameter(std::to_string(correlation - 1 - nu), w);
  }
}

at::Tensor composite_contraction_chain(const at::Tensor& x, const std::vector<at::Tensor>& thetas,
                                       const std::vector<at::Tensor>& us) {
  at::Tensor b;
  for (size_t k = 0; k < us.size(); ++k) b = composite_contraction_step(x, thetas[k], b, us[k]);
  return b;
}

at::Tensor ContractionImpl::forward(const at::Tensor& x, const at::Tensor& node_attrs,
                                    const ContractionChain& chain) const {
  if (x.dim() != 3 || x.size(1) != num_features_ || x.size(2) != coupling_dim_)
    throw Error("SymmetricContraction: node features must be [N, " + std::to_string(num_features_) + ", " +
                std::to_string(coupling_dim_) + "]");
  const int64_t n = x.size(0), rows = n * num_features_;
  const at::Tensor features = x.reshape({rows, coupling_dim_});
  // θ_ν[n·F + c, p] = Σ_e y[n,e] W_ν[e,p,c]: the product with W_ν's (small) transpose [e, c, p] is
  // θ_ν in its final layout, where the product with W_ν itself would need a transposed copy of the
  // (large) result and another of its gradient.
  auto element_weights = [&](const at::Tensor& w) {
    const int64_t params = w.size(1);
    return at::mm(node_attrs, w.transpose(1, 2).reshape({w.size(0), num_features_ * params})).view({rows, params});
  };
  // Nested order of MACE: A_ν = U_ν·θ_ν + B_{ν+1}, B_ν = Σ_{i_ν} A_ν[…, i_ν] x[i_ν]. The U_ν·θ_ν part
  // of B_ν contracts the outer products x[i_ν]·θ_ν[p] with U_ν directly, so A_ν (L times larger
  // than B_ν) is never formed: Python's opt_einsum finds the same order.
  std::vector<at::Tensor> thetas, us;
  for (int nu = correlation_; nu >= 1; --nu) {
    thetas.push_back(element_weights(weights_[nu - 1]));
    us.push_back(u_matrices_[nu - 1]);
  }
  return chain(features, thetas, us).reshape({n, num_features_ * out_dim_});
}

SymmetricContractionImpl::SymmetricContractionImpl(const Irreps& irreps_in, const Irreps& irreps_out,
                                                   int correlation, int64_t num_elements, at::TensorOptions options) {
  contractions_ = register_module("contractions", torch::nn::ModuleList());
  for (const auto& entry : irreps_out)
    contractions_->push_back(Contraction(irreps_in, entry.ir, correlation, num_elements, options));
}

at::Tensor SymmetricContractionImpl::forward(const at::Tensor& x, const at::Tensor& node_attrs,
                                             const ContractionChain& chain) const {
  std::vector<at::Tensor> outputs;
  for (const auto& module : *contractions_)
    outputs.push_back(module->as<ContractionImpl>()->forward(x, node_attrs, chain));
  return at::cat(outputs, -1);
}

}  // namespace klay::e3nn
