// SphericalHarmonicEdgeAttrs (docs/layers.md#spherical-harmonic-edge-attrs)
//   ports:   pos (float [N, 3]), edge_index (int64 [2, E]), shift (float [E, 3] or broadcastable to
//            it, e.g. a [1, 3] zero row) → tuple (edge_vec [E, 3], edge_lengths [E], edge_sh
//            [E, (lmax+1)²])
//   config:  lmax (int ≥ 0, default 1), normalization ("component" default, "norm", "integral")
//   state:   none (e3nn's SphericalHarmonics has no state_dict keys)
//   math:    edge_vec = pos[edge_index[1]] − pos[edge_index[0]] + shift (KLay's "+ shift"
//            convention), edge_lengths = ‖edge_vec‖₂, edge_sh = Y^0…Y^lmax of the normalised edge_vec
//            (e3nn convention, src/e3nn/spherical_harmonics.hpp).
//   quirks:  `normalization: null` makes e3nn assert in Python; here it is a config error. The shift
//            port must be wired (KLay's port check requires it although forward has a default).
#include <ATen/ATen.h>

#include "e3nn/spherical_harmonics.hpp"
#include "kernels/edge_vectors.hpp"
#include "kernels/spherical_harmonics.hpp"
#include "layers/named_layer.hpp"

namespace klay {
namespace {

e3nn::ShNormalization read_normalization(const Config& config) {
  if (config.is_null("normalization"))
    config.fail("normalization", "null is not supported (e3nn requires one of component, norm, integral)");
  const std::string name = config.get_string("normalization");
  if (name == "component") return e3nn::ShNormalization::component;
  if (name == "norm") return e3nn::ShNormalization::norm;
  if (name == "integral") return e3nn::ShNormalization::integral;
  config.fail("normalization", "expected component, norm or integral, got \"" + name + "\"");
}

class SphericalHarmonicEdgeAttrs : public NamedLayer {
 public:
  explicit SphericalHarmonicEdgeAttrs(const Config& config)
      : NamedLayer("SphericalHarmonicEdgeAttrs", config) {
    lmax_ = config.get_int_at_least("lmax", 0);
    normalization_ = read_normalization(config);
  }

  c10::IValue call(const CallArgs& call) override {
    const at::Tensor pos = tensor_input(call, 0, "pos");
    const at::Tensor edge_index = index_input(call, 1, "edge_index");
    const at::Tensor shift = tensor_input(call, 2, "shift");
    if (pos.dim() != 2 || pos.size(1) != 3) fail("input pos must be [N, 3], got " + c10::str(pos.sizes()));
    if (edge_index.dim() != 2 || edge_index.size(0) != 2)
      fail("input edge_index must be [2, E], got " + c10::str(edge_index.sizes()));

    const at::Tensor edge_vec = kernels::edge_vectors(pos, edge_index, shift);
    const kernels::LengthsAndHarmonics edge =
        kernels::lengths_and_spherical_harmonics(static_cast<int>(lmax_), edge_vec, normalization_);
    return c10::ivalue::Tuple::create({edge_vec, edge.lengths, edge.harmonics});
  }

  // Each edge's vector, length and harmonics are its own: edges (edge_index columns, shift rows
  // unless broadcast) are rows.
  std::vector<RowInput> row_inputs() const override { return {{1, 1}, {2, 0}}; }

  // The tuple is (edge vectors, lengths, spherical harmonics): only its element 2 is irreps.
  std::optional<e3nn::Irreps> output_irreps(int64_t item) const override {
    if (item != 2) return std::nullopt;
    return e3nn::Irreps::spherical_harmonics(static_cast<int>(lmax_));
  }

 private:
  int64_t lmax_ = 1;
  e3nn::ShNormalization normalization_ = e3nn::ShNormalization::component;
};

}  // namespace

KLAY_REGISTER_LAYER(SphericalHarmonicEdgeAttrs, make_layer<SphericalHarmonicEdgeAttrs>, {"pos", "edge_index", "shift"},
                    {"edge_vec", "edge_lengths", "edge_sh"});

}  // namespace klay
