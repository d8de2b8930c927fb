// Our primitives against the real e3nn / MACE modules recorded in shared/conformance/*/model.pt
// (TorchScript archives of KLay layers, read with libtorch's own torch::jit::load). Each e3nn
// sub-module is rebuilt from its recorded irreps (and instructions), its state is loaded BY NAME
// (the key sets must be identical), and both are run on the same random inputs. The U matrices of
// the symmetric contractions are computed from scratch and compared with the recorded buffers, and
// two layers are checked end to end against reference.json.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <torch/script.h>

#include "e3nn/activations.hpp"
#include "e3nn/gate.hpp"
#include "e3nn/linear.hpp"
#include "e3nn/spherical_harmonics.hpp"
#include "e3nn/symmetric_contraction.hpp"
#include "e3nn/tensor_product.hpp"
#include "e3nn_test_util.hpp"

namespace klay::e3nn {
namespace {

using test::conformance_file;
using test::relative_error;

constexpr double kTolerance = 1e-13;

// Loading compiles the archive's TorchScript, which is slow: each case is loaded once per run.
torch::jit::Module load_case(const std::string& case_name) {
  static std::map<std::string, torch::jit::Module> loaded;
  auto it = loaded.find(case_name);
  if (it == loaded.end()) it = loaded.emplace(case_name, torch::jit::load(conformance_file(case_name, "model.pt"))).first;
  return it->second;
}

torch::jit::Module submodule(const torch::jit::Module& root, const std::string& dotted) {
  torch::jit::Module m = root;
  std::stringstream path(dotted);
  for (std::string part; std::getline(path, part, '.');) m = m.attr(part).toModule();
  return m;
}

// e3nn stores irreps on scripted modules as tuples ((mul, (l, p)), ...).
Irreps irreps_attribute(const torch::jit::Module& m, const std::string& name) {
  std::vector<MulIrrep> entries;
  for (const auto& entry : m.attr(name).toTupleRef().elements()) {
    const auto& mul_ir = entry.toTupleRef().elements();
    const auto& ir = mul_ir[1].toTupleRef().elements();
    entries.push_back(MulIrrep{mul_ir[0].toInt(), Irrep{static_cast<int>(ir[0].toInt()), static_cast<int>(ir[1].toInt())}});
  }
  return Irreps(std::move(entries));
}

// Copies the reference module's parameters and buffers into ours by name; the key sets and shapes
// must agree exactly (this is how a Python state_dict will be loaded).
void load_by_name(torch::nn::Module& mine, const torch::jit::Module& reference) {
  std::map<std::string, at::Tensor> ref;
  for (const auto& p : reference.named_parameters()) ref[p.name] = p.value;
  for (const auto& b : reference.named_buffers()) ref[b.name] = b.value;
  std::set<std::string> ours;
  at::NoGradGuard no_grad;
  auto copy = [&](const std::string& name, at::Tensor& tensor) {
    ours.insert(name);
    const auto it = ref.find(name);
    ASSERT_NE(it, ref.end()) << "key " << name << " missing in the reference";
    ASSERT_EQ(tensor.sizes(), it->second.sizes()) << name;
    tensor.copy_(it->second);
  };
  for (auto& p : mine.named_parameters()) copy(p.key(), p.value());
  for (auto& b : mine.named_buffers()) copy(b.key(), b.value());
  for (const auto& [name, tensor] : ref) EXPECT_TRUE(ours.count(name)) << "reference key " << name << " not ours";
}

at::Tensor run(torch::jit::Module& m, std::vector<c10::IValue> inputs) { return m.forward(std::move(inputs)).toTensor(); }

ConnectionMode parse_mode(const std::string& mode) {
  if (mode == "uvw") return ConnectionMode::uvw;
  if (mode == "uvu") return ConnectionMode::uvu;
  if (mode == "uuu") return ConnectionMode::uuu;
  throw std::runtime_error("unexpected connection mode " + mode);
}

// Every o3.Linear, TensorProduct (all subclasses) and FullyConnectedNet below `prefix`, except the
// o3.Norm inside NormActivation (checked through its parent).
void check_generic_e3nn_modules(const std::string& case_name, int64_t n = 6) {
  torch::jit::Module root = load_case(case_name);
  int checked = 0;
  for (const auto& named : root.named_modules()) {
    const std::string type = named.value.type()->name()->qualifiedName();
    const std::string& name = named.name;
    torch::jit::Module ref = named.value;
    SCOPED_TRACE(case_name + ": " + name);
    auto ends_with = [&](const std::string& suffix) {
      return type.size() >= suffix.size() && type.compare(type.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (type.find("e3nn.o3._linear") != std::string::npos && ends_with(".Linear")) {
      LinearImpl mine(irreps_attribute(ref, "irreps_in"), irreps_attribute(ref, "irreps_out"));
      load_by_name(mine, ref);
      const at::Tensor x = at::randn({n, mine.irreps_in().dim()}, at::kDouble);
      EXPECT_LT(relative_error(mine.forward(x), run(ref, {x})), kTolerance);
      ++checked;
    } else if (ends_with("TensorProduct") && name.find(".norm.tp") == std::string::npos) {
      std::vector<TPInstruction> instructions;
      for (const auto& item : ref.attr("instructions").toListRef()) {
        const std::vector<c10::IValue> t = item.toTupleRef().elements().vec();
        instructions.push_back(TPInstruction{static_cast<int>(t[0].toInt()), static_cast<int>(t[1].toInt()),
                                             static_cast<int>(t[2].toInt()), parse_mode(t[3].toStringRef()),
                                             t[4].toBool(), 1.0});
      }
      const bool internal = ref.attr("internal_weights").toBool();
      TensorProductImpl mine(irreps_attribute(ref, "irreps_in1"), irreps_attribute(ref, "irreps_in2"),
                             irreps_attribute(ref, "irreps_out"), instructions, internal);
      ASSERT_EQ(mine.weight_numel(), ref.attr("weight_numel").toInt());
      // Our wigner_3j against the 3j buffers e3nn stored, before they are loaded over ours.
      std::map<std::string, at::Tensor> ref_buffers;
      for (const auto& b : ref.named_buffers()) ref_buffers[b.name] = b.value;
      for (const auto& b : mine.named_buffers()) {
        if (b.key().find("._w3j_") != std::string::npos && ref_buffers.count(b.key())) {
          EXPECT_LT((b.value() - ref_buffers[b.key()]).abs().max().item<double>(), 1e-15) << b.key();
        }
      }
      load_by_name(mine, ref);
      const at::Tensor x1 = at::randn({n, mine.irreps_in1().dim()}, at::kDouble);
      const at::Tensor x2 = at::randn({n, mine.irreps_in2().dim()}, at::kDouble);
      if (internal || mine.weight_numel() == 0) {
        EXPECT_LT(relative_error(mine.forward(x1, x2), run(ref, {x1, x2})), kTolerance);
      } else {
        const at::Tensor w = at::randn({n, mine.weight_numel()}, at::kDouble);
        EXPECT_LT(relative_error(mine.forward(x1, x2, w), run(ref, {x1, x2, w})), kTolerance);
      }
      ++checked;
    } else if (ends_with("FullyConnectedNet")) {
      std::vector<int64_t> hs;
      for (int k = 0;; ++k) {
        const std::string layer = "layer" + std::to_string(k);
        if (!ref.hasattr(layer)) break;
        const at::Tensor w = submodule(ref, layer).attr("weight").toTensor();
        if (k == 0) hs.push_back(w.size(0));
        hs.push_back(w.size(1));
      }
      FullyConnectedNetImpl mine(hs, "silu");  // every KLay radial network uses silu
      load_by_name(mine, ref);
      const at::Tensor x = at::randn({n, hs.front()}, at::kDouble);
      EXPECT_LT(relative_error(mine.forward(x), run(ref, {x})), kTolerance);
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

TEST(ReferenceModules, AtomwiseLinear) {
  at::manual_seed(100);
  check_generic_e3nn_modules("layer_AtomwiseLinear_0");
  check_generic_e3nn_modules("layer_AtomwiseLinear_1");
}
TEST(ReferenceModules, GatedAtomwiseLinear) {
  at::manual_seed(101);
  check_generic_e3nn_modules("layer_GatedAtomwiseLinear_0");
  check_generic_e3nn_modules("layer_GatedAtomwiseLinear_1");
}
TEST(ReferenceModules, ConvNetLayer) {
  at::manual_seed(102);
  for (const char* c : {"layer_ConvNetLayer_0", "layer_ConvNetLayer_1", "layer_ConvNetLayer_2"})
    check_generic_e3nn_modules(c);
}
TEST(ReferenceModules, InteractionBlock) {
  at::manual_seed(103);
  check_generic_e3nn_modules("layer_InteractionBlock_0");
}
TEST(ReferenceModules, MaceLayer) {
  at::manual_seed(104);
  for (const char* c : {"layer_MACE_layer_0", "layer_MACE_layer_1", "layer_MACE_layer_2"})
    check_generic_e3nn_modules(c);
}
TEST(ReferenceModules, E3AttentionPooling) {
  at::manual_seed(105);
  check_generic_e3nn_modules("layer_E3AttentionPooling_0");
}

// Gates and norm nonlinearities, with the activations derived from the configs as in
// docs/layers.md#gated-atomwise-linear and #convnet-layer.
struct GateCase {
  const char* case_name;
  const char* module;
  Irreps scalars;
  std::vector<std::string> act_scalars;
  Irreps gates;
  std::vector<std::string> act_gates;
  Irreps gated;
};

TEST(ReferenceModules, Gate) {
  at::manual_seed(106);
  const std::vector<GateCase> cases = {
      {"layer_GatedAtomwiseLinear_0", "layer.gate", Irreps("4x0e"), {"silu"}, Irreps("5x0e"), {"silu"},
       Irreps("3x1o+2x2e")},
      {"layer_GatedAtomwiseLinear_1", "layer.gate", Irreps("2x0e"), {"silu"}, Irreps("4x0e"), {"silu"},
       Irreps("2x1o+2x1e")},
      {"layer_ConvNetLayer_0", "layer.equivariant_nonlin", Irreps("4x0e"), {"silu"}, Irreps("4x0e"), {"silu"},
       Irreps("4x1o")},
      {"layer_ConvNetLayer_2", "layer.equivariant_nonlin", Irreps("4x0e+4x0o"), {"silu", "tanh"},
       Irreps("4x0e+4x0e"), {"silu", "silu"}, Irreps("4x1e+4x1o")},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.case_name);
    torch::jit::Module ref = submodule(load_case(c.case_name), c.module);
    GateImpl mine(c.scalars, c.act_scalars, c.gates, c.act_gates, c.gated);
    EXPECT_EQ(mine.irreps_in(), irreps_attribute(ref, "_irreps_in"));
    EXPECT_EQ(mine.irreps_out(), irreps_attribute(ref, "_irreps_out"));
    load_by_name(mine, ref);
    const at::Tensor x = at::randn({7, mine.irreps_in().dim()}, at::kDouble);
    EXPECT_LT(relative_error(mine.forward(x), run(ref, {x})), kTolerance);
  }
}

TEST(ReferenceModules, NormActivation) {
  at::manual_seed(107);
  torch::jit::Module ref = submodule(load_case("layer_ConvNetLayer_1"), "layer.equivariant_nonlin");
  NormActivationImpl mine(Irreps("3x0e+3x1e+3x2e"), "ssp");  // ConvNetLayer norm, parity off, scalars e: ssp
  load_by_name(mine, ref);
  at::Tensor x = at::randn({7, 27}, at::kDouble);
  x.narrow(1, 3, 3).zero_();  // a zero copy exercises the epsilon floor
  EXPECT_LT(relative_error(mine.forward(x), run(ref, {x})), kTolerance);
}

TEST(ReferenceModules, SphericalHarmonics) {
  at::manual_seed(108);
  for (const char* c : {"layer_SphericalHarmonicEdgeAttrs_0", "layer_SphericalHarmonicEdgeAttrs_1",
                        "layer_SphericalHarmonicEdgeAttrs_2"}) {
    SCOPED_TRACE(c);
    torch::jit::Module ref = submodule(load_case(c), "layer.sh");
    const int lmax = static_cast<int>(ref.attr("_lmax").toInt());
    const at::Tensor v = at::randn({50, 3}, at::kDouble);
    const std::string normalization = ref.attr("normalization").toStringRef();
    const ShNormalization mode = normalization == "norm"       ? ShNormalization::norm
                                 : normalization == "integral" ? ShNormalization::integral
                                                               : ShNormalization::component;
    ASSERT_TRUE(normalization == "component" || mode != ShNormalization::component) << normalization;
    EXPECT_LT(relative_error(spherical_harmonics(lmax, v, ref.attr("normalize").toBool(), mode), run(ref, {v})),
              kTolerance);
  }
}

struct MaceCase {
  const char* case_name;
  Irreps target;  // simplify(sort(sh * F)), docs/layers.md#mace-layer
  Irreps hidden;
  int correlation;
  int64_t num_elements;
};

TEST(ReferenceModules, SymmetricContractionAndUMatrices) {
  at::manual_seed(109);
  const std::vector<MaceCase> cases = {
      {"layer_MACE_layer_0", Irreps("4x0e+4x1o"), Irreps("4x0e+4x1o"), 2, 2},
      {"layer_MACE_layer_1", Irreps("3x0e+3x1o+3x2e"), Irreps("3x0e+3x1o+3x2e"), 3, 3},
      {"layer_MACE_layer_2", Irreps("4x0e+4x1o+4x2e"), Irreps("4x0e"), 1, 2},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.case_name);
    torch::jit::Module ref = submodule(load_case(c.case_name), "layer.product.symmetric_contractions");
    SymmetricContractionImpl mine(c.target, c.hidden, c.correlation, c.num_elements);
    // U matrices computed from scratch vs MACE's buffers.
    std::map<std::string, at::Tensor> ref_buffers;
    for (const auto& b : ref.named_buffers()) ref_buffers[b.name] = b.value;
    int u_checked = 0;
    for (const auto& b : mine.named_buffers()) {
      if (b.key().find("U_matrix_") == std::string::npos) continue;
      ASSERT_TRUE(ref_buffers.count(b.key())) << b.key();
      ASSERT_EQ(b.value().sizes(), ref_buffers[b.key()].sizes()) << b.key();
      EXPECT_LT((b.value() - ref_buffers[b.key()]).abs().max().item<double>(), 1e-14) << b.key();
      ++u_checked;
    }
    EXPECT_EQ(u_checked, static_cast<int>(c.hidden.size()) * c.correlation);
    load_by_name(mine, ref);
    const int64_t n = 6, f = c.target[0].mul;
    const at::Tensor x = at::randn({n, f, c.target.dim() / f}, at::kDouble);
    const at::Tensor attrs = at::randn({n, c.num_elements}, at::kDouble);
    EXPECT_LT(relative_error(mine.forward(x, attrs), run(ref, {x, attrs})), kTolerance);
  }
}

// Minimal reader for the {"dtype","shape","data"} tensors of reference.json.
at::Tensor reference_tensor(const std::string& case_name, const std::string& section, const std::string& name) {
  std::ifstream file(conformance_file(case_name, "reference.json"));
  std::stringstream buffer;
  buffer << file.rdbuf();
  const std::string text = buffer.str();
  size_t pos = text.find("\"" + section + "\": {");
  pos = text.find("\"" + name + "\":", pos);
  const size_t shape_at = text.find('[', text.find("\"shape\":", pos));
  const size_t data_at = text.find('[', text.find("\"data\":", pos));
  if (pos == std::string::npos || shape_at == std::string::npos || data_at == std::string::npos)
    throw std::runtime_error("reference.json of " + case_name + " has no " + section + "." + name);
  auto numbers = [&](size_t start) {
    std::vector<double> values;
    int depth = 0;
    for (size_t i = start; i < text.size(); ++i) {
      const char ch = text[i];
      if (ch == '[') ++depth;
      else if (ch == ']') {
        if (--depth == 0) break;
      } else if (ch == '-' || ch == '.' || std::isdigit(static_cast<unsigned char>(ch))) {
        char* end = nullptr;
        values.push_back(std::strtod(text.c_str() + i, &end));
        i = static_cast<size_t>(end - text.c_str()) - 1;
      }
    }
    return values;
  };
  std::vector<int64_t> shape;
  for (double d : numbers(shape_at)) shape.push_back(static_cast<int64_t>(d));
  return at::tensor(numbers(data_at), at::kDouble).view(shape);
}

// AtomwiseLinear is one o3.Linear; GatedAtomwiseLinear is lin2(gate(lin1(h)))
// (docs/layers.md#atomwise-linear, #gated-atomwise-linear).
TEST(ReferenceModules, LayersEndToEndAgainstReferenceJson) {
  {
    torch::jit::Module root = load_case("layer_AtomwiseLinear_0");
    LinearImpl linear(Irreps("4x0e+3x1o+2x2e"), Irreps("2x0e+2x1o+1x2e"));
    load_by_name(linear, submodule(root, "layer.linear"));
    const at::Tensor h = reference_tensor("layer_AtomwiseLinear_0", "inputs", "h");
    EXPECT_LT(relative_error(linear.forward(h), reference_tensor("layer_AtomwiseLinear_0", "outputs", "h")),
              kTolerance);
  }
  {
    torch::jit::Module root = load_case("layer_GatedAtomwiseLinear_1");
    const Irreps in("2x0e+2x1o+2x1e"), sc("2x0e"), gt("4x0e"), gd("2x1o+2x1e");
    LinearImpl lin1(in, (sc + gt + gd).simplify());
    GateImpl gate(sc, {"silu"}, gt, {"silu"}, gd);
    LinearImpl lin2(gate.irreps_out(), Irreps("1x0e+2x1e"));
    load_by_name(lin1, submodule(root, "layer.lin1"));
    load_by_name(gate, submodule(root, "layer.gate"));
    load_by_name(lin2, submodule(root, "layer.lin2"));
    const at::Tensor h = reference_tensor("layer_GatedAtomwiseLinear_1", "inputs", "h");
    EXPECT_LT(relative_error(lin2.forward(gate.forward(lin1.forward(h))),
                             reference_tensor("layer_GatedAtomwiseLinear_1", "outputs", "h")),
              kTolerance);
  }
}

}  // namespace
}  // namespace klay::e3nn
