// Radial functions of edge lengths (docs/layers.md#radial-basis). Outputs take the dtype of the input
// lengths (and of bessel_weights, which follows the model's dtype).
//
// PolynomialCutoff
//   ports:   x (float [E]) → y [E]
//   config:  r_max (required number), polynomial_degree (number ≥ 2, default 6; stored as float p)
//   state:   none
//   math:    u = r·(1/r_max); f = 1 − (p+1)(p+2)/2·u^p + p(p+2)·u^(p+1) − p(p+1)/2·u^(p+2), times [u < 1]
//
// BesselBasis
//   ports:   x (float [E]) → y [E, num_radial_basis]
//   config:  r_max (required number), num_radial_basis (int, default 8), trainable (bool, default true)
//   state:   bessel_weights [num_radial_basis] = π·(1…n) at construction; a Parameter when trainable,
//            else a buffer (same key either way, as in Python)
//   math:    (2/r_max)·sin(bessel_weights·r/r_max)/r; r = 0 gives NaN, as in Python.
//
// RadialBasisEdgeEncoding
//   ports:   edge_lengths (float [E]) → edge_length_embedded [E, num_radial_basis]
//   config:  r_max (required), num_radial_basis (8), polynomial_degree (6), radial_basis_trainable
//            (true), basis ("BesselBasis", the only one KLay accepts), cutoff ("PolynomialCutoff",
//            idem), basis_kwargs / cutoff_kwargs (mappings; KLay overwrites every argument the two
//            classes take with the values above, so the only keys they may hold are those, and they
//            have no effect)
//   state:   basis.bessel_weights [num_radial_basis]; the cutoff (sub-module `cutoff`) has none
//   math:    basis(r) · cutoff(r)[:, None]
#include <cmath>

#include <ATen/ATen.h>

#include "kernels/radial_basis.hpp"
#include "layers/named_layer.hpp"

namespace klay {
namespace {

// The config arguments shared by the three layers (same keys and defaults in each).
double read_r_max(const Config& config) {
  const double r_max = config.get_double("r_max");
  if (!(r_max > 0)) config.fail("r_max", "must be a positive number");
  return r_max;
}

double read_polynomial_degree(const Config& config) {
  const double degree = config.get_double("polynomial_degree");
  if (!(degree >= 2)) config.fail("polynomial_degree", "must be at least 2");
  return degree;
}

int64_t read_num_radial_basis(const Config& config) {
  const int64_t num_basis = config.get_int_at_least("num_radial_basis", 1);
  return num_basis;
}

class PolynomialCutoff : public NamedLayer {
 public:
  PolynomialCutoff(const Config& config, double r_max, double degree)
      : NamedLayer("PolynomialCutoff", config), params_{1.0 / r_max, degree} {}

  const kernels::PolynomialCutoffParams& params() const { return params_; }

  c10::IValue call(const CallArgs& call) override {
    return kernels::polynomial_cutoff(tensor_input(call, 0, "x"), params_);
  }
  std::vector<RowInput> row_inputs() const override { return {{0, 0}}; }  // one length per row

 private:
  kernels::PolynomialCutoffParams params_;
};

class BesselBasis : public NamedLayer {
 public:
  BesselBasis(const Config& config, double r_max, int64_t num_basis, bool trainable)
      : NamedLayer("BesselBasis", config), params_{r_max, 2.0 / r_max} {
    at::Tensor frequencies = at::arange(1, num_basis + 1, at::kDouble) * M_PI;
    bessel_weights_ = trainable ? register_parameter("bessel_weights", frequencies)
                                : register_buffer("bessel_weights", frequencies);
  }

  const kernels::BesselBasisParams& params() const { return params_; }
  const at::Tensor& weights() const { return bessel_weights_; }

  c10::IValue call(const CallArgs& call) override {
    return kernels::bessel_basis(tensor_input(call, 0, "x"), bessel_weights_, params_);
  }
  std::vector<RowInput> row_inputs() const override { return {{0, 0}}; }  // one length per row

 private:
  kernels::BesselBasisParams params_;
  at::Tensor bessel_weights_;
};

class RadialBasisEdgeEncoding : public NamedLayer {
 public:
  explicit RadialBasisEdgeEncoding(const Config& config)
      : NamedLayer("RadialBasisEdgeEncoding", config) {
    require_choice(config, "basis", "BesselBasis");
    require_choice(config, "cutoff", "PolynomialCutoff");
    require_overwritten_only(config, "basis_kwargs", {"r_max", "num_basis", "trainable"});
    require_overwritten_only(config, "cutoff_kwargs", {"r_max", "p"});

    const double r_max = read_r_max(config);
    basis_ = register_module(
        "basis", std::make_shared<BesselBasis>(config, r_max,
                                               read_num_radial_basis(config),
                                               config.get_bool("radial_basis_trainable")));
    cutoff_ = register_module(
        "cutoff", std::make_shared<PolynomialCutoff>(
                      config, r_max, read_polynomial_degree(config)));
  }

  c10::IValue call(const CallArgs& call) override {
    return kernels::radial_basis_edge_encoding(tensor_input(call, 0, "edge_lengths"), basis_->weights(),
                                               basis_->params(), cutoff_->params());
  }
  std::vector<RowInput> row_inputs() const override { return {{0, 0}}; }  // one length per edge

 private:
  static void require_choice(const Config& config, const std::string& key, const std::string& only) {
    const std::string chosen = config.get_string(key);
    if (chosen != only) config.fail(key, "KLay accepts only \"" + only + "\", got \"" + chosen + "\"");
  }

  static void require_overwritten_only(const Config& config, const std::string& key,
                                       const std::vector<std::string>& arguments) {
    config.get_map(key).reject_unknown_keys(arguments);
  }

  std::shared_ptr<BesselBasis> basis_;
  std::shared_ptr<PolynomialCutoff> cutoff_;
};

std::shared_ptr<Layer> make_polynomial_cutoff(const Config& config) {
  return std::make_shared<PolynomialCutoff>(config, read_r_max(config),
                                            read_polynomial_degree(config));
}

std::shared_ptr<Layer> make_bessel_basis(const Config& config) {
  return std::make_shared<BesselBasis>(config, read_r_max(config),
                                       read_num_radial_basis(config),
                                       config.get_bool("trainable"));
}

}  // namespace

KLAY_REGISTER_LAYER(PolynomialCutoff, make_polynomial_cutoff, {"x"}, {"y"});
KLAY_REGISTER_LAYER(BesselBasis, make_bessel_basis, {"x"}, {"y"});
KLAY_REGISTER_LAYER(RadialBasisEdgeEncoding, make_layer<RadialBasisEdgeEncoding>, {"edge_lengths"},
                    {"edge_length_embedded"});

}  // namespace klay
