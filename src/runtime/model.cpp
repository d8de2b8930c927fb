#include "runtime/model.hpp"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <optional>
#include <unordered_set>

#include <ATen/ATen.h>
#include <ATen/record_function.h>

#include "klay_layer_table.h"
#include "layers/diags.hpp"
#include "base/environment.hpp"
#include "base/error.hpp"
#include "weights/assign.hpp"
#include "weights/state_dict.hpp"

namespace klay {

// Where a step reads one value: a slot, optionally indexed (an `output:` alias, or the string
// tail of a model output).
struct Model::Operand {
  enum class Index { None, Int, String };
  int slot = -1;
  Index index = Index::None;
  int64_t key_int = 0;
  std::string key_str;
  std::string what;  // the reference as written, for run-time errors
};

struct Model::Step {
  int node = -1;
  Layer* layer = nullptr;
  std::vector<Layer::RowInput> row_inputs;  // the layer's, read once at compile time
  std::vector<Operand> operands;
  std::vector<std::string> keywords;
  int result_slot = -1;
  std::vector<int> release;  // slots whose last reader is this step
  bool restricted = false;   // layer is a Layer::restricted_to of the node's layer
};

struct Model::Program {
  std::vector<Step> steps;
  std::vector<std::shared_ptr<Layer>> restricted_layers;  // Layer::restricted_to, owned by this program
  std::vector<Operand> outputs;
  std::vector<int> release_inputs;  // inputs no step and no output reads
};

namespace {

bool is_unrestricted(const klay_layer_spec* spec) {
  return spec && spec->inputs && spec->inputs[0] && std::string(spec->inputs[0]) == "*";
}

std::vector<std::string> port_names(const klay_layer_spec* spec) {
  std::vector<std::string> names;
  for (const char* const* p = spec->inputs; p && *p; ++p) names.emplace_back(*p);
  return names;
}

std::string describe(const klay_plan_node& node) {
  return where(node.mark) + "layer '" + node.name + "'";
}

std::string module_name(const klay_plan& plan, const klay_plan_node& node) {
  return node.alias_of >= 0 ? plan.nodes[node.alias_of].name : node.name;
}

// The layer call that failed: its position and name, then for an alias the layer it calls.
std::string call_site(const klay_plan& plan, const klay_plan_node& node) {
  const std::string alias = node.alias_of >= 0 ? "alias of '" + module_name(plan, node) + "', " : "";
  return describe(node) + " (" + alias + node.type + ")";
}

// A layer's own message starts "Type 'module': " (NamedLayer::fail), which call_site already
// says; for an alias that name is the target's and would read as if the target were called.
std::string without_layer_prefix(const std::string& message, const klay_plan& plan, const klay_plan_node& node) {
  const std::string prefix = std::string(node.type) + " '" + module_name(plan, node) + "': ";
  return message.compare(0, prefix.size(), prefix) == 0 ? message.substr(prefix.size()) : message;
}

c10::IValue index_value(const c10::IValue& value, const Model::Operand& op);

// Python's value[key] for what layers return: tuple/list by int (negative from the end), dict by
// its key, and a tensor by int (KLay's `output: {0: a}` on a one-tensor layer takes row 0).
c10::IValue getitem(const c10::IValue& value, bool key_is_int, int64_t key_int, const std::string& key_str,
                    const std::string& what) {
  if (value.isGenericDict()) {
    for (const auto& entry : value.toGenericDict()) {
      const c10::IValue& k = entry.key();
      if ((key_is_int && k.isInt() && k.toInt() == key_int) ||
          (!key_is_int && k.isString() && k.toStringRef() == key_str))
        return entry.value();
    }
    throw Error(what + ": the returned dict has no key " + (key_is_int ? std::to_string(key_int) : "'" + key_str + "'"));
  }
  if (!key_is_int)
    throw Error(what + ": indexes a " + value.tagKind() + " with the string '" + key_str +
                "' (only a dict can be indexed by a string; KLay fails the same way)");
  auto element = [&](int64_t size) {
    const int64_t i = key_int < 0 ? key_int + size : key_int;
    if (i < 0 || i >= size)
      throw Error(what + ": index " + std::to_string(key_int) + " out of range for " + value.tagKind() +
                  " of size " + std::to_string(size));
    return i;
  };
  if (value.isTuple()) {
    const auto& elements = value.toTupleRef().elements();
    return elements[element(static_cast<int64_t>(elements.size()))];
  }
  if (value.isList()) {
    const auto list = value.toList();
    return list.get(element(static_cast<int64_t>(list.size())));
  }
  if (value.isTensor()) {
    const at::Tensor& t = value.toTensor();
    if (t.dim() == 0) throw Error(what + ": cannot index a 0-dim tensor");
    return t.select(0, element(t.size(0)));
  }
  throw Error(what + ": cannot index a value of type " + value.tagKind());
}

// An earlier call of a layer that treats rows one by one (Layer::row_inputs), kept for the rest of
// the forward pass so that a later call on a prefix of its rows reads its results.
struct RowwiseCall {
  const Layer* layer;
  std::vector<c10::IValue> args;
  c10::IValue result;
};

// The first `rows` rows (dimension 0) of every tensor in a layer's return value, or nothing when
// one of them does not have `all_rows` rows.
std::optional<c10::IValue> first_rows(const c10::IValue& result, int64_t rows, int64_t all_rows) {
  auto narrowed = [&](const c10::IValue& value) -> std::optional<c10::IValue> {
    if (!value.isTensor()) return value;
    const at::Tensor& t = value.toTensor();
    if (t.dim() == 0 || t.size(0) != all_rows) return std::nullopt;
    return c10::IValue(t.narrow(0, 0, rows));
  };
  if (!result.isTuple()) return narrowed(result);
  std::vector<c10::IValue> items;
  for (const c10::IValue& item : result.toTupleRef().elements()) {
    std::optional<c10::IValue> n = narrowed(item);
    if (!n) return std::nullopt;
    items.push_back(*n);
  }
  return c10::IValue(c10::ivalue::Tuple::create(std::move(items)));
}

// Whether two tensors hold the same bits: what makes a layer's results on one the results on the
// other. On the CPU, rows whose elements are adjacent (an edge index and a narrowed view of a
// longer one, every MD step) compare as memory; elsewhere by value (at::equal).
bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  const bool rows_in_memory = a.device().is_cpu() && b.device().is_cpu() && a.dim() >= 1 && a.dim() <= 2 &&
                              (a.size(-1) <= 1 || (a.stride(-1) == 1 && b.stride(-1) == 1));
  if (!rows_in_memory) return at::equal(a, b);
  const int64_t rows = a.dim() == 2 ? a.size(0) : 1, row_bytes = a.size(-1) * static_cast<int64_t>(a.element_size());
  const auto* pa = static_cast<const char*>(a.data_ptr());
  const auto* pb = static_cast<const char*>(b.data_ptr());
  const int64_t stride_a = a.dim() == 2 ? a.stride(0) * a.element_size() : 0;
  const int64_t stride_b = b.dim() == 2 ? b.stride(0) * b.element_size() : 0;
  for (int64_t r = 0; r < rows; ++r)
    if (std::memcmp(pa + r * stride_a, pb + r * stride_b, static_cast<size_t>(row_bytes)) != 0) return false;
  return true;
}

// The results of `args` taken from an earlier call of the same layer whose row inputs begin with
// this call's rows (the row count is that of the first row input) and whose other inputs are the
// same tensors; a row input of another size (a broadcast shift) must be equal in both calls.
std::optional<c10::IValue> rows_of_earlier_call(const Layer& layer, const std::vector<Layer::RowInput>& row_inputs,
                                                const std::vector<c10::IValue>& args,
                                                const std::vector<RowwiseCall>& earlier) {
  auto row_count = [&](const std::vector<c10::IValue>& values) -> int64_t {
    const c10::IValue& v = values[row_inputs.front().port];
    return v.isTensor() && v.toTensor().dim() > row_inputs.front().dim ? v.toTensor().size(row_inputs.front().dim) : -1;
  };
  const int64_t rows = row_count(args);
  if (rows < 0) return std::nullopt;
  for (const RowwiseCall& call : earlier) {
    if (call.layer != &layer || call.args.size() != args.size()) continue;
    const int64_t all_rows = row_count(call.args);
    if (all_rows < rows) continue;
    bool same = true;
    for (size_t port = 0; port < args.size() && same; ++port) {
      const c10::IValue &now = args[port], &then = call.args[port];
      const auto row_input = std::find_if(row_inputs.begin(), row_inputs.end(),
                                          [&](const Layer::RowInput& r) { return r.port == static_cast<int>(port); });
      if (row_input == row_inputs.end()) {
        same = now.isTensor() && then.isTensor() && now.toTensor().is_same(then.toTensor());
        continue;
      }
      if (!now.isTensor() || !then.isTensor()) {
        same = false;
        continue;
      }
      const at::Tensor &a = now.toTensor(), &b = then.toTensor();
      const int64_t dim = row_input->dim;
      if (a.dim() <= dim || b.dim() != a.dim() || a.scalar_type() != b.scalar_type()) {
        same = false;
      } else if (a.size(dim) == rows && b.size(dim) == all_rows) {
        same = same_bits(a, b.narrow(dim, 0, rows));
      } else {  // broadcast along the rows: the same value in both calls
        same = a.size(dim) != rows && b.size(dim) != all_rows && same_bits(a, b);
      }
    }
    if (same)
      if (std::optional<c10::IValue> result = first_rows(call.result, rows, all_rows)) return result;
  }
  return std::nullopt;
}

c10::IValue index_value(const c10::IValue& value, const Model::Operand& op) {
  switch (op.index) {
    case Model::Operand::Index::None: return value;
    case Model::Operand::Index::Int: return getitem(value, true, op.key_int, "", op.what);
    case Model::Operand::Index::String: return getitem(value, false, 0, op.key_str, op.what);
  }
  return value;
}

// The state_dict walk in Python's order: a module's own parameters, its buffers, then each child.
void collect_state(const torch::nn::Module& module, const std::string& prefix,
                   std::vector<std::pair<std::string, at::Tensor>>& out) {
  for (const auto& p : module.named_parameters(/*recurse=*/false))
    if (p.value().defined()) out.emplace_back(prefix + p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/false))
    if (b.value().defined()) out.emplace_back(prefix + b.key(), b.value());
  for (const auto& child : module.named_children()) collect_state(*child.value(), prefix + child.key() + ".", out);
}

}  // namespace

Model::Model(klay_doc* doc, at::ScalarType dtype) : doc_(doc), dtype_(dtype) {
  if (dtype != at::kDouble && dtype != at::kFloat)
    throw Error(std::string("model dtype must be float64 or float32, not ") + c10::toString(dtype));
  feature_pruning_ = switched_on_by_environment("KLAY_PRUNE_FEATURES");
}

void Model::set_feature_pruning(bool enabled) {
  std::lock_guard<std::mutex> lock(programs_mutex_);
  feature_pruning_ = enabled;
  programs_.clear();
}

Model::~Model() {
  klay_plan_free(plan_);
  klay_doc_free(doc_);
}

std::unique_ptr<Model> Model::load(const std::string& yaml_path, const std::string& weights_path,
                                   at::ScalarType dtype) {
  Diags diags;
  klay_doc* doc = klay_doc_load_file(yaml_path.c_str(), &diags.list);
  if (!doc) throw Error(diags_text(diags.list));
  std::unique_ptr<Model> model(new Model(doc, dtype));
  model->build();
  model->load_weights(weights_path);
  return model;
}

std::unique_ptr<Model> Model::load_string(const std::string& yaml_text, const std::string& source_name,
                                          const std::string& weights_path, at::ScalarType dtype) {
  Diags diags;
  klay_doc* doc = klay_doc_load_string(yaml_text.data(), yaml_text.size(), source_name.c_str(), &diags.list);
  if (!doc) throw Error(diags_text(diags.list));
  std::unique_ptr<Model> model(new Model(doc, dtype));
  model->build();
  model->load_weights(weights_path);
  return model;
}

void Model::build() {
  Diags diags;
  plan_ = klay_plan_build(doc_, klay_layer_table_get(), 0, &diags.list);
  if (!plan_) throw Error(diags_text(diags.list));
  for (size_t i = 0; i < diags.list.count; ++i) {
    const klay_diag& d = diags.list.items[i];
    if (d.severity == KLAY_WARNING) warnings_.push_back(where(d.mark) + "warning: " + d.message);
  }
  for (size_t i = 0; i < plan_->n_inputs; ++i) input_names_.emplace_back(plan_->inputs[i]);
  for (size_t i = 0; i < plan_->n_outputs; ++i) output_names_.emplace_back(plan_->outputs[i].name);

  root_ = std::make_shared<torch::nn::Module>("KLayModel");
  node_layers_.resize(plan_->n_nodes);
  // Every module first, so that each alias finds its target's object whatever the plan order.
  for (size_t i = 0; i < plan_->n_nodes; ++i) {
    const klay_plan_node& node = plan_->nodes[i];
    if (node.alias_of >= 0) continue;
    const LayerFactory* factory = find_layer_factory(node.type);
    if (!factory) throw Error(describe(node) + ": layer type " + node.type + " is not implemented");
    std::shared_ptr<Layer> layer;
    try {
      layer = (*factory)(Config(node.config, node.name, node.mark, node.spec));
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(describe(node) + " (" + node.type + "): " + exception_message(e));
    }
    if (!layer) throw Error(describe(node) + ": the factory of " + node.type + " returned nothing");
    node_layers_[i] = std::move(layer);
  }
  for (size_t i = 0; i < plan_->n_nodes; ++i) {
    const klay_plan_node& node = plan_->nodes[i];
    if (node.alias_of >= 0) node_layers_[i] = node_layers_[static_cast<size_t>(node.alias_of)];
    if (std::string(node.name).find('.') != std::string::npos)
      throw Error(describe(node) + ": a layer name cannot contain '.' (it is a state_dict prefix)");
    root_->register_module(node.name, node_layers_[i]);

    // The call shape is fixed by the YAML: let the layer reject it now rather than at the first call.
    size_t n_positional = 0;
    std::vector<std::string> keywords;
    for (size_t b = 0; b < node.n_bindings; ++b) {
      if (node.bindings[b].keyword) keywords.emplace_back(node.bindings[b].keyword);
      else ++n_positional;
    }
    try {
      node_layers_[i]->check_call(n_positional, keywords);
    } catch (const Error& e) {
      throw Error(describe(node) + ": " + e.what());
    }
  }
  for (size_t i = 0; i < plan_->n_nodes; ++i) check_feature_irreps(static_cast<int>(i));
  differentiated_inputs_.assign(plan_->n_inputs, false);
  for (size_t i = 0; i < plan_->n_nodes; ++i) {
    const klay_plan_node& node = plan_->nodes[i];
    if (!(node.spec->traits & KLAY_TRAIT_GRADIENT_WRT_POS)) continue;
    const std::vector<std::string> names = port_names(node.spec);
    for (size_t b = 0; b < node.n_bindings; ++b)
      if (names[node.bindings[b].port] == "pos" && node.bindings[b].source.kind == KLAY_SRC_INPUT)
        differentiated_inputs_[node.bindings[b].source.index] = true;
  }
  root_->eval();
  if (dtype_ != at::kDouble)
    for (const auto& layer : node_layers_) layer->set_floating_dtype(dtype_);
}

// Each irreps feature a layer reads must be exactly what its producer returns: the same blocks in
// the same order (adjacent equal blocks may be merged or split, which leaves the layout alone).
void Model::check_feature_irreps(int index) const {
  const klay_plan_node& node = plan_->nodes[index];
  if (is_unrestricted(node.spec)) return;
  for (size_t b = 0; b < node.n_bindings; ++b) {
    const klay_source& source = node.bindings[b].source;
    if (source.kind == KLAY_SRC_INPUT || (source.kind == KLAY_SRC_ITEM && (!source.key_is_int || source.key_int < 0)))
      continue;
    const std::optional<e3nn::Irreps> read = node_layers_[index]->input_irreps(node.bindings[b].port);
    const std::optional<e3nn::Irreps> returned =
        node_layers_[source.index]->output_irreps(source.kind == KLAY_SRC_ITEM ? source.key_int : -1);
    if (!read || !returned || read->simplify() == returned->simplify()) continue;
    const std::string producer = plan_->nodes[source.index].name;
    throw Error(where(node.bindings[b].mark) + "layer '" + node.name + "' reads input '" +
                port_names(node.spec)[node.bindings[b].port] + "' as " + read->to_string() + " (its config), but '" +
                node.bindings[b].reference + "' is " + returned->to_string() + ": the config must declare what '" +
                producer + "' returns, in its order");
  }
}

std::vector<std::pair<std::string, at::Tensor>> Model::state_dict() const {
  std::vector<std::pair<std::string, at::Tensor>> entries;
  collect_state(*root_, "", entries);
  return entries;
}

void Model::load_weights(const std::string& weights_path) {
  if (!weights_path.empty()) {
    std::vector<WeightSlot> slots;
    for (auto& entry : state_dict()) slots.push_back(WeightSlot{entry.first, entry.second});
    assign_state_dict(load_state_dict(weights_path), slots, weights_path);
  }
  if (dtype_ != at::kDouble) cast_floating_state(dtype_);
}

void Model::cast_floating_state(at::ScalarType dtype) {
  // Shared modules list the same tensor under each call-site: cast every tensor once. Buffers that
  // are float32 by design (ElectronicConfigurationEncoding) are left as they are.
  std::unordered_set<const void*> done;
  at::NoGradGuard no_grad;
  for (auto& entry : state_dict()) {
    at::Tensor& t = entry.second;
    if (!done.insert(t.unsafeGetTensorImpl()).second) continue;
    if (t.scalar_type() == at::kDouble) t.set_data(t.to(dtype));
  }
}

int Model::input_index(const std::string& name) const {
  auto it = std::find(input_names_.begin(), input_names_.end(), name);
  return it == input_names_.end() ? -1 : static_cast<int>(it - input_names_.begin());
}

int Model::output_index(const std::string& name) const {
  auto it = std::find(output_names_.begin(), output_names_.end(), name);
  return it == output_names_.end() ? -1 : static_cast<int>(it - output_names_.begin());
}

std::string Model::value_name(const ValueRef& value) const {
  return value.kind == ValueRef::Kind::Node ? describe(plan_->nodes[value.index])
                                            : "model output '" + output_names_[value.index] + "'";
}

std::shared_ptr<const Model::Program> Model::compile(const std::vector<ValueRef>& values) const {
  const int n_inputs = static_cast<int>(plan_->n_inputs);
  auto slot_of = [&](const klay_source& src) {
    return src.kind == KLAY_SRC_INPUT ? src.index : n_inputs + src.index;
  };
  auto operand_of = [&](const klay_source& src, const std::string& what) {
    Operand op;
    op.slot = slot_of(src);
    op.what = what;
    if (src.kind == KLAY_SRC_ITEM) {
      op.index = src.key_is_int ? Operand::Index::Int : Operand::Index::String;
      op.key_int = src.key_int;
      op.key_str = src.key_str ? src.key_str : "";
    }
    return op;
  };

  auto program = std::make_shared<Program>();
  for (const ValueRef& value : values) {
    if (value.kind == ValueRef::Kind::Node) {
      const klay_source node{KLAY_SRC_NODE, value.index, 0, 0, nullptr};
      program->outputs.push_back(operand_of(node, value_name(value)));
      continue;
    }
    const klay_model_output& out = plan_->outputs[value.index];
    Operand op = operand_of(out.source, where(out.mark) + "model output '" + out.name + "'");
    if (out.tail) {
      if (op.index != Operand::Index::None)
        throw Error(op.what + ": cannot index an `output:` alias again with '." + out.tail + "'");
      op.index = Operand::Index::String;
      op.key_str = out.tail;
    }
    program->outputs.push_back(std::move(op));
  }

  // Backwards from the outputs: which nodes are needed.
  std::vector<bool> needed(plan_->n_nodes, false);
  for (const ValueRef& value : values) {
    if (value.kind == ValueRef::Kind::Node) needed[value.index] = true;
    else if (plan_->outputs[value.index].source.kind != KLAY_SRC_INPUT)
      needed[plan_->outputs[value.index].source.index] = true;
  }
  for (size_t i = plan_->n_nodes; i-- > 0;) {
    if (!needed[i]) continue;
    const klay_plan_node& node = plan_->nodes[i];
    for (size_t b = 0; b < node.n_bindings; ++b)
      if (node.bindings[b].source.kind != KLAY_SRC_INPUT) needed[node.bindings[b].source.index] = true;
  }

  const std::vector<Layer::Columns> read = feature_pruning_ ? columns_read(needed, values)
                                                            : std::vector<Layer::Columns>(plan_->n_nodes);

  for (size_t i = 0; i < plan_->n_nodes; ++i) {
    if (!needed[i]) continue;
    const klay_plan_node& node = plan_->nodes[i];
    Step step;
    step.node = static_cast<int>(i);
    step.layer = node_layers_[i].get();
    if (read[i])
      if (std::shared_ptr<Layer> restricted = step.layer->restricted_to(*read[i])) {
        step.layer = restricted.get();
        step.restricted = true;
        program->restricted_layers.push_back(std::move(restricted));
      }
    step.row_inputs = step.layer->row_inputs();
    step.result_slot = n_inputs + static_cast<int>(i);
    auto what = [&](const klay_binding& b) {
      return where(b.mark) + "layer '" + node.name + "', input '" + (b.reference ? b.reference : "?") + "'";
    };
    if (is_unrestricted(node.spec)) {
      for (size_t b = 0; b < node.n_bindings; ++b) {
        const klay_binding& binding = node.bindings[b];
        step.operands.push_back(operand_of(binding.source, what(binding)));
        if (binding.keyword) step.keywords.emplace_back(binding.keyword);
      }
    } else {
      // Registered ports: args[i] is the value of port i (the builder bound and checked every port,
      // aliases against their target's).
      step.operands.resize(port_names(node.spec).size());
      for (size_t b = 0; b < node.n_bindings; ++b)
        step.operands[node.bindings[b].port] = operand_of(node.bindings[b].source, what(node.bindings[b]));
    }
    program->steps.push_back(std::move(step));
  }

  // Release every slot after its last reader; outputs are read at the end and never released.
  const int n_slots = n_inputs + static_cast<int>(plan_->n_nodes);
  constexpr int kReadAtEnd = -2, kNeverRead = -1;
  std::vector<int> last_reader(n_slots, kNeverRead);
  for (size_t s = 0; s < program->steps.size(); ++s)
    for (const Operand& op : program->steps[s].operands) last_reader[op.slot] = static_cast<int>(s);
  for (const Operand& op : program->outputs) last_reader[op.slot] = kReadAtEnd;
  for (int slot = 0; slot < n_slots; ++slot) {
    if (last_reader[slot] >= 0) program->steps[last_reader[slot]].release.push_back(slot);
    if (last_reader[slot] == kNeverRead && slot < n_inputs) program->release_inputs.push_back(slot);
  }
  return program;
}

// From the outputs backwards: the feature columns of each needed node's result that its readers
// read (Layer::columns_read), nullopt where that is all of them. A model output, an indexed read
// (`output:` items) and a layer without registered ports read everything.
std::vector<Layer::Columns> Model::columns_read(const std::vector<bool>& needed,
                                               const std::vector<ValueRef>& values) const {
  std::vector<Layer::Columns> read(plan_->n_nodes);
  std::vector<bool> has_reader(plan_->n_nodes, false);
  auto add = [&](int node, const Layer::Columns& columns) {
    Layer::Columns& r = read[node];
    if (!has_reader[node]) {
      has_reader[node] = true;
      r = columns;
    } else if (r && columns) {
      std::vector<int64_t> merged;
      std::set_union(r->begin(), r->end(), columns->begin(), columns->end(), std::back_inserter(merged));
      r = std::move(merged);
    } else {
      r.reset();
    }
  };
  for (const ValueRef& value : values) {
    if (value.kind == ValueRef::Kind::Node) add(value.index, std::nullopt);
    else if (plan_->outputs[value.index].source.kind != KLAY_SRC_INPUT)
      add(plan_->outputs[value.index].source.index, std::nullopt);
  }
  for (size_t i = plan_->n_nodes; i-- > 0;) {
    if (!needed[i]) continue;
    const klay_plan_node& node = plan_->nodes[i];
    for (size_t b = 0; b < node.n_bindings; ++b) {
      const klay_binding& binding = node.bindings[b];
      if (binding.source.kind == KLAY_SRC_INPUT) continue;
      Layer::Columns columns;
      if (binding.source.kind == KLAY_SRC_NODE && !is_unrestricted(node.spec))
        columns = node_layers_[i]->columns_read(binding.port, read[i]);
      add(binding.source.index, columns);
    }
  }
  return read;
}

const Model::Program& Model::program_for(const std::vector<ValueRef>& values) const {
  std::lock_guard<std::mutex> lock(programs_mutex_);
  auto it = programs_.find(values);
  if (it != programs_.end()) return *it->second;
  for (const ValueRef& value : values) {
    const bool node = value.kind == ValueRef::Kind::Node;
    const size_t count = node ? plan_->n_nodes : plan_->n_outputs;
    if (value.index < 0 || static_cast<size_t>(value.index) >= count)
      throw Error(std::string("requested ") + (node ? "plan node " : "output index ") + std::to_string(value.index) +
                  " is out of range (the model has " + std::to_string(count) + (node ? " plan nodes)" : " outputs)"));
  }
  return *programs_.emplace(values, compile(values)).first->second;
}

std::vector<c10::IValue> Model::forward_values(const std::vector<c10::IValue>& inputs,
                                               const std::vector<ValueRef>& values) const {
  if (inputs.size() != plan_->n_inputs)
    throw Error("the model takes " + std::to_string(plan_->n_inputs) + " inputs, " +
                std::to_string(inputs.size()) + " given");
  std::vector<ValueRef> requested = values;
  if (requested.empty())
    for (int o = 0; o < static_cast<int>(plan_->n_outputs); ++o) requested.push_back(ValueRef::output(o));
  const Program& program = program_for(requested);

  std::vector<c10::IValue> slots(plan_->n_inputs + plan_->n_nodes);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const c10::IValue& value = inputs[i];
    if (value.isTensor() && value.toTensor().defined() && at::isFloatingType(value.toTensor().scalar_type())) {
      at::Tensor tensor = value.toTensor().to(dtype_);
      // An AutogradForces layer differentiates this input: track it, as a caller would have to.
      if (differentiated_inputs_[i] && !tensor.requires_grad()) tensor = tensor.detach().requires_grad_(true);
      slots[i] = tensor;
    } else {
      slots[i] = value;
    }
  }
  for (int slot : program.release_inputs) slots[slot] = c10::IValue();

  CallArgs call;
  std::vector<RowwiseCall> rowwise_calls;
  for (const Step& step : program.steps) {
    call.args.clear();
    for (const Operand& op : step.operands) call.args.push_back(index_value(slots[op.slot], op));
    call.keywords = step.keywords;
    const klay_plan_node& node = plan_->nodes[step.node];
    std::optional<c10::IValue> reused;
    if (!step.row_inputs.empty())
      reused = rows_of_earlier_call(*step.layer, step.row_inputs, call.args, rowwise_calls);
    if (reused) {
      slots[step.result_slot] = *reused;
      ++reused_row_calls_;
    } else {
      if (step.restricted) ++restricted_calls_;
      try {
        // A profiler range per layer call (free when no profiler runs): bench_md_step --profile.
        RECORD_USER_SCOPE(std::string("klay layer ") + node.name);
        slots[step.result_slot] = step.layer->call(call);
      } catch (const std::exception& e) {
        throw Error(call_site(*plan_, node) + ": " + without_layer_prefix(exception_message(e), *plan_, node));
      }
      if (!step.row_inputs.empty()) rowwise_calls.push_back({step.layer, call.args, slots[step.result_slot]});
    }
    for (int slot : step.release) slots[slot] = c10::IValue();
  }
  call.args.clear();

  std::vector<c10::IValue> results;
  for (const Operand& op : program.outputs) results.push_back(index_value(slots[op.slot], op));
  return results;
}

std::vector<at::Tensor> Model::forward(const std::vector<at::Tensor>& inputs,
                                       const std::vector<ValueRef>& values) const {
  std::vector<c10::IValue> results = forward_values(std::vector<c10::IValue>(inputs.begin(), inputs.end()), values);
  std::vector<at::Tensor> tensors;
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].isTensor()) {
      const ValueRef value = values.empty() ? ValueRef::output(static_cast<int>(i)) : values[i];
      throw Error(value_name(value) + " is a " + results[i].tagKind() + ", not a tensor");
    }
    tensors.push_back(results[i].toTensor());
  }
  return tensors;
}

c10::IValue Model::forward_klay(const std::vector<c10::IValue>& inputs) const {
  std::vector<c10::IValue> results = forward_values(inputs);
  if (results.size() == 1) return results[0];
  return c10::ivalue::Tuple::create(std::move(results));
}

}  // namespace klay
