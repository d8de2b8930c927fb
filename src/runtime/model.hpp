// A KLay model built from its YAML: one module per non-alias layer (aliases are further
// call-sites of the same module object), the trained weights, and an executor that runs the
// build plan (docs/design.md#execution).
//
// Execution: at build time the plan is compiled into a flat list of steps that read and write
// integer value slots (no name lookups per call). A caller may ask for a subset of the outputs;
// only the layers those outputs depend on run, and every intermediate value is dropped after its
// last use. Unlike KLay (which runs unreachable layers too) dead layers are skipped; layers have
// no side effects in eval mode, so the outputs are the same.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <atomic>

#include <ATen/core/ivalue.h>
#include <torch/nn/module.h>

#include "klay_builder.h"
#include "layers/layer.hpp"

namespace klay {

class Model {
 public:
  // Reads the YAML, validates it (errors carry file:line:col), instantiates the layers and loads
  // the weights with strict key/shape/dtype checks. An empty weights_path means "no weights":
  // parameters keep their initialisation (random for trainable ones) — for tests and tooling
  // only; `klay run` always asks for a weights file. dtype: at::kDouble (reference) or at::kFloat
  // (floating parameters and buffers are cast once after loading; floating inputs at each call).
  static std::unique_ptr<Model> load(const std::string& yaml_path, const std::string& weights_path,
                                     at::ScalarType dtype = at::kDouble);
  // Same, from YAML text (`source_name` appears in error positions).
  static std::unique_ptr<Model> load_string(const std::string& yaml_text, const std::string& source_name,
                                            const std::string& weights_path,
                                            at::ScalarType dtype = at::kDouble);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const std::vector<std::string>& input_names() const { return input_names_; }
  const std::vector<std::string>& output_names() const { return output_names_; }
  int input_index(const std::string& name) const;   // -1 if absent
  int output_index(const std::string& name) const;  // -1 if absent
  at::ScalarType dtype() const { return dtype_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

  // A value forward() can return: a model output (an index into output_names()), or the whole
  // return value of a plan node (an index into plan().nodes) as if it were an extra output; src/md
  // reads the per-atom energies feeding a sum layer this way.
  struct ValueRef {
    enum class Kind { Output, Node };
    Kind kind = Kind::Output;
    int index = 0;
    static ValueRef output(int i) { return {Kind::Output, i}; }
    static ValueRef node(int i) { return {Kind::Node, i}; }
    bool operator<(const ValueRef& other) const {
      return kind != other.kind ? kind < other.kind : index < other.index;
    }
  };

  // inputs: one value per model input, in input_names() order. values: what to return, in that
  // order; empty = every model output in model order.
  std::vector<c10::IValue> forward_values(const std::vector<c10::IValue>& inputs,
                                          const std::vector<ValueRef>& values = {}) const;
  // The same for tensor inputs and outputs (a value that is not a tensor is an error).
  std::vector<at::Tensor> forward(const std::vector<at::Tensor>& inputs,
                                  const std::vector<ValueRef>& values = {}) const;
  // Calls answered from an earlier call's rows (Layer::row_inputs) since the model was loaded:
  // the staged graphs' per-edge features computed once for the largest graph.
  int64_t reused_row_calls() const { return reused_row_calls_; }
  // Dead features (Layer::restricted_to): calls whose readers read only some of their result's
  // columns compute only those. On by default, off with KLAY_PRUNE_FEATURES=0 or here (tests and
  // benchmarks compare both); restricted_calls() counts the calls made that way since loading.
  void set_feature_pruning(bool enabled);
  int64_t restricted_calls() const { return restricted_calls_; }
  // KLay's return convention (docs/design.md#model-outputs): one output -> the bare value, several -> a tuple.
  c10::IValue forward_klay(const std::vector<c10::IValue>& inputs) const;

  // The validated plan: nodes, stages (message-passing call-sites), depth, the resolved document
  // root (model_params and optional sections such as `md:`). Valid as long as the Model lives.
  const klay_plan& plan() const { return *plan_; }
  const klay_node* root_node() const { return plan_->root; }

  // Every call-site as a submodule under its layer name, so named_parameters()/named_buffers()
  // give the KLay state_dict names; shared modules appear once per call-site.
  torch::nn::Module& modules() const { return *root_; }
  std::vector<std::pair<std::string, at::Tensor>> state_dict() const;

  // The compiled plan (defined in model.cpp).
  struct Operand;
  struct Step;
  struct Program;

 private:

  Model(klay_doc* doc, at::ScalarType dtype);
  void build();
  void check_feature_irreps(int node) const;
  void load_weights(const std::string& weights_path);
  void cast_floating_state(at::ScalarType dtype);
  const Program& program_for(const std::vector<ValueRef>& values) const;
  std::shared_ptr<const Program> compile(const std::vector<ValueRef>& values) const;
  std::string value_name(const ValueRef& value) const;  // for messages
  std::vector<Layer::Columns> columns_read(const std::vector<bool>& needed, const std::vector<ValueRef>& values) const;

  klay_doc* doc_ = nullptr;
  klay_plan* plan_ = nullptr;
  at::ScalarType dtype_;
  std::vector<std::string> input_names_, output_names_, warnings_;
  std::shared_ptr<torch::nn::Module> root_;
  std::vector<std::shared_ptr<Layer>> node_layers_;  // per plan node (aliases share)
  std::vector<bool> differentiated_inputs_;          // per input: the pos of an AutogradForces layer

  bool feature_pruning_;
  mutable std::atomic<int64_t> reused_row_calls_{0};
  mutable std::atomic<int64_t> restricted_calls_{0};
  mutable std::mutex programs_mutex_;
  mutable std::map<std::vector<ValueRef>, std::shared_ptr<const Program>> programs_;
};

}  // namespace klay
