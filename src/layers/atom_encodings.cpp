// Per-atom encoders of KLay (docs/layers.md#atom-encodings): integer atom labels → float features.
//
// OneHotAtomEncoding
//   ports:   x (int64 [N]) → one_hot [N, num_elems]
//   config:  num_elems (required int), input_is_atomic_number (bool, default false)
//   state:   z_to_idx_shift — int64 scalar buffer, 1 if input_is_atomic_number else 0
//   quirks:  Python casts to torch.get_default_dtype() at call time; here: the model dtype (below).
//            Out-of-range labels are an error (Python's one_hot raises too).
//
// BinaryAtomicNumberEncoding
//   ports:   x (int64 [N]) → representation [N, 8]
//   config:  none
//   state:   none
//   quirks:  column 0 is the most significant bit (Z=6 → 0,0,0,0,0,1,1,0); Z ≥ 256 wraps silently
//            (docs/layers.md#quirk-electronic-config), reproduced: only the low 8 bits are
//            kept.
//
// ElectronicConfigurationEncoding
//   ports:   x (int64 [N], atomic numbers 1…118) → representation [N, 24]
//   config:  none
//   state:   e_config — float32 buffer [118, 24] (row Z−1: column 0 = Z, 1–19 orbital occupations,
//            20–23 valence s/p/d/f counts)
//   quirks:  the table is data of the trained model and comes from its weights file: KLay's own
//            table mixes orbital orders between rows (docs/layers.md#quirk-electronic-config),
//            so it cannot be derived, and we do not copy it from KLay's source. Until weights are
//            loaded the buffer holds NaN and a call is an error that says so. Rows are cast to x's
//            dtype (int64) and then to the model dtype, as Python does.
//
// Output dtype: the encoders have only integer inputs, so the float dtype of their output cannot be
// taken from an input. It is the model's floating dtype (Layer::set_floating_dtype): float64, KLay's
// reference dtype, unless the model runs in float32.
#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "layers/named_layer.hpp"

namespace klay {
namespace {

constexpr int64_t kNumElements = 118;
constexpr int64_t kConfigurationColumns = 24;
constexpr int64_t kBinaryDigits = 8;

// Base of the three encoders: keeps the model dtype and checks the integer label input.
class AtomEncoder : public NamedLayer {
 public:
  using NamedLayer::NamedLayer;

  void set_floating_dtype(at::ScalarType dtype) override { output_dtype_ = dtype; }

  // Every encoding is a row of plain numbers: scalars to the equivariant layers.
  std::optional<e3nn::Irreps> output_irreps(int64_t item) const override {
    if (item >= 0) return std::nullopt;
    return e3nn::Irreps({e3nn::MulIrrep{width_, e3nn::Irrep{0, 1}}});
  }

 protected:
  void set_width(int64_t width) { width_ = width; }

  at::ScalarType output_dtype() const { return output_dtype_; }

  at::Tensor labels(const CallArgs& call) const { return index_input(call, 0, "x"); }

  // Every label must lie in [lo, hi]; names the first offending value.
  void require_range(const at::Tensor& x, int64_t lo, int64_t hi, const std::string& what) const {
    if (const std::optional<int64_t> bad = first_outside(x, lo, hi))
      fail("input value " + std::to_string(*bad) + " is not " + what + " (allowed " + std::to_string(lo) + "..." +
           std::to_string(hi) + ")");
  }

 private:
  at::ScalarType output_dtype_ = at::kDouble;
  int64_t width_ = 0;
};

class OneHotAtomEncoding : public AtomEncoder {
 public:
  explicit OneHotAtomEncoding(const Config& config)
      : AtomEncoder("OneHotAtomEncoding", config) {
    num_elems_ = config.get_int_at_least("num_elems", 1);
    set_width(num_elems_);
    const bool atomic_numbers = config.get_bool("input_is_atomic_number");
    z_to_idx_shift_ =
        register_buffer("z_to_idx_shift", at::scalar_tensor(atomic_numbers ? 1 : 0, at::kLong));
  }

  // On the CPU the rows are written directly: at::one_hot checks the range again with two
  // reductions, and its int64 result then needs a conversion.
  c10::IValue call(const CallArgs& call) override {
    const at::Tensor index = labels(call) - z_to_idx_shift_;
    require_range(index, 0, num_elems_ - 1, "a valid element index after the shift");
    if (!index.device().is_cpu()) return at::one_hot(index, num_elems_).to(output_dtype());
    const at::Tensor rows = index.contiguous();
    at::Tensor out = at::zeros({rows.numel(), num_elems_}, at::TensorOptions().dtype(output_dtype()));
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "one_hot", [&] {
      const int64_t* p = rows.data_ptr<int64_t>();
      scalar_t* o = out.data_ptr<scalar_t>();
      for (int64_t i = 0; i < rows.numel(); ++i) o[i * num_elems_ + p[i]] = 1;
    });
    std::vector<int64_t> shape = index.sizes().vec();
    shape.push_back(num_elems_);
    return out.view(shape);
  }

 private:
  int64_t num_elems_ = 0;
  at::Tensor z_to_idx_shift_;
};

class BinaryAtomicNumberEncoding : public AtomEncoder {
 public:
  explicit BinaryAtomicNumberEncoding(const Config& config)
      : AtomEncoder("BinaryAtomicNumberEncoding", config) {
    set_width(kBinaryDigits);
  }

  c10::IValue call(const CallArgs& call) override {
    at::Tensor rest = labels(call);
    std::vector<at::Tensor> bits(kBinaryDigits);
    // Least significant bit goes to the last column; Python's `%` and trunc division.
    for (int64_t column = kBinaryDigits - 1; column >= 0; --column) {
      bits[column] = at::remainder(rest, 2);
      rest = at::div(rest, 2, "trunc");
    }
    return at::stack(bits, -1).to(output_dtype());
  }
};

class ElectronicConfigurationEncoding : public AtomEncoder {
 public:
  explicit ElectronicConfigurationEncoding(const Config& config)
      : AtomEncoder("ElectronicConfigurationEncoding", config) {
    set_width(kConfigurationColumns);
    e_config_ = register_buffer(
        "e_config", at::full({kNumElements, kConfigurationColumns}, NAN, at::kFloat));
  }

  c10::IValue call(const CallArgs& call) override {
    const at::Tensor z = labels(call);
    if (std::isnan(e_config_[0][0].item<double>()))
      fail("the electronic-configuration table e_config [118, 24] is part of the model's weights "
           "and has not been loaded; give the weights file of the trained model");
    require_range(z, 1, kNumElements, "an atomic number");
    return e_config_.index({z - 1}).to(z.scalar_type()).to(output_dtype());
  }

 private:
  at::Tensor e_config_;
};

}  // namespace

KLAY_REGISTER_LAYER(OneHotAtomEncoding, make_layer<OneHotAtomEncoding>, {"x"}, {"one_hot"});
KLAY_REGISTER_LAYER(BinaryAtomicNumberEncoding, make_layer<BinaryAtomicNumberEncoding>, {"x"}, {"representation"});
KLAY_REGISTER_LAYER(ElectronicConfigurationEncoding, make_layer<ElectronicConfigurationEncoding>, {"x"},
                    {"representation"});

}  // namespace klay
