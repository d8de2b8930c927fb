// Helpers for the tests of the convolution / equivariant layers: build a layer from a YAML config
// snippet, its state_dict shapes, random rotations, the representation matrices D(R) that rotate
// irreps features, and central finite differences to check autograd against.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/modules/container/sequential.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "e3nn/irreps.hpp"
#include "e3nn/spherical_harmonics.hpp"
#include "klay_builder.h"
#include "klay_layer_table.h"
#include "layers/config.hpp"
#include "base/error.hpp"
#include "layers/layer.hpp"

namespace klay::testing {

// Instantiates a registered layer from the text of its `config:` mapping (flow or block YAML).
inline std::shared_ptr<Layer> build_layer(const std::string& type, const std::string& config_yaml) {
  klay_diags diags;
  klay_diags_init(&diags);
  const std::string text = "config: " + config_yaml + "\n";
  klay_doc* doc = klay_doc_load_string(text.c_str(), text.size(), "<test>", &diags);
  klay_diags_free(&diags);
  // Not a klay::Error: a broken test snippet must fail the test, never satisfy build_error().
  if (!doc) throw std::runtime_error("test config does not parse: " + config_yaml);
  std::shared_ptr<Layer> layer;
  try {
    const klay_node* config = klay_map_get(klay_doc_root(doc), "config");
    const LayerFactory* factory = find_layer_factory(type);
    if (!factory) throw Error("layer type " + type + " is not registered");
    const klay_layer_spec* spec = klay_layer_table_find(klay_layer_table_get(), type.c_str());
    layer = (*factory)(Config(config, "layer", config->mark, spec));
  } catch (...) {
    klay_doc_free(doc);
    throw;
  }
  klay_doc_free(doc);
  return layer;
}

// The message of the klay::Error that building the layer throws ("" if it builds).
inline std::string build_error(const std::string& type, const std::string& config_yaml) {
  try {
    build_layer(type, config_yaml);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Every parameter and buffer of the layer, by state_dict key, with its shape.
inline std::map<std::string, std::vector<int64_t>> state_shapes(Layer& layer) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& item : layer.named_parameters()) shapes[item.key()] = item.value().sizes().vec();
  for (const auto& item : layer.named_buffers()) shapes[item.key()] = item.value().sizes().vec();
  return shapes;
}

inline at::Tensor call_tensor(Layer& layer, std::vector<c10::IValue> args) {
  return layer.call(CallArgs{std::move(args), {}}).toTensor();
}

inline at::TensorOptions f64() { return at::TensorOptions().dtype(at::kDouble); }

// Every parameter of the layer redrawn from N(0, scale²) (deterministic for a seed), so tests do
// not depend on initialisation schemes.
inline void randomize_parameters(torch::nn::Module& module, uint64_t seed, double scale = 0.5) {
  at::manual_seed(seed);
  at::NoGradGuard no_grad;
  for (auto& parameter : module.parameters()) parameter.copy_(at::randn(parameter.sizes(), f64()) * scale);
}

// A uniformly random proper rotation [3,3] (QR of a Gaussian matrix, signs fixed).
inline at::Tensor random_rotation(uint64_t seed) {
  at::manual_seed(seed);
  auto qr = at::linalg_qr(at::randn({3, 3}, f64()));
  at::Tensor q = std::get<0>(qr) * at::sign(at::diagonal(std::get<1>(qr))).unsqueeze(0);
  if (at::det(q).item<double>() < 0) q = -q;
  return q;
}

// D(R) for one irrep: the matrix with Y^l(R v) = D Y^l(v) (rows of vectors), fitted on random unit
// vectors by least squares; with inversion (R → −R) the block gains the parity sign.
inline at::Tensor irrep_rotation(const e3nn::Irrep& ir, const at::Tensor& rotation, bool inversion) {
  at::manual_seed(12345);
  const at::Tensor v = at::randn({64, 3}, f64());
  const at::Tensor y = e3nn::spherical_harmonics(std::vector<int>{ir.l}, v, true);
  const at::Tensor y_rotated =
      e3nn::spherical_harmonics(std::vector<int>{ir.l}, at::matmul(v, rotation.t()), true);
  // y_rotated = y Dᵀ
  const at::Tensor d = std::get<0>(at::linalg_lstsq(y, y_rotated)).t();
  const double sign = inversion ? static_cast<double>(ir.p) : 1.0;
  return d * sign;
}

// Block-diagonal D(R) of a feature vector with the given irreps (multiplicity-major layout).
inline at::Tensor irreps_rotation(const e3nn::Irreps& irreps, const at::Tensor& rotation, bool inversion) {
  at::Tensor d = at::zeros({irreps.dim(), irreps.dim()}, f64());
  int64_t offset = 0;
  for (const e3nn::MulIrrep& entry : irreps) {
    const at::Tensor block = irrep_rotation(entry.ir, rotation, inversion);
    for (int64_t u = 0; u < entry.mul; ++u) {
      d.narrow(0, offset, entry.ir.dim()).narrow(1, offset, entry.ir.dim()).copy_(block);
      offset += entry.ir.dim();
    }
  }
  return d;
}

// Features [n, dim] rotated: x D(R)ᵀ.
inline at::Tensor rotate_features(const at::Tensor& x, const e3nn::Irreps& irreps, const at::Tensor& rotation,
                                  bool inversion) {
  return at::matmul(x, irreps_rotation(irreps, rotation, inversion).t());
}

inline double max_abs(const at::Tensor& t) { return t.abs().max().item<double>(); }

// A small graph: 5 nodes, every ordered pair but (0,4) and (4,0), edge_index [2, 18].
inline at::Tensor small_graph_edges() {
  std::vector<int64_t> rows[2];
  for (int64_t a = 0; a < 5; ++a)
    for (int64_t b = 0; b < 5; ++b) {
      const bool far_pair = (a == 0 && b == 4) || (a == 4 && b == 0);
      if (a != b && !far_pair) rows[0].push_back(a), rows[1].push_back(b);
    }
  return at::stack({at::tensor(rows[0], at::kLong), at::tensor(rows[1], at::kLong)});
}

// What the edge layers would feed a convolution: the SH of the edge vectors (normalised, component)
// and n_basis smooth invariant functions of the length.
struct EdgeInputs {
  at::Tensor lengths, embeddings, sh;
};
inline EdgeInputs edge_inputs(const at::Tensor& pos, const at::Tensor& edge_index, int sh_lmax,
                              int64_t n_basis) {
  const at::Tensor vec = pos.index_select(0, edge_index[1]) - pos.index_select(0, edge_index[0]);
  const at::Tensor r = vec.pow(2).sum(1).sqrt();
  const at::Tensor k = at::arange(1, n_basis + 1, f64());
  return {r, at::cos(r.unsqueeze(1) * k) * at::exp(-r.unsqueeze(1)),
          e3nn::spherical_harmonics(sh_lmax, vec, true)};
}

// d objective / d input by central differences, one entry of input at a time; objective returns a
// scalar tensor. The reference the autograd gradients of a layer are checked against.
inline at::Tensor central_differences(const std::function<at::Tensor(const at::Tensor&)>& objective,
                                      const at::Tensor& input, double step = 1e-6) {
  at::Tensor numeric = at::zeros_like(input);
  for (int64_t k = 0; k < input.numel(); ++k) {
    at::Tensor plus = input.clone(), minus = input.clone();
    plus.view(-1)[k] += step;
    minus.view(-1)[k] -= step;
    numeric.view(-1)[k] = (objective(plus).item<double>() - objective(minus).item<double>()) / (2 * step);
  }
  return numeric;
}

}  // namespace klay::testing
