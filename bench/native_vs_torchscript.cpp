// bench_native_vs_torchscript: the native runtime against Python KLay's own TorchScript export on
// every conformance case that has one (model.pt = e3nn.util.jit.script of the same model).
//
// Per case both are fed the reference inputs (reference.json); their outputs and their gradients
// d(sum of floating outputs)/d(floating inputs) must agree to the float64 bar (1e-10 relative),
// then both are timed in the same process, interleaved round by round (native forward,
// TorchScript forward, native forward+backward, TorchScript forward+backward) so that a change
// of machine load hits both alike; the medians are reported with ratio = TorchScript / native
// (> 1: native is faster). Forward runs without autograd unless the model needs it to run
// (AutogradForces differentiates inside its forward). TorchScript's profiling executor optimises
// a graph after its first runs, so the warm-up rounds are not timed. The cases are tiny (5 atoms)
// and mostly measure per-call overhead; --copies K feeds K disjoint copies of each case's graph
// (e.g. 200: 1,000 atoms) to compare throughput too.
//
// Exit status: 1 if a case disagrees or fails to run, 0 otherwise (cases whose layers the
// runtime does not implement are skipped and say why). Speed is reported, never asserted.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include "bench_common.hpp"
#include "base/error.hpp"
#include "base/json.hpp"
#include "runtime/model.hpp"

namespace klay::bench {
namespace {

constexpr double kAgreement = 1e-10;  // float64 bar, relative (see relative_difference)
constexpr int kWarmupRounds = 3;      // TorchScript profiles, then optimises (profiling executor)

const json::Value& member(const json::Value& object, const char* key, const std::string& where) {
  const json::Value* value = object.find(key);
  if (!value) throw Error(where + ": no '" + key + "'");
  return *value;
}

// One way of running the case: the native model or the TorchScript module, behind one signature.
using Runner = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)>;

// The TorchScript module's return value as tensors in the reference's output order: KLay returns
// one output bare and several as a tuple (docs/design.md#model-outputs).
std::vector<at::Tensor> flatten_outputs(const c10::IValue& value) {
  if (value.isTensor()) return {value.toTensor()};
  std::vector<at::Tensor> tensors;
  if (value.isTuple()) {
    for (const c10::IValue& element : value.toTupleRef().elements()) tensors.push_back(element.toTensor());
    return tensors;
  }
  if (value.isTensorList()) return value.toTensorVector();
  throw Error("TorchScript returned a " + value.tagKind() + ", expected a tensor or a tuple of tensors");
}

// The module's forward arguments by name, as positions into the reference input order.
std::vector<size_t> torchscript_argument_order(torch::jit::Module& module, const std::vector<std::string>& input_order) {
  const auto& arguments = module.get_method("forward").function().getSchema().arguments();
  std::vector<size_t> order;
  for (size_t a = 1; a < arguments.size(); ++a) {  // 0 is self
    const auto found = std::find(input_order.begin(), input_order.end(), arguments[a].name());
    if (found == input_order.end())
      throw Error("TorchScript forward takes '" + arguments[a].name() + "', which the reference inputs lack");
    order.push_back(static_cast<size_t>(found - input_order.begin()));
  }
  return order;
}

// The reference inputs as `copies` disjoint copies of the same graph, to measure throughput at
// MD sizes while the expected answer stays known: every tensor is repeated along its first axis
// (atoms or edges), and edge_index of copy c points at that copy's atoms (offset c·N, N the
// atom count: the first axis of a non-edge input whose length differs from the edge count).
std::vector<at::Tensor> replicate(const std::vector<at::Tensor>& inputs, const std::vector<std::string>& names,
                                  int copies) {
  if (copies == 1) return inputs;
  const auto edge_index = std::find(names.begin(), names.end(), "edge_index");
  const int64_t edges = edge_index == names.end() ? -1 : inputs[edge_index - names.begin()].size(1);
  int64_t atoms = edges;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (names[i] != "edge_index" && inputs[i].dim() > 0 && inputs[i].size(0) != edges) atoms = inputs[i].size(0);
  std::vector<at::Tensor> replicated;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const at::Tensor& input = inputs[i];
    if (names[i] == "edge_index") {
      std::vector<at::Tensor> parts;
      for (int c = 0; c < copies; ++c) parts.push_back(input + c * atoms);
      replicated.push_back(at::cat(parts, 1));
    } else if (input.dim() == 0) {
      replicated.push_back(input);
    } else {
      std::vector<int64_t> repeats(input.dim(), 1);
      repeats[0] = copies;
      replicated.push_back(input.repeat(repeats));
    }
  }
  return replicated;
}

at::Tensor floating_output_sum(const std::vector<at::Tensor>& outputs) {
  at::Tensor total;
  for (const at::Tensor& t : outputs)
    if (at::isFloatingType(t.scalar_type()) && t.requires_grad()) total = total.defined() ? total + t.sum() : t.sum();
  return total;
}

struct Variant {
  Runner run;
  std::vector<at::Tensor> inputs;  // floating ones require grad
  std::vector<at::Tensor> plain;   // the same values detached, for inference
  std::vector<at::Tensor> differentiable;
};

Variant make_variant(Runner run, const std::vector<at::Tensor>& reference_inputs) {
  Variant v{std::move(run), {}, {}, {}};
  for (const at::Tensor& input : reference_inputs) {
    at::Tensor copy = input.clone();
    v.plain.push_back(copy);
    if (at::isFloatingType(copy.scalar_type())) {
      copy = copy.detach().clone().requires_grad_(true);
      v.differentiable.push_back(copy);
    }
    v.inputs.push_back(copy);
  }
  return v;
}

std::vector<at::Tensor> forward(const Variant& v, bool needs_grad) {
  if (needs_grad) return v.run(v.inputs);
  at::NoGradGuard no_grad;
  return v.run(v.plain);
}

// d(sum of floating outputs)/d(floating inputs); unused inputs give zeros so the two compare.
std::vector<at::Tensor> gradients(const Variant& v) {
  const at::Tensor loss = floating_output_sum(v.run(v.inputs));
  if (!loss.defined()) return {};
  std::vector<at::Tensor> grads = torch::autograd::grad({loss}, v.differentiable, {}, false, false, true);
  for (size_t i = 0; i < grads.size(); ++i)
    if (!grads[i].defined()) grads[i] = at::zeros_like(v.differentiable[i]);
  return grads;
}

double max_difference(const std::vector<at::Tensor>& ours, const std::vector<at::Tensor>& theirs) {
  if (ours.size() != theirs.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (size_t i = 0; i < ours.size(); ++i) worst = std::max(worst, relative_difference(ours[i], theirs[i]));
  return worst;
}

std::string format_difference(double difference) {
  if (std::isinf(difference)) return "MISMATCH";
  char text[32];
  std::snprintf(text, sizeof text, "%.1e", difference);
  return text;
}

std::string format_ratio(double torchscript_ms, double native_ms) {
  if (std::isnan(torchscript_ms) || std::isnan(native_ms) || native_ms <= 0) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.2fx", torchscript_ms / native_ms);
  return text;
}

struct CaseResult {
  std::string name, layer;
  double native_forward = NAN, script_forward = NAN, native_backward = NAN, script_backward = NAN;
  std::string output_difference = "-", gradient_difference = "-", note;
  bool failed = false;
};

CaseResult run_case(const std::filesystem::path& dir, const Options& options) {
  CaseResult result;
  result.name = dir.filename().string();
  const json::Value reference = json::parse_file((dir / "reference.json").string());
  if (const json::Value* layer = reference.find("layer_type")) result.layer = layer->text;

  std::unique_ptr<Model> model;
  try {
    model = Model::load((dir / "model.yaml").string(), (dir / "weights.pth").string());
  } catch (const Error& e) {
    if (!std::strstr(e.what(), "is not implemented")) throw;
    std::string reason = e.what();
    result.note = "skipped: " + reason.substr(0, reason.find('\n'));
    return result;
  }
  torch::jit::Module script = torch::jit::load((dir / "model.pt").string());
  script.eval();

  std::vector<std::string> input_order;
  for (const json::Value& name : member(reference, "input_order", result.name).items) input_order.push_back(name.text);
  std::vector<at::Tensor> reference_inputs;
  for (const std::string& name : input_order)
    reference_inputs.push_back(json::to_tensor(member(member(reference, "inputs", result.name), name.c_str(), result.name),
                                               "input '" + name + "'"));
  if (model->input_names() != input_order) throw Error("native model inputs differ from the reference input_order");
  reference_inputs = replicate(reference_inputs, input_order, options.copies);

  const std::vector<size_t> script_order = torchscript_argument_order(script, input_order);
  const Variant native = make_variant([&](const std::vector<at::Tensor>& in) { return model->forward(in); },
                                      reference_inputs);
  const Variant scripted = make_variant(
      [&](const std::vector<at::Tensor>& in) {
        std::vector<c10::IValue> arguments;
        for (size_t position : script_order) arguments.emplace_back(in[position]);
        return flatten_outputs(script.forward(arguments));
      },
      reference_inputs);

  // Inference without autograd where the model allows it.
  bool needs_grad = false;
  try {
    forward(native, false);
    forward(scripted, false);
  } catch (const std::exception&) {
    needs_grad = true;
    result.note = "forward needs autograd";
  }

  const std::vector<at::Tensor> native_outputs = forward(native, needs_grad);
  const double output_difference = max_difference(native_outputs, forward(scripted, needs_grad));
  result.output_difference = format_difference(output_difference);
  bool backward = !native.differentiable.empty();
  if (backward) {
    // A backward that raises (layer_AtomwiseSumIndex_1, as in Python) must raise in both.
    const auto try_gradients = [](const Variant& v, std::vector<at::Tensor>& grads) -> std::string {
      try {
        grads = gradients(v);
        return "";
      } catch (const std::exception& e) {
        const std::string message = e.what();
        return message.substr(0, std::min<size_t>(60, message.find('\n')));
      }
    };
    std::vector<at::Tensor> native_gradients, script_gradients;
    const std::string native_error = try_gradients(native, native_gradients);
    const std::string script_error = try_gradients(scripted, script_gradients);
    if (native_error.empty() && script_error.empty()) {
      const double gradient_difference = max_difference(native_gradients, script_gradients);
      result.gradient_difference = format_difference(gradient_difference);
      if (!(gradient_difference <= kAgreement)) result.failed = true;
    } else {
      const char* who = native_error.empty() ? "TorchScript only" : script_error.empty() ? "native only" : "both";
      result.note += (result.note.empty() ? "" : "; ") + std::string("backward raises in ") + who + ": " +
                     (native_error.empty() ? script_error : native_error);
      result.failed = result.failed || native_error.empty() != script_error.empty();
      backward = false;
    }
  }
  if (!(output_difference <= kAgreement)) result.failed = true;

  std::vector<double> native_forward, script_forward, native_backward, script_backward;
  const auto round = [&](bool record) {
    const auto timed = [&](std::vector<double>& samples, const std::function<void()>& fn) {
      const double ms = time_once_ms(fn);
      if (record) samples.push_back(ms);
      return ms;
    };
    double total = timed(native_forward, [&] { forward(native, needs_grad); });
    total += timed(script_forward, [&] { forward(scripted, needs_grad); });
    if (backward) {
      total += timed(native_backward, [&] { gradients(native); });
      total += timed(script_backward, [&] { gradients(scripted); });
    }
    return total;
  };
  double round_ms = 0;
  for (int r = 0; r < (options.quick ? 0 : kWarmupRounds); ++r) round_ms = round(false);
  // Four timed quantities share the budget.
  Options shared = options;
  shared.budget_s = options.budget_s * 4;
  for (int r = 0, rounds = repeats_for(round_ms, shared); r < rounds; ++r) round(true);
  result.native_forward = median_ms(native_forward);
  result.script_forward = median_ms(script_forward);
  result.native_backward = median_ms(native_backward);
  result.script_backward = median_ms(script_backward);
  return result;
}

void print_results(const std::vector<CaseResult>& results) {
  size_t name_width = 4;
  for (const CaseResult& r : results) name_width = std::max(name_width, r.name.size());
  const int nw = static_cast<int>(name_width);
  std::printf("%-*s  %10s %10s %8s  %10s %10s %8s  %8s %8s  %s\n", nw, "case", "native fw", "TS fw", "TS/nat",
              "native f+b", "TS f+b", "TS/nat", "out diff", "grad diff", "note");
  std::printf("%s\n", std::string(name_width + 96, '-').c_str());
  for (const CaseResult& r : results)
    std::printf("%-*s  %10s %10s %8s  %10s %10s %8s  %8s %8s  %s%s\n", nw, r.name.c_str(),
                format_ms(r.native_forward).c_str(), format_ms(r.script_forward).c_str(),
                format_ratio(r.script_forward, r.native_forward).c_str(), format_ms(r.native_backward).c_str(),
                format_ms(r.script_backward).c_str(), format_ratio(r.script_backward, r.native_backward).c_str(),
                r.output_difference.c_str(), r.gradient_difference.c_str(), r.failed ? "DISAGREE " : "",
                r.note.c_str());
}

int run(int argc, char** argv) {
  const Options options = parse_options(
      argc, argv,
      "bench_native_vs_torchscript: native runtime vs Python KLay's TorchScript on the conformance cases (ms, float64)");
  print_machine(options);
  std::printf("cases:      %s (every case with a model.pt); diffs are max|a-b|/max(1,max|b|), bar %.0e\n",
              KLAY_CONFORMANCE_DIR, kAgreement);
  std::printf("inputs:     reference.json inputs%s\n",
              options.copies == 1 ? "" : (", " + std::to_string(options.copies) + " disjoint copies").c_str());
  std::printf("columns:    ms per call (median); TS/nat > 1 means the native runtime is faster\n\n");
  std::fflush(stdout);

  std::vector<std::filesystem::path> cases;
  if (std::filesystem::is_directory(KLAY_CONFORMANCE_DIR))
    for (const auto& entry : std::filesystem::directory_iterator(KLAY_CONFORMANCE_DIR))
      if (entry.is_directory() && std::filesystem::exists(entry.path() / "model.pt") &&
          entry.path().filename().string().find(options.filter) != std::string::npos)
        cases.push_back(entry.path());
  std::sort(cases.begin(), cases.end());
  if (cases.empty()) {
    std::fprintf(stderr, "no conformance case with a model.pt under %s\n", KLAY_CONFORMANCE_DIR);
    return 1;
  }

  std::vector<CaseResult> results;
  int failures = 0;
  for (const auto& dir : cases) {
    CaseResult result;
    try {
      result = run_case(dir, options);
    } catch (const std::exception& e) {
      result.name = dir.filename().string();
      std::string message = e.what();
      result.note = "ERROR: " + message.substr(0, message.find('\n'));
      result.failed = true;
    }
    failures += result.failed;
    std::fprintf(stderr, "  done %s\n", result.name.c_str());
    results.push_back(result);
  }
  print_results(results);

  // Geometric means over the cases measured: one number for "how much faster".
  double log_forward = 0, log_backward = 0;
  int forward_count = 0, backward_count = 0;
  for (const CaseResult& r : results) {
    if (r.failed) continue;
    if (r.native_forward > 0 && r.script_forward > 0) {
      log_forward += std::log(r.script_forward / r.native_forward);
      ++forward_count;
    }
    if (r.native_backward > 0 && r.script_backward > 0) {
      log_backward += std::log(r.script_backward / r.native_backward);
      ++backward_count;
    }
  }
  if (forward_count)
    std::printf("\ngeometric mean TS/native: forward %.2fx over %d cases", std::exp(log_forward / forward_count),
                forward_count);
  if (backward_count)
    std::printf(", forward+backward %.2fx over %d cases", std::exp(log_backward / backward_count), backward_count);
  std::printf("\n%d case(s) disagree or failed\n", failures);
  return failures ? 1 : 0;
}

}  // namespace
}  // namespace klay::bench

int main(int argc, char** argv) { return klay::bench::run(argc, argv); }
