// klay run MODEL.yaml (WEIGHTS | --no-weights) INPUTS.json [--grads] [--out OUT.json] [--float32]
//
// Reads `inputs` (name -> {dtype, shape, data}) from a JSON file in the conformance format
// (shared/conformance/*/reference.json works as is), runs the model and writes `outputs` in model
// output order; with --grads also `input_grads`: the gradient of the sum of every floating
// output element w.r.t. each floating input (null where the outputs do not depend on it).
// A weights file is required; `--no-weights` runs with the layers' initial parameters and must be
// asked for explicitly. Output goes to stdout unless --out is given.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "cli/commands.hpp"
#include "base/error.hpp"
#include "base/json.hpp"
#include "runtime/model.hpp"

namespace {

const char* kUsage =
    "usage: klay run MODEL.yaml (WEIGHTS | --no-weights) INPUTS.json [--grads] [--out OUT.json] [--float32]\n";

// Tensors inside a model output (a tensor, or tuples/lists of them).
void collect_tensors(const c10::IValue& v, std::vector<at::Tensor>& out) {
  if (v.isTensor()) {
    out.push_back(v.toTensor());
  } else if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) collect_tensors(e, out);
  } else if (v.isList()) {
    for (const c10::IValue& e : v.toList().vec()) collect_tensors(e, out);
  }
}

klay::json::Value to_json(const c10::IValue& v, const std::string& name) {
  if (v.isTensor()) return klay::json::from_tensor(v.toTensor());
  if (v.isNone()) return klay::json::Value();
  if (v.isTuple() || v.isList()) {
    klay::json::Value array = klay::json::Value::make_array();
    const std::vector<c10::IValue> elements = v.isTuple() ? v.toTupleRef().elements().vec() : v.toList().vec();
    for (const auto& e : elements) array.items.push_back(to_json(e, name));
    return array;
  }
  throw klay::Error("output '" + name + "' is a " + v.tagKind() + ", which cannot be written as JSON");
}

int run(int argc, char** argv) {
  std::vector<std::string> positional;
  bool grads = false, no_weights = false;
  std::string out_path;
  at::ScalarType dtype = at::kDouble;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--grads") {
      grads = true;
    } else if (arg == "--no-weights") {
      no_weights = true;
    } else if (arg == "--float32") {
      dtype = at::kFloat;
    } else if (arg == "--out") {
      if (i + 1 >= argc) throw klay::Error("--out needs a file name");
      out_path = argv[++i];
    } else if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (arg.size() > 1 && arg[0] == '-') {
      throw klay::Error("unknown option '" + arg + "'\n" + kUsage);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != (no_weights ? 2u : 3u)) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string model_path = positional[0];
  const std::string weights_path = no_weights ? std::string() : positional[1];
  const std::string inputs_path = positional.back();

  const auto model = klay::Model::load(model_path, weights_path, dtype);
  for (const std::string& w : model->warnings()) std::cerr << w << "\n";

  const klay::json::Value document = klay::json::parse_file(inputs_path);
  const klay::json::Value* inputs_json = document.find("inputs");
  if (!inputs_json || inputs_json->kind != klay::json::Value::Kind::Object)
    throw klay::Error(inputs_path + ": expected a top-level object with \"inputs\": {name: {dtype, shape, data}}");
  for (const auto& member : inputs_json->members)
    if (model->input_index(member.first) < 0)
      throw klay::Error(inputs_path + ": input '" + member.first + "' is not an input of the model");
  std::vector<at::Tensor> inputs;
  for (const std::string& name : model->input_names()) {
    const klay::json::Value* value = inputs_json->find(name);
    if (!value) throw klay::Error(inputs_path + ": model input '" + name + "' is missing");
    at::Tensor t = klay::json::to_tensor(*value, inputs_path + ": input '" + name + "'");
    if (grads && at::isFloatingType(t.scalar_type())) t.requires_grad_(true);
    inputs.push_back(t);
  }

  std::vector<c10::IValue> input_values(inputs.begin(), inputs.end());
  const std::vector<c10::IValue> outputs = model->forward_values(input_values);

  klay::json::Value result = klay::json::Value::make_object();
  klay::json::Value outputs_json = klay::json::Value::make_object();
  for (size_t i = 0; i < outputs.size(); ++i)
    outputs_json.set(model->output_names()[i], to_json(outputs[i], model->output_names()[i]));
  result.set("outputs", outputs_json);

  if (grads) {
    at::Tensor loss;
    std::vector<at::Tensor> tensors;
    for (const auto& v : outputs) collect_tensors(v, tensors);
    for (const at::Tensor& t : tensors) {
      if (!at::isFloatingType(t.scalar_type()) || !t.requires_grad()) continue;
      const at::Tensor s = t.sum().to(at::kDouble);
      loss = loss.defined() ? loss + s : s;
    }
    std::vector<at::Tensor> wrt;
    for (const at::Tensor& t : inputs)
      if (t.requires_grad()) wrt.push_back(t);
    std::vector<at::Tensor> gradients(wrt.size());
    if (loss.defined() && !wrt.empty())
      gradients = torch::autograd::grad({loss}, wrt, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                        /*allow_unused=*/true);
    klay::json::Value grads_json = klay::json::Value::make_object();
    size_t g = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!inputs[i].requires_grad()) continue;
      const at::Tensor& gradient = gradients[g++];
      grads_json.set(model->input_names()[i], gradient.defined() ? klay::json::from_tensor(gradient) : klay::json::Value());
    }
    result.set("input_grads", grads_json);
  }

  if (out_path.empty()) {
    klay::json::write(std::cout, result);
  } else {
    std::ofstream out(out_path);
    if (!out) throw klay::Error(out_path + ": cannot open for writing");
    klay::json::write(out, result);
    if (!out) throw klay::Error(out_path + ": write failed");
  }
  return 0;
}

}  // namespace

int cmd_run(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "klay run: " << klay::exception_message(e) << "\n";
    return 1;
  }
}
