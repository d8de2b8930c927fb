// Every weights file of the conformance cases (written by Python torch.save) reads back with the
// keys, shapes, dtypes and values Python sees. Values are checked against libtorch's own reader
// of the same cases' TorchScript archives and against numbers printed by Python torch.load.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "weights_testing.hpp"
#include "weights/state_dict.hpp"

namespace {
namespace fs = std::filesystem;
using klay_test::conformance_dir;
using klay_test::conformance_files;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// reference.json's checks.<field> (an integer count of state_dict keys).
int64_t reference_count(const fs::path& case_dir, const std::string& field) {
  const std::string text = read_text(case_dir / "reference.json");
  const std::string key = "\"" + field + "\": ";
  const size_t at = text.find(key);
  return at == std::string::npos ? -1 : std::stoll(text.substr(at + key.size(), 12));
}

// The names quoted (as \"name\") in the JSON-in-a-string alias listing of a staged case:
// "... identical tensors): {\"a\": \"b\", \"c\": \"d\"}" -> a, b, c, d.
std::vector<std::string> alias_listing(const std::string& text) {
  const std::string opening = "identical tensors): {";
  const size_t begin = text.find(opening);
  if (begin == std::string::npos) return {};
  const size_t end = text.find('}', begin);
  const std::string listing = text.substr(begin + opening.size(), end - begin - opening.size());
  const std::string quote = "\\\"";
  std::vector<std::string> names;
  for (size_t at = listing.find(quote); at != std::string::npos;) {
    const size_t close = listing.find(quote, at + quote.size());
    if (close == std::string::npos) break;
    names.push_back(listing.substr(at + quote.size(), close - at - quote.size()));
    at = listing.find(quote, close + quote.size());
  }
  return names;
}

TEST(ConformanceWeights, EveryTorchSaveFileLoadsWithTheReferenceKeyCount) {
  std::vector<fs::path> files = conformance_files("weights.pth");
  const std::vector<fs::path> periodic = conformance_files("periodic_weights.pth");
  ASSERT_EQ(files.size(), 48u);
  ASSERT_EQ(periodic.size(), 4u);
  files.insert(files.end(), periodic.begin(), periodic.end());
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.string());
    const klay::StateDict sd = klay::load_state_dict(file.string());
    EXPECT_EQ(sd.format, "torch.save (zip, pickle protocol 2)");
    const std::string field = file.filename() == "weights.pth" ? "state_dict_keys" : "periodic_state_dict_keys";
    EXPECT_EQ(int64_t(sd.entries.size()), reference_count(file.parent_path(), field));
    std::set<std::string> names;
    for (const auto& [name, tensor] : sd.entries) {
      EXPECT_TRUE(names.insert(name).second) << "duplicate " << name;
      // Built under float64: every floating tensor is float64 except ElectronicConfigurationEncoding's
      // float32 e_config table; the one integer buffer is OneHotAtomEncoding's int64 scalar.
      if (name.size() > 15 && name.compare(name.size() - 15, 15, ".z_to_idx_shift") == 0) {
        EXPECT_EQ(tensor.scalar_type(), at::kLong);
        EXPECT_EQ(tensor.dim(), 0);
      } else if (name == "layer.e_config") {
        EXPECT_EQ(tensor.scalar_type(), at::kFloat);
      } else {
        EXPECT_EQ(tensor.scalar_type(), at::kDouble) << name;
      }
      EXPECT_TRUE(tensor.is_contiguous());
    }
  }
}

TEST(ConformanceWeights, TorchSaveAndTorchScriptArchivesOfACaseHoldTheSameTensors) {
  const std::vector<fs::path> archives = conformance_files("model.pt");
  ASSERT_EQ(archives.size(), 27u);
  for (const fs::path& archive : archives) {
    SCOPED_TRACE(archive.string());
    const klay::StateDict scripted = klay::load_state_dict(archive.string());
    const klay::StateDict saved = klay::load_state_dict((archive.parent_path() / "weights.pth").string());
    EXPECT_EQ(scripted.format, "TorchScript (torch.jit.save)");
    ASSERT_EQ(scripted.entries.size(), saved.entries.size());
    for (size_t i = 0; i < saved.entries.size(); ++i) {
      const auto& [name, tensor] = saved.entries[i];
      EXPECT_EQ(scripted.entries[i].first, name) << "state_dict order";
      const at::Tensor* twin = scripted.find(name);
      ASSERT_NE(twin, nullptr) << name;
      EXPECT_EQ(twin->scalar_type(), tensor.scalar_type()) << name;
      EXPECT_EQ(twin->sizes(), tensor.sizes()) << name;
      EXPECT_TRUE(at::equal(*twin, tensor)) << name;
    }
  }
}

// Numbers printed by Python: torch.load(...)[key] (repr, round-trip exact).
TEST(ConformanceWeights, ValuesMatchPythonTorchLoad) {
  const klay::StateDict linear = klay::load_state_dict((conformance_dir() / "layer_AtomwiseLinear_1/weights.pth").string());
  ASSERT_EQ(linear.entries.size(), 3u);
  EXPECT_EQ(linear.entries[0].first, "layer.linear.weight");
  EXPECT_EQ(linear.entries[1].first, "layer.linear.bias");
  EXPECT_EQ(linear.entries[2].first, "layer.linear.output_mask");
  const at::Tensor weight = linear.entries[0].second;
  ASSERT_EQ(weight.sizes(), at::IntArrayRef({8}));
  EXPECT_EQ(weight[0].item<double>(), -0.02888102417808487);
  EXPECT_EQ(weight[1].item<double>(), -0.5729827262001999);
  EXPECT_EQ(weight[2].item<double>(), 0.5431406623327701);
  EXPECT_EQ(linear.entries[1].second.sizes(), at::IntArrayRef({0}));
  EXPECT_TRUE(at::equal(linear.entries[2].second, at::ones({5}, at::kDouble)));

  // A view: storage of 81 elements, offset 36, size (5, 9, 1), stride (9, 1, 1).
  const klay::StateDict mace = klay::load_state_dict((conformance_dir() / "layer_MACE_layer_1/weights.pth").string());
  const at::Tensor* u = mace.find("layer.product.symmetric_contractions.contractions.2.U_matrix_1");
  ASSERT_NE(u, nullptr);
  ASSERT_EQ(u->sizes(), at::IntArrayRef({5, 9, 1}));
  at::Tensor expected_u = at::zeros({5, 9, 1}, at::kDouble);
  for (int64_t i = 0; i < 5; ++i) expected_u[i][4 + i][0] = 1.0;
  EXPECT_TRUE(at::equal(*u, expected_u));

  const klay::StateDict econf =
      klay::load_state_dict((conformance_dir() / "layer_ElectronicConfigurationEncoding_0/weights.pth").string());
  const at::Tensor* table = econf.find("layer.e_config");
  ASSERT_NE(table, nullptr);
  ASSERT_EQ(table->sizes(), at::IntArrayRef({118, 24}));
  EXPECT_EQ(table->sum().item<double>(), 15516.0);
  const std::vector<float> iron = {26, 2, 2, 6, 2, 6, 6, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 6, 0};
  EXPECT_TRUE(at::equal((*table)[25], at::tensor(iron)));

  const klay::StateDict one_hot = klay::load_state_dict((conformance_dir() / "layer_OneHotAtomEncoding_1/weights.pth").string());
  ASSERT_EQ(one_hot.entries.size(), 1u);
  EXPECT_EQ(one_hot.entries[0].first, "layer.z_to_idx_shift");
  EXPECT_EQ(one_hot.entries[0].second.item<int64_t>(), 1);
}

TEST(ConformanceWeights, ModelKeysAndShapesInFileOrder) {
  const klay::StateDict sd = klay::load_state_dict((conformance_dir() / "model_nequip2_si8/weights.pth").string());
  // From Python: [(k, tuple(v.shape)) for k, v in torch.load(...).items()][:12] and the last one.
  const std::vector<std::pair<std::string, std::vector<int64_t>>> expected = {
      {"element_embedding.z_to_idx_shift", {}},
      {"node_features.linear.weight", {16}},
      {"node_features.linear.bias", {0}},
      {"node_features.linear.output_mask", {8}},
      {"radial_basis_func.basis.bessel_weights", {8}},
      {"conv1.equivariant_nonlin.mul.weight", {0}},
      {"conv1.equivariant_nonlin.mul.output_mask", {24}},
      {"conv1.conv.linear_1.weight", {64}},
      {"conv1.conv.linear_1.bias", {0}},
      {"conv1.conv.linear_1.output_mask", {8}},
      {"conv1.conv.fc.layer0.weight", {8, 16}},
      {"conv1.conv.fc.layer1.weight", {16, 16}}};
  ASSERT_EQ(sd.entries.size(), 48u);
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(sd.entries[i].first, expected[i].first);
    EXPECT_EQ(sd.entries[i].second.sizes(), at::IntArrayRef(expected[i].second)) << expected[i].first;
  }
  EXPECT_EQ(sd.entries.back().first, "readout2.linear.output_mask");
  const at::Tensor* w3j = sd.find("conv2.conv.tp._compiled_main_left_right._w3j_1_2_1");
  ASSERT_NE(w3j, nullptr);
  EXPECT_EQ(w3j->sizes(), at::IntArrayRef({3, 5, 3}));
}

// Aliased layers appear once per alias in a state_dict, with identical values.
TEST(ConformanceWeights, AliasDuplicatesAreEqual) {
  const klay::StateDict alias = klay::load_state_dict((conformance_dir() / "model_arbitrary_and_alias/weights.pth").string());
  ASSERT_EQ(alias.entries.size(), 4u);
  for (const char* parameter : {"weight", "bias"}) {
    const at::Tensor* dense = alias.find(std::string("dense.module.") + parameter);
    const at::Tensor* second = alias.find(std::string("second_pass.module.") + parameter);
    ASSERT_TRUE(dense && second);
    EXPECT_TRUE(at::equal(*dense, *second));
  }

  // Staged cases name their alias pairs in reference.json's "weights" note.
  int pairs = 0;
  for (const fs::path& file : conformance_files("periodic_weights.pth")) {
    const std::vector<std::string> names = alias_listing(read_text(file.parent_path() / "reference.json"));
    ASSERT_FALSE(names.empty());
    ASSERT_EQ(names.size() % 2, 0u);
    const klay::StateDict sd = klay::load_state_dict((file.parent_path() / "weights.pth").string());
    for (size_t i = 0; i < names.size(); i += 2) {
      const at::Tensor* a = sd.find(names[i]);
      const at::Tensor* b = sd.find(names[i + 1]);
      ASSERT_TRUE(a && b) << names[i] << " / " << names[i + 1];
      EXPECT_TRUE(at::equal(*a, *b));
      ++pairs;
    }
  }
  EXPECT_EQ(pairs, 5);
}

}  // namespace
