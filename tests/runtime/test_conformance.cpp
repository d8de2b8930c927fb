// Conformance against shared/conformance (reference data from Python KLay, see its README):
// every layer_*, model_* and staged_* case is loaded from its model.yaml + weights.pth, fed the
// reference inputs, and must reproduce
//   * every output (in output_order),
//   * layer cases: input_grads = d(sum of all floating outputs)/d(each floating input),
//   * model and staged cases: energy = sum of the `energy` output and forces = -dE/d(positions),
//   * staged cases, again for the periodic twin (periodic_model.yaml, periodic_weights.pth,
//     reference `periodic`): per_atom_energy output, energy = its sum, forces,
// to the bar of conformance_case.hpp. A case whose layer types are not implemented yet is
// skipped with the builder's "not implemented" message.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include <torch/csrc/autograd/autograd.h>

#include "conformance_case.hpp"
#include "base/error.hpp"
#include "runtime/model.hpp"

namespace klay::testing {
namespace {

struct CaseRun {
  std::string name;  // test name
  std::string dir;
  bool periodic_twin = false;
};

// gtest prints a parameter in failure messages and in the test list; without this it would be
// the struct's bytes.
void PrintTo(const CaseRun& run, std::ostream* os) { *os << run.name; }

std::string case_name(const ::testing::TestParamInfo<CaseRun>& info) { return info.param.name; }

std::vector<CaseRun> all_cases() {
  std::vector<CaseRun> cases;
  const std::filesystem::path root(conformance_dir());
  if (!std::filesystem::is_directory(root)) return cases;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory()) continue;
    if (name.rfind("layer_", 0) && name.rfind("model_", 0) && name.rfind("staged_", 0)) continue;
    cases.push_back({name, entry.path().string(), false});
    if (name.rfind("staged_", 0) == 0) cases.push_back({name + "_periodic", entry.path().string(), true});
  }
  std::sort(cases.begin(), cases.end(), [](const CaseRun& a, const CaseRun& b) { return a.name < b.name; });
  return cases;
}

const json::Value& member(const json::Value& object, const char* key) {
  const json::Value* v = object.find(key);
  if (!v) throw std::runtime_error(std::string("reference has no '") + key + "'");
  return *v;
}

std::vector<std::string> names(const json::Value& order) {
  std::vector<std::string> out;
  for (const auto& n : order.items) out.push_back(n.text);
  return out;
}

at::Tensor floating_sum(const std::vector<at::Tensor>& outputs) {
  at::Tensor total;
  for (const at::Tensor& t : outputs)
    if (at::isFloatingType(t.scalar_type()) && t.requires_grad()) total = total.defined() ? total + t.sum() : t.sum();
  return total;
}

class Conformance : public ::testing::TestWithParam<CaseRun> {};

TEST_P(Conformance, MatchesPythonKLay) {
  const CaseRun& run = GetParam();
  const json::Value reference = json::parse_file(run.dir + "/reference.json");
  const json::Value& section = run.periodic_twin ? member(reference, "periodic") : reference;
  const std::string yaml = run.dir + (run.periodic_twin ? "/periodic_model.yaml" : "/model.yaml");
  const std::string weights = run.dir + (run.periodic_twin ? "/periodic_weights.pth" : "/weights.pth");

  std::unique_ptr<Model> model;
  try {
    model = Model::load(yaml, weights);
  } catch (const Error& e) {
    if (std::strstr(e.what(), "is not implemented")) GTEST_SKIP() << e.what();
    FAIL() << e.what();
  }

  const json::Value& input_order = member(section, "input_order");
  const json::Value& output_order = member(section, "output_order");
  ASSERT_EQ(model->input_names(), names(input_order));
  ASSERT_EQ(model->output_names(), names(output_order));

  std::vector<at::Tensor> inputs = tensors_in_order(member(section, "inputs"), input_order, "input");
  for (at::Tensor& t : inputs)
    if (at::isFloatingType(t.scalar_type())) t.requires_grad_(true);
  const std::vector<at::Tensor> expected = tensors_in_order(member(section, "outputs"), output_order, "output");

  std::vector<at::Tensor> outputs;
  try {
    outputs = model->forward(inputs);
  } catch (const std::exception& e) {
    FAIL() << e.what();
  }
  ASSERT_EQ(outputs.size(), expected.size());
  for (size_t i = 0; i < outputs.size(); ++i)
    EXPECT_EQ(compare(outputs[i], expected[i], "output '" + output_order.items[i].text + "'"), "");

  // Layer cases: input_grads (absent when Python's backward raised, e.g. layer_AtomwiseSumIndex_1).
  if (const json::Value* grads = section.find("input_grads"); grads && !grads->members.empty()) {
    const at::Tensor loss = floating_sum(outputs);
    ASSERT_TRUE(loss.defined()) << "no floating output depends on the inputs";
    std::vector<at::Tensor> wrt;
    std::vector<const json::Value*> refs;
    std::vector<std::string> wrt_names;
    for (const auto& g : grads->members) {
      const int index = model->input_index(g.first);
      ASSERT_GE(index, 0) << "input_grads names unknown input " << g.first;
      wrt.push_back(inputs[index]);
      refs.push_back(&g.second);
      wrt_names.push_back(g.first);
    }
    const auto ours = torch::autograd::grad({loss}, wrt, {}, /*retain_graph=*/true, false, /*allow_unused=*/true);
    for (size_t i = 0; i < wrt.size(); ++i) {
      if (refs[i]->kind == json::Value::Kind::Null) {
        // Python: input not used. Ours must not depend on it either.
        EXPECT_TRUE(!ours[i].defined() || ours[i].abs().max().item<double>() == 0.0)
            << "input_grads '" << wrt_names[i] << "': reference null (unused), ours nonzero";
        continue;
      }
      EXPECT_EQ(compare(ours[i], json::to_tensor(*refs[i], wrt_names[i]), "input_grads '" + wrt_names[i] + "'"), "");
    }
  }

  // Model cases: energy and forces (the generator's definitions, see each case's energy_note/forces_note).
  if (const json::Value* energy_ref = section.find("energy"); energy_ref && energy_ref->is_number()) {
    const std::string energy_output = run.periodic_twin ? "per_atom_energy" : "energy";
    const int e = model->output_index(energy_output);
    ASSERT_GE(e, 0) << "model has no output '" << energy_output << "'";
    const at::Tensor energy = outputs[e].sum();
    const double ref = energy_ref->as_double();
    EXPECT_LE(std::abs(energy.item<double>() - ref), kRelativeTolerance * std::max(1.0, std::abs(ref)))
        << "energy " << energy.item<double>() << " vs " << ref;

    int pos = model->input_index("positions");
    if (pos < 0) pos = model->input_index("coords");
    ASSERT_GE(pos, 0) << "model has neither a 'positions' nor a 'coords' input";
    const auto gradient = torch::autograd::grad({energy}, {inputs[pos]}, {}, /*retain_graph=*/true, false, true);
    ASSERT_TRUE(gradient[0].defined()) << "energy does not depend on the positions";
    EXPECT_EQ(compare(-gradient[0], json::to_tensor(member(section, "forces"), "forces"), "forces"), "");
  }
}

// Every layer case whose reference has input gradients (Python's backward runs): autograd through
// the layer equals central finite differences of the same loss (sum of all floating outputs) for
// a few entries of each floating input. This checks our backward independently of Python's.
std::vector<CaseRun> differentiable_layer_cases() {
  std::vector<CaseRun> cases;
  for (const CaseRun& run : all_cases()) {
    if (run.name.rfind("layer_", 0) != 0) continue;
    const json::Value* grads = json::parse_file(run.dir + "/reference.json").find("input_grads");
    if (grads && !grads->members.empty()) cases.push_back(run);
  }
  return cases;
}

class LayerGradients : public ::testing::TestWithParam<CaseRun> {};

TEST_P(LayerGradients, AutogradMatchesFiniteDifferences) {
  const CaseRun& run = GetParam();
  const json::Value reference = json::parse_file(run.dir + "/reference.json");
  const auto model = Model::load(run.dir + "/model.yaml", run.dir + "/weights.pth");
  const json::Value& input_order = member(reference, "input_order");
  const std::vector<at::Tensor> inputs = tensors_in_order(member(reference, "inputs"), input_order, "input");

  // Floating inputs are fresh leaves that require grad (AutogradForces needs tracked positions).
  const auto leaves = [](std::vector<at::Tensor> xs) {
    for (at::Tensor& t : xs)
      if (at::isFloatingType(t.scalar_type())) t = t.detach().clone().requires_grad_(true);
    return xs;
  };
  const auto loss_of = [&](const std::vector<at::Tensor>& xs) {
    at::Tensor total = at::zeros({}, at::kDouble);
    for (const at::Tensor& t : model->forward(xs))
      if (at::isFloatingType(t.scalar_type())) total = total + t.sum();
    return total;
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!at::isFloatingType(inputs[i].scalar_type())) continue;
    const std::vector<at::Tensor> xs = leaves(inputs);
    const auto grad = torch::autograd::grad({loss_of(xs)}, {xs[i]}, {}, false, false, /*allow_unused=*/true)[0];
    const at::Tensor analytic = grad.defined() ? grad.reshape({-1}) : at::zeros({xs[i].numel()}, at::kDouble);

    const int64_t n = inputs[i].numel();
    for (int64_t k = 0; k < n; k += std::max<int64_t>(1, n / 6)) {
      const double h = 1e-6;
      std::vector<at::Tensor> plus = inputs, minus = inputs;
      plus[i] = inputs[i].clone();
      minus[i] = inputs[i].clone();
      plus[i].view({-1})[k] += h;
      minus[i].view({-1})[k] -= h;
      const double numeric = (loss_of(leaves(plus)).item<double>() - loss_of(leaves(minus)).item<double>()) / (2 * h);
      const double a = analytic[k].item<double>();
      EXPECT_LE(std::abs(a - numeric), 1e-6 * std::max(1.0, std::abs(numeric)))
          << "input '" << input_order.items[i].text << "' entry " << k << ": autograd " << a
          << ", finite differences " << numeric;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, LayerGradients, ::testing::ValuesIn(differentiable_layer_cases()), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(LayerGradients);

INSTANTIATE_TEST_SUITE_P(Cases, Conformance, ::testing::ValuesIn(all_cases()), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Conformance);

}  // namespace
}  // namespace klay::testing
