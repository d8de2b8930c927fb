// klay::Model: instantiation, alias weight sharing, the executor (bindings, `output:` maps,
// output subsets, dead layers, release of values), dtype handling and build errors.
#include <gtest/gtest.h>

#include <cstring>

#include <ATen/ATen.h>

#include "klay_layer_table.h"
#include "runtime/error.hpp"
#include "runtime/model.hpp"

namespace klay {
namespace {

// The seed MLP: a shared Linear called twice (dense and its alias second_pass).
const char* kSeedMlp = R"yaml(
model_inputs:
  x: "(N,16) tensor you feed at runtime"
model_layers:
  dense: {type: ArbitraryModule, config: {target: torch.nn.Linear, args: [16, 16]}, inputs: {0: model_inputs.x}}
  relu: {type: ArbitraryModule, config: {target: torch.nn.ReLU}, inputs: {0: dense}}
  second_pass: {alias: dense, inputs: {0: relu}}
  relu2: {type: ArbitraryModule, config: {target: torch.nn.functional.relu}, inputs: {0: second_pass}}
model_outputs:
  preds: relu2
)yaml";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

at::Tensor find_state(const Model& model, const std::string& name) {
  for (const auto& entry : model.state_dict())
    if (entry.first == name) return entry.second;
  return at::Tensor();
}

TEST(Model, SeedMlpSharesTheLinearAndComputesLinearReluLinearRelu) {
  const auto model = Model::load_string(kSeedMlp, "seed.yaml", "");
  EXPECT_EQ(model->input_names(), std::vector<std::string>{"x"});
  EXPECT_EQ(model->output_names(), std::vector<std::string>{"preds"});

  std::vector<std::string> keys;
  for (const auto& entry : model->state_dict()) keys.push_back(entry.first);
  EXPECT_EQ(keys, (std::vector<std::string>{"dense.module.weight", "dense.module.bias", "second_pass.module.weight",
                                            "second_pass.module.bias"}));
  const at::Tensor w = find_state(*model, "dense.module.weight");
  const at::Tensor b = find_state(*model, "dense.module.bias");
  // One module, two names: the very same tensors.
  EXPECT_TRUE(w.is_same(find_state(*model, "second_pass.module.weight")));
  EXPECT_TRUE(b.is_same(find_state(*model, "second_pass.module.bias")));
  EXPECT_EQ(w.scalar_type(), at::kDouble);
  EXPECT_EQ(w.sizes(), (std::vector<int64_t>{16, 16}));

  const at::Tensor x = at::randn({5, 16}, at::kDouble);
  const at::Tensor y = model->forward({x})[0];
  const at::Tensor h = at::relu(at::matmul(x, w.t()) + b);
  const at::Tensor expected = at::relu(at::matmul(h, w.t()) + b);
  EXPECT_TRUE(at::allclose(y, expected, 1e-14, 1e-14));
}

TEST(Model, Float32ModeCastsParametersOnceAndInputsAtCall) {
  const auto model64 = Model::load_string(kSeedMlp, "seed.yaml", "");
  const auto model32 = Model::load_string(kSeedMlp, "seed.yaml", "", at::kFloat);
  // Same initial weights are not guaranteed (random init): copy the float64 ones in.
  {
    at::NoGradGuard no_grad;
    for (const auto& entry : model32->state_dict()) {
      EXPECT_EQ(entry.second.scalar_type(), at::kFloat) << entry.first;
      entry.second.copy_(find_state(*model64, entry.first));
    }
  }
  const at::Tensor x = at::randn({3, 16}, at::kDouble);
  const at::Tensor y32 = model32->forward({x})[0];
  EXPECT_EQ(y32.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::allclose(y32.to(at::kDouble), model64->forward({x})[0], 1e-5, 1e-5));
}

const char* kTwoBranches = R"yaml(
model_inputs: {x: "(N,3)", y: "(N,2)"}
model_layers:
  good: {type: ArbitraryModule, config: {target: torch.tanh}, inputs: {0: x}}
  bad: {type: ArbitraryModule, config: {target: torch.matmul}, inputs: {0: x, 1: y}}
  sorted: {type: ArbitraryModule, config: {target: torch.sort, kwargs: {dim: 1}}, inputs: {0: x},
           output: {0: sorted_values, 1: sorted_indices}}
model_outputs:
  tanh: good
  product: bad
  values: sorted_values
  indices: sorted_indices
)yaml";

TEST(Model, RunsOnlyTheLayersTheRequestedOutputsNeed) {
  const auto model = Model::load_string(kTwoBranches, "branches.yaml", "");
  const at::Tensor x = at::randn({4, 3}, at::kDouble), y = at::randn({4, 2}, at::kDouble);
  // `bad` (a (4,3)x(4,2) matmul) fails when it runs; asking for the others must not run it.
  const auto outputs = model->forward({x, y}, {model->output_index("indices"), model->output_index("tanh")});
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_TRUE(at::equal(outputs[0], std::get<1>(at::sort(x, 1))));
  EXPECT_TRUE(at::equal(outputs[1], at::tanh(x)));
  const std::string error = error_of([&] { model->forward({x, y}); });
  EXPECT_NE(error.find("layer 'bad'"), std::string::npos) << error;
  EXPECT_NE(error.find("branches.yaml:5:"), std::string::npos) << error;
}

TEST(Model, OutputMapsIndexTuplesAndSeveralOutputsFormATuple) {
  const auto model = Model::load_string(kTwoBranches, "branches.yaml", "");
  const at::Tensor x = at::randn({4, 3}, at::kDouble), y = at::randn({3, 2}, at::kDouble);
  const c10::IValue all = model->forward_klay({x, y});
  ASSERT_TRUE(all.isTuple());
  const auto& elements = all.toTupleRef().elements();
  ASSERT_EQ(elements.size(), 4u);
  EXPECT_TRUE(at::equal(elements[1].toTensor(), at::matmul(x, y)));
  EXPECT_TRUE(at::equal(elements[2].toTensor(), std::get<0>(at::sort(x, 1))));
}

TEST(Model, OneOutputIsTheBareValue) {
  const auto model = Model::load_string(kSeedMlp, "seed.yaml", "");
  EXPECT_TRUE(model->forward_klay({at::randn({2, 16}, at::kDouble)}).isTensor());
}

TEST(Model, StringTailOnATupleFailsLikeKLay) {
  const char* yaml = R"yaml(
model_inputs: {x: "(N,3)"}
model_layers:
  sorted: {type: ArbitraryModule, config: {target: torch.sort}, inputs: {0: x}}
model_outputs: {values: sorted.0}
)yaml";
  const auto model = Model::load_string(yaml, "tail.yaml", "");
  const std::string error = error_of([&] { model->forward({at::randn({2, 3}, at::kDouble)}); });
  EXPECT_NE(error.find("with the string '0'"), std::string::npos) << error;
}

TEST(Model, KeywordPortsOfUnrestrictedLayersBindByPythonName) {
  const char* yaml = R"yaml(
model_inputs: {x: "(N,3)", y: "(N,3)"}
model_layers:
  sum: {type: ArbitraryModule, config: {target: torch.add, kwargs: {alpha: 2}}, inputs: {input: x, other: y}}
model_outputs: {s: sum}
)yaml";
  const auto model = Model::load_string(yaml, "kw.yaml", "");
  const at::Tensor x = at::randn({2, 3}, at::kDouble), y = at::randn({2, 3}, at::kDouble);
  EXPECT_TRUE(at::allclose(model->forward({x, y})[0], x + 2 * y, 0, 0));
}

TEST(Model, WrongNumberOfInputsIsAnError) {
  const auto model = Model::load_string(kSeedMlp, "seed.yaml", "");
  EXPECT_NE(error_of([&] { model->forward({}); }).find("takes 1 inputs, 0 given"), std::string::npos);
  // Indices past the outputs name plan nodes (node_value_index); past those, nothing.
  const int past_the_end = model->node_value_index(static_cast<int>(model->plan().n_nodes));
  const std::string error = error_of([&] { model->forward({at::zeros({1, 16})}, {past_the_end}); });
  EXPECT_NE(error.find("requested output index " + std::to_string(past_the_end) + " is out of range"),
            std::string::npos) << error;
}

TEST(Model, ExposesThePlanAndTheDocumentRoot) {
  const auto model = Model::load_string(std::string(kSeedMlp) + "md: {cutoff: 4.5}\n", "seed.yaml", "");
  EXPECT_EQ(model->plan().n_nodes, 4u);
  EXPECT_EQ(model->plan().depth, 0);
  const klay_node* md = klay_map_get(model->root_node(), "md");
  ASSERT_NE(md, nullptr);
  ASSERT_NE(klay_map_get(md, "cutoff"), nullptr);
  EXPECT_EQ(klay_map_get(md, "cutoff")->real, 4.5);
}

}  // namespace
}  // namespace klay
