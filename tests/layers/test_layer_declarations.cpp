// The layer table (src/layer_table.c) is the one declaration of each layer type: these tests prove
// that the C++ registry implements exactly its types and ports, that `klay validate` (the builder's
// plan) and loading a model give the same verdict at the same place for an unknown config key of
// every type, and that a declared default is the value the layer computes with.
#include <set>

#include <gtest/gtest.h>

#include "conv_layer_testing.hpp"
#include "layers/diags.hpp"
#include "runtime/model.hpp"

namespace klay::testing {
namespace {

std::vector<std::string> names(const char* const* list) {
  std::vector<std::string> out;
  for (; list && *list; ++list) out.emplace_back(*list);
  return out;
}

std::vector<const klay_layer_spec*> declared_layers() {
  const klay_layer_table* table = klay_layer_table_get();
  std::vector<const klay_layer_spec*> specs;
  for (size_t i = 0; i < table->count; ++i) specs.push_back(&table->specs[i]);
  return specs;
}

TEST(LayerDeclarations, RegistryImplementsExactlyTheDeclaredTypes) {
  std::set<std::string> declared;
  for (const klay_layer_spec* spec : declared_layers()) declared.insert(spec->name);
  const std::vector<std::string> implemented = implemented_layer_types();
  EXPECT_EQ(declared, std::set<std::string>(implemented.begin(), implemented.end()));
}

TEST(LayerDeclarations, RegisteredPortsAreTheDeclaredPorts) {
  for (const klay_layer_spec* spec : declared_layers()) {
    const LayerPorts* ports = find_layer_ports(spec->name);
    ASSERT_NE(ports, nullptr) << spec->name;
    EXPECT_EQ(ports->inputs, names(spec->inputs)) << spec->name;
    EXPECT_EQ(ports->outputs, names(spec->outputs)) << spec->name;
  }
}

TEST(LayerDeclarations, EveryDefaultIsYamlOfItsDeclaredType) {
  for (const klay_layer_spec* spec : declared_layers())
    for (const klay_config_arg* arg = spec->config_args; arg->name; ++arg) {
      if (!arg->default_text) continue;
      const klay_node* value = declared_default(*arg);
      ASSERT_NE(value, nullptr) << spec->name << "." << arg->name;
      if (value->kind == KLAY_NULL) continue;
      EXPECT_TRUE(klay_config_type_accepts(arg->type, value))
          << spec->name << "." << arg->name << " = " << arg->default_text << " is not "
          << klay_config_type_text(arg->type);
    }
}

// ---------------------------------------------------------------------------------------------
// An unknown config key: the same error, at the same line and column, from `klay validate`'s plan,
// from loading the model, and from building the layer alone.

// A model with one layer of `spec`'s type whose ports are all bound to model inputs.
std::string one_layer_model(const klay_layer_spec& spec) {
  std::string inputs = "model_inputs:\n", bindings;
  const std::vector<std::string> ports = names(spec.inputs);
  for (size_t p = 0; p < ports.size(); ++p) {
    inputs += "  in" + std::to_string(p) + ": \"\"\n";
    bindings += (p ? ", " : "") + (ports[p] == "*" ? std::string("0") : ports[p]) + ": model_inputs.in" +
                std::to_string(p);
  }
  return inputs + "model_layers:\n  probe:\n    type: " + spec.name +
         "\n    config: {not_a_key: 1}\n    inputs: {" + bindings + "}\nmodel_outputs: {y: probe}\n";
}

class UnknownConfigKey : public ::testing::TestWithParam<const klay_layer_spec*> {};

TEST_P(UnknownConfigKey, IsTheSameErrorInValidateAndAtLoad) {
  const klay_layer_spec& spec = *GetParam();
  const std::string yaml = one_layer_model(spec);
  // The key is on the line after model_inputs, one line per port, model_layers, probe and type.
  const std::string line = std::to_string(names(spec.inputs).size() + 5);
  const std::string expected =
      "probe.yaml:" + line + ":14: error: layer 'probe' (" + spec.name + "): unknown config key 'not_a_key'";

  Diags diags;
  klay_doc* doc = klay_doc_load_string(yaml.data(), yaml.size(), "probe.yaml", &diags.list);
  ASSERT_NE(doc, nullptr) << diags_text(diags.list);
  klay_plan* plan = klay_plan_build(doc, klay_layer_table_get(), 0, &diags.list);
  const std::string validated = diags_text(diags.list);
  klay_plan_free(plan);
  klay_doc_free(doc);
  EXPECT_EQ(plan, nullptr) << "klay validate accepts an unknown key of " << spec.name;
  EXPECT_NE(validated.find(expected), std::string::npos) << validated;

  std::string loaded;
  try {
    Model::load_string(yaml, "probe.yaml", "");
  } catch (const Error& e) {
    loaded = e.what();
  }
  EXPECT_NE(loaded.find(expected), std::string::npos) << loaded;

  // A layer built without the builder (as the layer tests do) checks its config the same way.
  const std::string alone = build_error(spec.name, "{not_a_key: 1}");
  EXPECT_NE(alone.find(std::string("<test>:1:10: error: layer 'layer' (") + spec.name +
                       "): unknown config key 'not_a_key'"),
            std::string::npos)
      << alone;
}

INSTANTIATE_TEST_SUITE_P(EveryLayerType, UnknownConfigKey, ::testing::ValuesIn(declared_layers()),
                         [](const ::testing::TestParamInfo<const klay_layer_spec*>& info) {
                           return std::string(info.param->name);
                         });

TEST(UnknownConfigKey, SuggestsTheDeclaredKeyInValidateAndAlone) {
  const std::string alone = build_error("SphericalHarmonicEdgeAttrs", "{lmx: 2}");
  EXPECT_NE(alone.find("unknown config key 'lmx'; did you mean 'lmax'?"), std::string::npos) << alone;
}

TEST(ConfigTypes, AWrongKindIsRejectedBeforeTheLayerReadsIt) {
  const std::string alone = build_error("SphericalHarmonicEdgeAttrs", "{lmax: two}");
  EXPECT_NE(alone.find("<test>:1:16: error: layer 'layer', config 'lmax': expected an integer, got string"),
            std::string::npos)
      << alone;
}

// ---------------------------------------------------------------------------------------------
// A declared default is what the layer uses: leaving the key out computes exactly what setting it
// to the declared value computes, and another value computes something else.

void expect_default_is(const std::string& type, const std::string& base, const std::string& key,
                       const std::string& declared, const std::string& other, const std::vector<c10::IValue>& args) {
  const klay_config_arg* arg =
      klay_config_arg_find(klay_layer_table_find(klay_layer_table_get(), type.c_str()), key.c_str());
  ASSERT_NE(arg, nullptr);
  ASSERT_NE(arg->default_text, nullptr);
  EXPECT_EQ(std::string(arg->default_text), declared) << type << "." << key;
  auto with = [&](const std::string& extra) {
    auto layer = build_layer(type, "{" + base + (base.empty() || extra.empty() ? "" : ", ") + extra + "}");
    c10::IValue out = layer->call(CallArgs{args, {}});
    return out.isTuple() ? out.toTupleRef().elements().back().toTensor() : out.toTensor();
  };
  const at::Tensor omitted = with(""), explicit_default = with(key + ": " + declared);
  const at::Tensor changed = with(key + ": " + other);
  EXPECT_TRUE(at::equal(omitted, explicit_default)) << type << "." << key;
  EXPECT_FALSE(omitted.sizes() == changed.sizes() && at::equal(omitted, changed)) << type << "." << key;
}

TEST(DeclaredDefaults, AreTheValuesTheLayersComputeWith) {
  const at::Tensor r = at::tensor(std::vector<double>{0.5, 1.25, 2.0, 3.5}, f64());
  expect_default_is("PolynomialCutoff", "r_max: 4.0", "polynomial_degree", "6", "7", {r});
  expect_default_is("BesselBasis", "r_max: 4.0", "num_radial_basis", "8", "5", {r});
  expect_default_is("RadialBasisEdgeEncoding", "r_max: 4.0", "polynomial_degree", "6", "3", {r});

  const at::Tensor pos = at::tensor(std::vector<double>{0, 0, 0, 0.3, 0.9, -0.4, -1.1, 0.2, 0.7}, f64()).view({3, 3});
  const at::Tensor edges = at::tensor(std::vector<int64_t>{0, 1, 2, 1, 2, 0}, at::kLong).view({2, 3});
  const at::Tensor shift = at::zeros({3, 3}, f64());
  expect_default_is("SphericalHarmonicEdgeAttrs", "", "lmax", "1", "2", {pos, edges, shift});
  expect_default_is("SphericalHarmonicEdgeAttrs", "lmax: 2", "normalization", "component", "norm",
                    {pos, edges, shift});
}

}  // namespace
}  // namespace klay::testing
