// klay::Model: instantiation, alias weight sharing, the executor (bindings, `output:` maps,
// output subsets, dead layers, release of values), dtype handling and build errors.
#include <gtest/gtest.h>

#include <cstring>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "klay_layer_table.h"
#include "base/error.hpp"
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
  const auto outputs = model->forward({x, y}, {Model::ValueRef::output(model->output_index("indices")),
                                                Model::ValueRef::output(model->output_index("tanh"))});
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

TEST(Model, AnErrorInAnAliasNamesTheCallSiteFirstAndItsTargetSecond) {
  const char* yaml = R"yaml(
model_inputs:
  x: "(N,16)"
model_layers:
  dense: {type: ArbitraryModule, config: {target: torch.nn.Linear, args: [16, 8]}, inputs: {0: model_inputs.x}}
  second_pass: {alias: dense, inputs: {0: dense}}
model_outputs:
  preds: second_pass
)yaml";
  const auto model = Model::load_string(yaml, "alias.yaml", "");
  const std::string error = error_of([&] { model->forward({at::zeros({2, 16}, at::kDouble)}); });
  EXPECT_EQ(error.rfind("alias.yaml:6:3: layer 'second_pass' (alias of 'dense', ArbitraryModule): ", 0), 0u) << error;
  EXPECT_EQ(error.find("'dense'"), error.find("(alias of 'dense'") + std::strlen("(alias of ")) << "dense named once: " << error;
}

TEST(Model, WrongNumberOfInputsIsAnError) {
  const auto model = Model::load_string(kSeedMlp, "seed.yaml", "");
  EXPECT_NE(error_of([&] { model->forward({}); }).find("takes 1 inputs, 0 given"), std::string::npos);
  const int n_nodes = static_cast<int>(model->plan().n_nodes);
  const std::string node_error =
      error_of([&] { model->forward({at::zeros({1, 16})}, {Model::ValueRef::node(n_nodes)}); });
  EXPECT_NE(node_error.find("requested plan node " + std::to_string(n_nodes) + " is out of range"),
            std::string::npos) << node_error;
  const int n_outputs = static_cast<int>(model->output_names().size());
  const std::string output_error =
      error_of([&] { model->forward({at::zeros({1, 16})}, {Model::ValueRef::output(n_outputs)}); });
  EXPECT_NE(output_error.find("requested output index " + std::to_string(n_outputs) + " is out of range"),
            std::string::npos) << output_error;
}

// Two NequIP convolutions; conv2 reads conv1's output, which is 4x0e+4x2e+4x1o (scalars, then the
// gated irreps even parity first). CONV2_BLOCKS is conv2's declared input_block.
const char* kTwoConvolutions = R"yaml(
model_inputs: {species: "(N,)", pos: "(N,3)", edge_index: "(2,E)", shift: "(E,3)"}
model_layers:
  embedding: {type: OneHotAtomEncoding, config: {num_elems: 1}, inputs: {x: species}}
  edges:
    type: SphericalHarmonicEdgeAttrs
    config: {lmax: SH_LMAX}
    inputs: {pos: pos, edge_index: edge_index, shift: shift}
    output: {0: vec, 1: len, 2: sh}
  basis: {type: RadialBasisEdgeEncoding, config: {r_max: 4.0, num_radial_basis: 8}, inputs: {edge_lengths: len}}
  features:
    type: AtomwiseLinear
    config: {irreps_in_block: [{l: 0, mul: EMBEDDING_MUL}], irreps_out_block: [{l: 0, mul: 4}]}
    inputs: {h: embedding}
  conv1:
    type: ConvNetLayer
    config: {hidden_irreps_lmax: 2, edge_sh_lmax: 2, conv_feature_size: 4, input_block: [{l: 0, mul: 4}],
             node_attr_block: [{l: 0, mul: 1}]}
    inputs: {x: embedding, h: features, edge_length_embeddings: basis, edge_sh: sh, edge_index: edge_index}
  conv2:
    type: ConvNetLayer
    config: {hidden_irreps_lmax: 2, edge_sh_lmax: 2, conv_feature_size: 4, input_block: CONV2_BLOCKS,
             node_attr_block: [{l: 0, mul: 1}]}
    inputs: {x: embedding, h: conv1, edge_length_embeddings: basis, edge_sh: sh, edge_index: edge_index}
model_outputs: {h: conv2}
)yaml";

std::string two_convolutions(const std::string& conv2_blocks, int sh_lmax = 2, int embedding_mul = 1) {
  std::string yaml = kTwoConvolutions;
  auto put = [&](const std::string& key, const std::string& value) { yaml.replace(yaml.find(key), key.size(), value); };
  put("CONV2_BLOCKS", conv2_blocks);
  put("SH_LMAX", std::to_string(sh_lmax));
  put("EMBEDDING_MUL", std::to_string(embedding_mul));
  return yaml;
}

TEST(Model, FeaturesMustBeReadInTheOrderTheirProducerReturnsThem) {
  const std::string in_order = "[{l: 0, mul: 4}, {l: 2, mul: 4, p: e}, {l: 1, mul: 4, p: o}]";
  EXPECT_NO_THROW(Model::load_string(two_convolutions(in_order), "conv.yaml", ""));
  // The same blocks merged or split where adjacent and equal leave the layout alone.
  EXPECT_NO_THROW(Model::load_string(
      two_convolutions("[{l: 0, mul: 1}, {l: 0, mul: 3}, {l: 2, mul: 4, p: e}, {l: 1, mul: 4, p: o}]"), "conv.yaml",
      ""));

  // Same width, another order: it would run and read l = 1 and l = 2 features scrambled.
  const std::string scrambled = "[{l: 0, mul: 4}, {l: 1, mul: 4, p: o}, {l: 2, mul: 4, p: e}]";
  std::string error = error_of([&] { Model::load_string(two_convolutions(scrambled), "conv.yaml", ""); });
  EXPECT_NE(error.find("conv.yaml:24:"), std::string::npos) << error;
  EXPECT_NE(error.find("layer 'conv2' reads input 'h' as 4x0e+4x1o+4x2e (its config), but 'conv1' is "
                       "4x0e+4x2e+4x1o"),
            std::string::npos)
      << error;
}

TEST(Model, EncodingsAndSphericalHarmonicsMustMatchWhatReadsThem) {
  const std::string in_order = "[{l: 0, mul: 4}, {l: 2, mul: 4, p: e}, {l: 1, mul: 4, p: o}]";
  std::string error =
      error_of([&] { Model::load_string(two_convolutions(in_order, /*sh_lmax=*/1), "conv.yaml", ""); });
  EXPECT_NE(error.find("layer 'conv1' reads input 'edge_sh' as 1x0e+1x1o+1x2e (its config), but 'sh' is "
                       "1x0e+1x1o"),
            std::string::npos)
      << error;
  error = error_of([&] { Model::load_string(two_convolutions(in_order, 2, /*embedding_mul=*/2), "conv.yaml", ""); });
  EXPECT_NE(error.find("layer 'features' reads input 'h' as 2x0e (its config), but 'embedding' is 1x0e"),
            std::string::npos)
      << error;
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


// Staged graphs: the second call of the per-edge layers (an alias on edge_index0, the first edges
// of edge_index1) takes the first rows of the first call's results instead of computing them
// again; the values are those the layers compute on edge_index0 alone, gradients included.
std::string per_edge_model(bool both_stages) {
  std::string yaml =
      "model_inputs: {pos: '', edge_index0: '', edge_index1: '', shift: ''}\n"
      "model_layers:\n"
      "  edges1:\n"
      "    type: SphericalHarmonicEdgeAttrs\n"
      "    config: {lmax: 2}\n"
      "    inputs: {pos: model_inputs.pos, edge_index: model_inputs.edge_index1, shift: model_inputs.shift}\n"
      "    output: {0: vec1, 1: len1, 2: sh1}\n"
      "  radial1:\n"
      "    type: RadialBasisEdgeEncoding\n"
      "    config: {r_max: 4.0, num_radial_basis: 6}\n"
      "    inputs: {edge_lengths: len1}\n";
  yaml += both_stages ? "  edges0:\n    alias: edges1\n" : "  edges0:\n    type: SphericalHarmonicEdgeAttrs\n    config: {lmax: 2}\n";
  yaml +=
      "    inputs: {pos: model_inputs.pos, edge_index: model_inputs.edge_index0, shift: model_inputs.shift}\n"
      "    output: {0: vec0, 1: len0, 2: sh0}\n";
  yaml += both_stages ? "  radial0:\n    alias: radial1\n"
                      : "  radial0:\n    type: RadialBasisEdgeEncoding\n    config: {r_max: 4.0, num_radial_basis: 6}\n";
  yaml += "    inputs: {edge_lengths: len0}\n";
  yaml += both_stages ? "model_outputs: {sh0: sh0, radial0: radial0, sh1: sh1, radial1: radial1}\n"
                      : "model_outputs: {sh0: sh0, radial0: radial0}\n";
  return yaml;
}

TEST(Model, PerEdgeLayersOnAPrefixOfAnEarlierEdgeListReuseItsRows) {
  at::manual_seed(4);
  const auto staged = Model::load_string(per_edge_model(true), "staged.yaml", "");
  const auto direct = Model::load_string(per_edge_model(false), "direct.yaml", "");
  const at::Tensor pos = (at::rand({12, 3}, at::kDouble) * 5).requires_grad_();
  const at::Tensor edges1 = at::randint(12, {2, 40});
  const at::Tensor edges0 = edges1.narrow(1, 0, 25).clone();  // a prefix, as a tensor of its own
  const at::Tensor shift = at::zeros({1, 3}, at::kDouble);

  const int64_t before = staged->reused_row_calls();
  const std::vector<at::Tensor> out = staged->forward({pos, edges0, edges1, shift});
  EXPECT_EQ(staged->reused_row_calls() - before, 2);  // edges0 and radial0
  const std::vector<at::Tensor> ref = direct->forward({pos, edges0, edges1, shift});
  EXPECT_EQ(direct->reused_row_calls(), 0);
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(out[k].sizes(), ref[k].sizes());
    EXPECT_TRUE(at::allclose(out[k], ref[k], 0, 1e-15)) << "output " << k;
    const at::Tensor g = torch::autograd::grad({out[k].pow(2).sum()}, {pos}, {}, /*retain_graph=*/true)[0];
    const at::Tensor g_ref = torch::autograd::grad({ref[k].pow(2).sum()}, {pos}, {}, /*retain_graph=*/true)[0];
    EXPECT_TRUE(at::allclose(g, g_ref, 0, 1e-14)) << "gradient of output " << k;
  }

  // Edges that are not the first ones (the last 25): computed, and equal to the direct model's.
  const int64_t reused = staged->reused_row_calls();
  const at::Tensor tail = edges1.narrow(1, 15, 25).clone();
  const at::Tensor sh_tail = staged->forward({pos, tail, edges1, shift})[0];
  EXPECT_EQ(staged->reused_row_calls(), reused);
  EXPECT_TRUE(at::allclose(sh_tail, direct->forward({pos, tail, edges1, shift})[0], 0, 1e-15));
}

}  // namespace
}  // namespace klay
