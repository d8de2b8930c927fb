// ArbitraryModule: each kind of target (torch.nn class, ATen function, custom operator,
// TorchScript module) and its build-time errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include <ATen/ATen.h>
#include <torch/script.h>

#include "base/error.hpp"
#include "runtime/model.hpp"

namespace klay {
namespace {

// A one-layer model `layer` fed by the inputs named in `inputs` ("{0: x}").
std::unique_ptr<Model> one_layer(const std::string& config, const std::string& inputs = "{0: x}",
                                 const std::string& model_inputs = "{x: t}", at::ScalarType dtype = at::kDouble) {
  const std::string yaml = "model_inputs: " + model_inputs +
                           "\nmodel_layers:\n  layer:\n    type: ArbitraryModule\n    config: " + config +
                           (inputs.empty() ? "" : "\n    inputs: " + inputs) + "\nmodel_outputs: {y: layer}\n";
  return Model::load_string(yaml, "am.yaml", "", dtype);
}

std::string build_error(const std::string& config, const std::string& inputs = "{0: x}") {
  try {
    one_layer(config, inputs);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> state_keys(const Model& model) {
  std::vector<std::string> keys;
  for (const auto& e : model.state_dict()) keys.push_back(e.first);
  return keys;
}

// ---- torch.nn classes

TEST(ArbitraryModule, LinearWithoutBiasHasOnlyAWeight) {
  const auto model = one_layer("{target: torch.nn.Linear, args: [3], kwargs: {out_features: 2, bias: false}}");
  EXPECT_EQ(state_keys(*model), std::vector<std::string>{"layer.module.weight"});
  const at::Tensor w = model->state_dict()[0].second;
  EXPECT_EQ(w.sizes(), (std::vector<int64_t>{2, 3}));
  const at::Tensor x = at::randn({4, 3}, at::kDouble);
  EXPECT_TRUE(at::allclose(model->forward({x})[0], at::matmul(x, w.t()), 1e-15, 1e-15));
}

TEST(ArbitraryModule, SequentialNamesItsChildrenByPosition) {
  const auto model = one_layer(
      "{target: torch.nn.Sequential, args: [{target: torch.nn.Linear, args: [3, 5]}, {target: torch.nn.SiLU},"
      " {target: torch.nn.LayerNorm, args: [5]}, {target: torch.nn.Dropout, kwargs: {p: 0.3}}]}");
  EXPECT_EQ(state_keys(*model), (std::vector<std::string>{"layer.module.0.weight", "layer.module.0.bias",
                                                          "layer.module.2.weight", "layer.module.2.bias"}));
  const auto sd = model->state_dict();
  const at::Tensor x = at::randn({4, 3}, at::kDouble);
  const at::Tensor h = at::silu(at::linear(x, sd[0].second, sd[1].second));
  const at::Tensor expected = at::layer_norm(h, {5}, sd[2].second, sd[3].second, 1e-5);
  EXPECT_TRUE(at::allclose(model->forward({x})[0], expected, 1e-14, 1e-14));
}

TEST(ArbitraryModule, EmbeddingAndBilinearKeepPythonParameterNames) {
  const auto embedding = one_layer("{target: torch.nn.Embedding, kwargs: {num_embeddings: 4, embedding_dim: 2}}");
  EXPECT_EQ(state_keys(*embedding), std::vector<std::string>{"layer.module.weight"});
  const at::Tensor index = at::tensor({3, 0, 3}, at::kLong);
  EXPECT_TRUE(at::equal(embedding->forward({index})[0], embedding->state_dict()[0].second.index_select(0, index)));

  const auto bilinear = one_layer("{target: torch.nn.Bilinear, args: [2, 3, 4]}", "{input1: a, input2: b}", "{a: t, b: t}");
  EXPECT_EQ(state_keys(*bilinear), (std::vector<std::string>{"layer.module.weight", "layer.module.bias"}));
  EXPECT_EQ(bilinear->forward({at::randn({5, 2}, at::kDouble), at::randn({5, 3}, at::kDouble)})[0].sizes(),
            (std::vector<int64_t>{5, 4}));
}

TEST(ArbitraryModule, ActivationModulesTakeTheirPythonArguments) {
  const at::Tensor x = at::randn({4, 5}, at::kDouble);
  struct Case {
    std::string config;
    at::Tensor expected;
  };
  const std::vector<Case> cases = {
      {"{target: torch.nn.ReLU, kwargs: {inplace: true}}", at::relu(x)},
      {"{target: torch.nn.LeakyReLU, args: [0.2]}", at::leaky_relu(x, 0.2)},
      {"{target: torch.nn.Softplus, kwargs: {beta: 2.0}}", at::softplus(x, 2.0, 20.0)},
      {"{target: torch.nn.Softmax, kwargs: {dim: 0}}", at::softmax(x, 0)},
      {"{target: torch.nn.Softmax}", at::softmax(x, 1)},  // Python's implicit dim for 2-D input
      {"{target: torch.nn.GELU, kwargs: {approximate: tanh}}", at::gelu(x, "tanh")},
      {"{target: torch.nn.ELU, kwargs: {alpha: 0.5}}", at::elu(x, 0.5)},
      {"{target: torch.nn.Tanh}", at::tanh(x)},
      {"{target: torch.nn.Identity}", x},
  };
  for (const Case& c : cases)
    EXPECT_TRUE(at::allclose(one_layer(c.config)->forward({x})[0], c.expected, 1e-15, 1e-15)) << c.config;
}

// ---- ATen functions

TEST(ArbitraryModule, AtenFunctionBindsArgsKwargsAndPythonNames) {
  const at::Tensor x = at::randn({4, 5}, at::kDouble);
  EXPECT_TRUE(at::equal(one_layer("{target: torch.sum, kwargs: {dim: 1, keepdim: true}}")->forward({x})[0],
                        x.sum(1, true)));
  // Python's `input` is ATen's `self`; the graph value comes in as a keyword port.
  EXPECT_TRUE(at::equal(one_layer("{target: torch.nn.functional.softplus, kwargs: {beta: 2}}", "{input: x}")->forward({x})[0],
                        at::softplus(x, 2, 20)));
  // Config args come first (partial), graph inputs after them: torch.pow(2, x) = 2**x.
  EXPECT_TRUE(at::allclose(one_layer("{target: torch.pow, args: [2.0]}")->forward({x})[0], at::pow(2.0, x), 1e-15, 0));
  EXPECT_TRUE(at::equal(one_layer("{target: torch.nn.functional.one_hot, kwargs: {num_classes: 4}}")->forward(
                            {at::tensor({0, 3}, at::kLong)})[0],
                        at::one_hot(at::tensor({0, 3}, at::kLong), 4)));
  EXPECT_TRUE(at::equal(one_layer("{target: torch.nn.functional.silu, kwargs: {inplace: false}}")->forward({x})[0],
                        at::silu(x)));
  const at::Tensor normalized = one_layer("{target: torch.nn.functional.normalize, kwargs: {dim: -1}}")->forward({x})[0];
  EXPECT_TRUE(at::allclose(normalized.norm(2, -1), at::ones({4}, at::kDouble), 1e-15, 1e-15));
  EXPECT_TRUE(at::equal(one_layer("{target: torch.nn.functional.dropout, kwargs: {p: 0.9}}")->forward({x})[0], x));
}

TEST(ArbitraryModule, ScalarTypeArgumentsFromStrings) {
  const at::Tensor x = at::randn({3}, at::kDouble);
  const at::Tensor y = one_layer("{target: torch.cumsum, kwargs: {dim: 0, dtype: torch.float32}}")->forward({x})[0];
  EXPECT_EQ(y.scalar_type(), at::kFloat);
}

TEST(ArbitraryModule, FactoryWithoutInputsUsesTheModelFloatingDtype) {
  const auto model = one_layer("{target: torch.zeros, args: [1, 3]}", "", "{}");
  const at::Tensor z = model->forward({})[0];
  EXPECT_EQ(z.scalar_type(), at::kDouble);
  EXPECT_EQ(z.sizes(), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(z.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(one_layer("{target: torch.zeros, args: [1, 3]}", "", "{}", at::kFloat)->forward({})[0].scalar_type(),
            at::kFloat);
  // Integer factories keep Python's inferred dtype.
  EXPECT_EQ(one_layer("{target: torch.arange, args: [5]}", "", "{}")->forward({})[0].scalar_type(), at::kLong);
  EXPECT_EQ(one_layer("{target: torch.ones, args: [[2]], kwargs: {dtype: torch.int32}}", "", "{}")
                ->forward({})[0].scalar_type(),
            at::kInt);
}

// ---- torch.ops custom operators

TEST(ArbitraryModule, CustomOperatorFromASharedLibrary) {
  const auto model =
      one_layer(std::string("{target: torch.ops.klay_test.twice, library: '") + KLAY_TEST_OPS_LIBRARY + "'}");
  const at::Tensor x = at::randn({3}, at::kDouble);
  EXPECT_TRUE(at::equal(model->forward({x})[0], 2 * x));
  const std::string error = build_error("{target: torch.ops.klay_test.twice_}");
  EXPECT_NE(error.find("is not registered"), std::string::npos) << error;
  EXPECT_NE(error.find("did you mean 'torch.ops.klay_test.twice'"), std::string::npos) << error;
}

// ---- TorchScript

TEST(ArbitraryModule, TorchScriptModuleWithItsParametersUnderModule) {
  const std::filesystem::path path = std::filesystem::temp_directory_path() / "klay_test_scaler.pt";
  {
    torch::jit::Module scaler("Scaler");
    scaler.register_parameter("scale", at::full({3}, 2.0, at::kDouble), false);
    torch::jit::Module inner("Inner");
    inner.register_buffer("shift", at::full({3}, 0.5, at::kDouble));
    inner.define("def forward(self, x):\n    return x + self.shift\n");
    scaler.register_module("inner", inner);
    scaler.define("def forward(self, x, y):\n    return self.inner.forward(x * self.scale) - y\n");
    scaler.save(path.string());
  }
  const auto model =
      one_layer("{target: torchscript, path: '" + path.string() + "'}", "{0: x, y: z}", "{x: t, z: t}");
  EXPECT_EQ(state_keys(*model), (std::vector<std::string>{"layer.module.scale", "layer.module.inner.shift"}));
  const at::Tensor x = at::randn({3}, at::kDouble), z = at::randn({3}, at::kDouble);
  EXPECT_TRUE(at::allclose(model->forward({x, z})[0], x * 2 + 0.5 - z, 1e-15, 1e-15));
  // Weights written through the state_dict reach the scripted module.
  {
    at::NoGradGuard no_grad;
    model->state_dict()[0].second.fill_(3.0);
  }
  EXPECT_TRUE(at::allclose(model->forward({x, z})[0], x * 3 + 0.5 - z, 1e-15, 1e-15));
  std::filesystem::remove(path);

  const std::string error = build_error("{target: torchscript, path: /nonexistent/model.pt}");
  EXPECT_NE(error.find("cannot load TorchScript module"), std::string::npos) << error;
}

// ---- errors

TEST(ArbitraryModule, UnknownTargetsSuggestTheClosestName) {
  std::string error = build_error("{target: torch.nn.Linearr, args: [2, 2]}");
  EXPECT_NE(error.find("did you mean 'torch.nn.Linear'"), std::string::npos) << error;
  EXPECT_EQ(error.rfind("am.yaml:", 0), 0u) << error;
  error = build_error("{target: torch.nn.functional.sillu}");
  EXPECT_NE(error.find("unknown target 'torch.nn.functional.sillu'"), std::string::npos) << error;
  EXPECT_NE(error.find("did you mean 'torch.nn.functional.silu'"), std::string::npos) << error;
  error = build_error("{target: numpy.sin}");
  EXPECT_NE(error.find("unknown target 'numpy.sin'"), std::string::npos) << error;
}

TEST(ArbitraryModule, BadArgumentsAreBuildErrors) {
  std::string error = build_error("{target: torch.nn.Linear, args: [16]}");
  EXPECT_NE(error.find("missing required argument 'out_features'"), std::string::npos) << error;
  error = build_error("{target: torch.nn.Linear, args: [2, 2], kwargs: {biass: false}}");
  EXPECT_NE(error.find("unexpected keyword argument 'biass' (did you mean 'bias'?)"), std::string::npos) << error;
  error = build_error("{target: torch.nn.Linear, args: [2, 2.5]}");
  EXPECT_NE(error.find("'out_features' must be an int"), std::string::npos) << error;
  error = build_error("{target: torch.sum, kwargs: {dimm: 1}}");
  EXPECT_NE(error.find("torch.sum: no overload accepts"), std::string::npos) << error;
  EXPECT_NE(error.find("unexpected keyword argument 'dimm'"), std::string::npos) << error;
  error = build_error("{target: torch.nn.ReLU}", "{0: x, 1: x}");
  EXPECT_NE(error.find("torch.nn.ReLU takes 1 inputs"), std::string::npos) << error;
  error = build_error("{target: torch.nn.ReLU, path: x.pt}");
  EXPECT_NE(error.find("only used with torchscript"), std::string::npos) << error;
}

}  // namespace
}  // namespace klay
