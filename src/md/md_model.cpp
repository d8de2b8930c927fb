// MdModel: what a KLay model means to molecular dynamics, worked out once at load time: the `md:`
// section, the meaning of each input (coordinates, species, staged graphs, shifts), the cutoff and
// the energy output, and the species numbering. Evaluation: md_evaluation.cpp.
#include "md/md_model.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <ATen/ATen.h>

#include "klay_layer_table.h"
#include "md/elements.hpp"
#include "base/environment.hpp"
#include "base/error.hpp"
#include "layers/config.hpp"  // where()
#include "runtime/model.hpp"

namespace klay::md {

namespace {

const std::vector<std::string>& role_names() {
  static const std::vector<std::string> names = {
      "species", "atomic_numbers", "Z", "coords", "positions", "pos", "edge_index0", "edge_index",
      "graph_layer_0", "shifts", "shift", "contributions", "contributing", "batch"};
  return names;
}

// k from "edge_indexK", "graph_layer_K" or "graph_layerK"; -1 otherwise.
int stage_of(const std::string& name) {
  for (const char* prefix : {"edge_index", "graph_layer_", "graph_layer"}) {
    const size_t n = std::strlen(prefix);
    if (name.size() > n && name.compare(0, n, prefix) == 0 &&
        std::all_of(name.begin() + n, name.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        name.size() - n < 6)
      return std::stoi(name.substr(n));
  }
  return -1;
}

std::optional<InputBinding> role_of(const std::string& name) {
  if (name == "species" || name == "atomic_numbers" || name == "Z") return InputBinding{InputRole::Species};
  if (name == "coords" || name == "positions" || name == "pos") return InputBinding{InputRole::Coords};
  if (name == "edge_index") return InputBinding{InputRole::LargestGraph};
  if (name == "shifts" || name == "shift") return InputBinding{InputRole::Shifts};
  if (name == "contributions") return InputBinding{InputRole::Contributions};
  if (name == "contributing") return InputBinding{InputRole::Contributing};
  if (name == "batch") return InputBinding{InputRole::Batch};
  const int k = stage_of(name);
  if (k >= 0) return InputBinding{InputRole::StageGraph, k};
  return std::nullopt;
}

std::string describe_role(const InputBinding& b) {
  switch (b.role) {
    case InputRole::Species: return "species codes";
    case InputRole::Coords: return "coordinates (owned + ghost)";
    case InputRole::StageGraph: return "staged graph G_" + std::to_string(b.stage);
    case InputRole::LargestGraph: return "the largest staged graph";
    case InputRole::Shifts: return "edge shifts S*cell (zeros in MD: ghosts are explicit images)";
    case InputRole::Contributions: return "0 owned / 1 ghost";
    case InputRole::Contributing: return "1 owned / 0 ghost";
    case InputRole::Batch: return "0 owned / 1 ghost (batch)";
  }
  return "";
}

std::string node_text(const klay_node* node) {
  return node->kind == KLAY_STRING ? std::string(node->text) : std::string(node->text ? node->text : "");
}

double positive_number(const klay_node* node, const std::string& what) {
  if (node->kind != KLAY_INT && node->kind != KLAY_FLOAT)
    throw Error(where(node->mark) + what + " must be a number, not a " + klay_node_kind_name(node->kind));
  const double v = node->kind == KLAY_INT ? static_cast<double>(node->integer) : node->real;
  if (!(v > 0)) throw Error(where(node->mark) + what + " must be positive");
  return v;
}

std::string string_value(const klay_node* node, const std::string& what) {
  if (node->kind != KLAY_STRING)
    throw Error(where(node->mark) + what + " must be a string, not a " + klay_node_kind_name(node->kind));
  return node->text;
}

bool same_source(const klay_source& a, const klay_source& b) {
  if (a.kind != b.kind || a.index != b.index) return false;
  if (a.kind != KLAY_SRC_ITEM) return true;
  if (a.key_is_int != b.key_is_int) return false;
  return a.key_is_int ? a.key_int == b.key_int : std::strcmp(a.key_str, b.key_str) == 0;
}

const char* port_name(const klay_plan_node& node, const klay_binding& b) {
  if (b.keyword) return b.keyword;
  if (b.port >= 0 && node.spec) return node.spec->inputs[b.port];
  return "";
}

const klay_binding* find_binding(const klay_plan_node& node, const char* port) {
  for (size_t i = 0; i < node.n_bindings; ++i)
    if (std::strcmp(port_name(node, node.bindings[i]), port) == 0) return &node.bindings[i];
  return nullptr;
}

int64_t non_negative_integer(const std::string& text, const std::string& what) {
  size_t used = 0;
  long long value = -1;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < 0)
    throw Error(what + " must be a non-negative integer, not '" + text + "'");
  return value;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "'" : ", '") + n + "'";
  return out;
}

// "A, B or C": the layer types whose r_max is a cutoff radius, for messages.
std::string cutoff_layer_types() {
  const klay_layer_table* table = klay_layer_table_get();
  std::vector<std::string> types;
  for (size_t i = 0; i < table->count; ++i)
    if (table->specs[i].traits & KLAY_TRAIT_CUTOFF_RADIUS) types.emplace_back(table->specs[i].name);
  std::string out;
  for (size_t i = 0; i < types.size(); ++i)
    out += (i == 0 ? "" : i + 1 == types.size() ? " or " : ", ") + types[i];
  return out;
}

}  // namespace

std::unique_ptr<MdModel> MdModel::load(const std::string& yaml_path, const std::string& weights_path,
                                       bool single_precision) {
  return std::make_unique<MdModel>(
      Model::load(yaml_path, weights_path, single_precision ? at::kFloat : at::kDouble));
}

MdModel::~MdModel() = default;

MdModel::MdModel(std::unique_ptr<Model> model) : model_(std::move(model)) {
  const klay_node* section = model_->root_node() ? klay_map_get(model_->root_node(), "md") : nullptr;
  std::optional<double> declared_cutoff;
  std::string declared_energy;
  std::map<std::string, std::string> mapping;
  if (section && section->kind != KLAY_NULL) {
    if (section->kind != KLAY_MAP)
      throw Error(where(section->mark) + "'md' must be a mapping, not a " + klay_node_kind_name(section->kind));
    static const std::vector<std::string> known = {"cutoff", "species", "energy", "inputs", "units"};
    for (size_t i = 0; i < section->len; ++i) {
      const klay_node* key = section->keys[i];
      const klay_node* value = section->items[i];
      const std::string name = node_text(key);
      if (name == "cutoff") {
        declared_cutoff = positive_number(value, "md.cutoff");
      } else if (name == "species") {
        if (value->kind != KLAY_SEQ)
          throw Error(where(value->mark) + "md.species must be a list of element names, e.g. [Si, O]");
        for (size_t k = 0; k < value->len; ++k) {
          const std::string element = string_value(value->items[k], "md.species entries");
          if (std::find(species_.begin(), species_.end(), element) != species_.end())
            throw Error(where(value->items[k]->mark) + "md.species lists '" + element + "' twice");
          species_.push_back(element);
        }
        species_declared_ = true;
      } else if (name == "energy") {
        declared_energy = string_value(value, "md.energy");
      } else if (name == "inputs") {
        if (value->kind != KLAY_MAP)
          throw Error(where(value->mark) + "md.inputs must map model input names to MD names");
        for (size_t k = 0; k < value->len; ++k) {
          const std::string to = string_value(value->items[k], "md.inputs values");
          if (!role_of(to)) {
            const std::string hint = closest_match(to, role_names());
            throw Error(where(value->items[k]->mark) + "md.inputs: '" + to + "' is not an MD input name" +
                        (hint.empty() ? "" : " (did you mean '" + hint + "'?)") + "; known: " + join(role_names()));
          }
          mapping[node_text(value->keys[k])] = to;
        }
      } else if (name == "units") {
        units_ = string_value(value, "md.units");
      } else {
        const std::string hint = closest_match(name, known);
        throw Error(where(key->mark) + "unknown key '" + name + "' in the md section" +
                    (hint.empty() ? "" : " (did you mean '" + hint + "'?)") + "; known: " + join(known));
      }
    }
  }
  bind_inputs(mapping);
  infer_cutoff(declared_cutoff);
  check_stage_wiring();
  find_energy(declared_energy);
  const char* cap = std::getenv("KLAY_BLOCK_ATOMS");
  set_spatial_blocks(switched_on_by_environment("KLAY_SPATIAL_BLOCKS"),
                     cap ? non_negative_integer(cap, "KLAY_BLOCK_ATOMS") : default_block_atoms());
}

int64_t MdModel::default_block_atoms() const {
  return kDefaultBlockAtoms * static_cast<int64_t>(sizeof(double)) /
         static_cast<int64_t>(c10::elementSize(model_->dtype()));
}

void MdModel::set_spatial_blocks(bool enabled, int64_t max_owned_atoms) {
  if (max_owned_atoms < 0)
    throw Error("spatial blocks: the most owned atoms per block must be at least 0 (0 = no cap), not " +
                std::to_string(max_owned_atoms));
  blocks_enabled_ = enabled;
  block_atoms_ = max_owned_atoms;
}

void MdModel::bind_inputs(const std::map<std::string, std::string>& mapping) {
  const klay_plan& plan = model_->plan();
  for (const auto& [from, to] : mapping)
    if (model_->input_index(from) < 0)
      throw Error("md.inputs maps '" + from + "', which is not a model input (inputs: " +
                  join(model_->input_names()) + ")");
  bool coords = false, by_index = false, by_number = false;
  std::vector<int> stages;
  for (size_t i = 0; i < plan.n_inputs; ++i) {
    const std::string name = plan.inputs[i];
    auto mapped = mapping.find(name);
    const std::string md_name = mapped == mapping.end() ? name : mapped->second;
    const std::optional<InputBinding> binding = role_of(md_name);
    if (!binding) {
      const std::string hint = closest_match(name, role_names());
      throw Error(where(plan.input_marks[i]) + "model input '" + name +
                  "' has no meaning in MD" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                  "; MD inputs are " + join(role_names()) +
                  " (edge_index0..edge_index{D-1} for staged graphs); map other names in the md: "
                  "section, e.g. md: {inputs: {" + name + ": coords}}");
    }
    if (binding->role == InputRole::Coords) coords = true;
    if (binding->role == InputRole::Species) (md_name == "species" ? by_index : by_number) = true;
    if (binding->role == InputRole::StageGraph) {
      if (std::find(stages.begin(), stages.end(), binding->stage) != stages.end())
        throw Error(where(plan.input_marks[i]) + "model input '" + name + "': staged graph " +
                    std::to_string(binding->stage) + " is fed to two inputs");
      stages.push_back(binding->stage);
    }
    bindings_.push_back(*binding);
  }
  if (!coords)
    throw Error("the model has no coordinates input (coords, positions or pos; inputs: " +
                join(model_->input_names()) +
                "), so forces cannot be computed and it cannot be used for MD; map the input in the md: "
                "section if it has another name");
  std::sort(stages.begin(), stages.end());
  for (size_t k = 0; k < stages.size(); ++k)
    if (stages[k] != static_cast<int>(k))
      throw Error("staged graph inputs must be edge_index0..edge_index" + std::to_string(stages.size() - 1) +
                  " without gaps; G_" + std::to_string(k) + " is missing");
  num_staged_inputs_ = static_cast<int>(stages.size());
  if (by_index && by_number && !species_declared_)
    throw Error("the model takes both species indices ('species') and atomic numbers; declare the species "
                "list in the md: section (md: {species: [Si, O]}) so that both get indices");
  species_are_indices_ = species_declared_ || by_index;
}

void MdModel::infer_cutoff(std::optional<double> declared) {
  const klay_plan& plan = model_->plan();
  bool has_graph = false;
  for (const InputBinding& b : bindings_)
    has_graph = has_graph || b.role == InputRole::StageGraph || b.role == InputRole::LargestGraph;
  if (declared) {
    cutoff_ = *declared;
    cutoff_origin_ = "declared in md:";
  } else {
    std::string from;
    for (size_t i = 0; i < plan.n_nodes; ++i) {
      const klay_plan_node& node = plan.nodes[i];
      if (!(node.spec->traits & KLAY_TRAIT_CUTOFF_RADIUS)) continue;
      const klay_node* r_max = node.config ? klay_map_get(node.config, "r_max") : nullptr;
      if (!r_max) continue;
      const double r = positive_number(r_max, "layer '" + std::string(node.name) + "' r_max");
      if (r > cutoff_) {
        cutoff_ = r;
        from = node.name;
      }
    }
    if (cutoff_ > 0) {
      cutoff_origin_ = "largest r_max of the radial layers, from '" + from + "'";
    } else if (has_graph) {
      throw Error("cannot infer the cutoff: the model has edge inputs but no " + cutoff_layer_types() +
                  " layer with r_max; declare it: md: {cutoff: 4.0}");
    } else {
      cutoff_origin_ = "no edge inputs";
    }
  }
  num_stages_ = std::max(plan.depth, num_staged_inputs_);
  if (has_graph) num_stages_ = std::max(num_stages_, 1);
}

void MdModel::check_stage_wiring() {
  // A layer at message-passing depth d (1 = first from the inputs) must see correct features on
  // S_{D-d}, so it needs the edges of G_{D-d} or a larger graph (docs/design.md#staged-graphs).
  const klay_plan& plan = model_->plan();
  for (size_t s = 0; s < plan.n_stages; ++s) {
    const klay_stage& stage = plan.stages[s];
    if (stage.edge_input < 0 || stage.depth > plan.depth) continue;
    const InputBinding& b = bindings_[stage.edge_input];
    const int needed = plan.depth - stage.depth;
    if (b.role == InputRole::StageGraph && b.stage < needed) {
      const klay_plan_node& node = plan.nodes[stage.node];
      throw Error(where(node.mark) + "layer '" + node.name + "' is message-passing stage " +
                  std::to_string(stage.depth) + " of " + std::to_string(plan.depth) + " but runs on '" +
                  plan.inputs[stage.edge_input] + "' = G_" + std::to_string(b.stage) + "; it needs G_" +
                  std::to_string(needed) + " or larger (the first stage runs on the largest graph "
                  "edge_index" + std::to_string(plan.depth - 1) + ", the last on edge_index0)");
    }
  }
}

void MdModel::find_energy(const std::string& declared) {
  const klay_plan& plan = model_->plan();
  if (!declared.empty()) {
    energy_output_ = model_->output_index(declared);
    if (energy_output_ < 0)
      throw Error("md.energy: '" + declared + "' is not a model output (outputs: " + join(model_->output_names()) + ")");
  } else if (model_->output_index("energy") >= 0) {
    energy_output_ = model_->output_index("energy");
  } else if (plan.n_outputs == 1) {
    energy_output_ = 0;
  } else {
    throw Error("cannot tell which model output is the energy (outputs: " + join(model_->output_names()) +
                "); name it 'energy' or declare it: md: {energy: NAME}");
  }
  const klay_model_output& out = plan.outputs[energy_output_];
  energy_kind_ = EnergyKind::Direct;
  if (out.source.kind != KLAY_SRC_NODE || out.tail) return;
  const klay_plan_node& node = plan.nodes[out.source.index];
  energy_layer_ = node.name;
  if (!(node.spec->traits & KLAY_TRAIT_INDEXED_SUM)) return;
  const klay_binding* index = find_binding(node, "index");
  const klay_binding* src = find_binding(node, "src");
  if (!index || !src || index->source.kind != KLAY_SRC_INPUT) return;
  const InputRole role = bindings_[index->source.index].role;
  const bool returns_row0 = node.spec->traits & KLAY_TRAIT_SUM_RETURNS_ROW0;
  if (role == InputRole::Batch || role == InputRole::Contributions) {
    owned_row_ = 0;
  } else if (role == InputRole::Contributing && !returns_row0) {
    owned_row_ = 1;
  } else if (role == InputRole::Contributing) {
    throw Error(where(node.mark) + "layer '" + node.name + "' (" + node.type + ") sums by 'contributing' (1 = owned), "
                "so in eval mode it returns the ghost atoms' sum (row 0); index it by 'contributions' "
                "(0 = owned) instead");
  } else {
    return;
  }
  energy_kind_ = EnergyKind::IndexedSum;
  row_selected_ = returns_row0;
  // Per-atom energies: the tensor the sum reads, from a model output or straight from its layer.
  for (size_t o = 0; o < plan.n_outputs; ++o)
    if (!plan.outputs[o].tail && same_source(plan.outputs[o].source, src->source)) {
      per_atom_request_ = Model::ValueRef::output(static_cast<int>(o));
      per_atom_origin_ = "output '" + std::string(plan.outputs[o].name) + "'";
    }
  if (!per_atom_request_ && src->source.kind == KLAY_SRC_NODE) {
    per_atom_request_ = Model::ValueRef::node(src->source.index);
    per_atom_origin_ = "layer '" + std::string(plan.nodes[src->source.index].name) + "'";
  }
}

int MdModel::num_graph_inputs() const {
  if (num_staged_inputs_ > 0) return num_staged_inputs_;
  for (const InputBinding& b : bindings_)
    if (b.role == InputRole::LargestGraph) return 1;
  return 0;
}

bool MdModel::takes_shifts() const {
  return std::any_of(bindings_.begin(), bindings_.end(), [](const InputBinding& b) { return b.role == InputRole::Shifts; });
}

const std::vector<std::string>& MdModel::declared_species() const {
  static const std::vector<std::string> none;
  return species_declared_ ? species_ : none;
}

bool MdModel::takes_species() const {
  return std::any_of(bindings_.begin(), bindings_.end(), [](const InputBinding& b) { return b.role == InputRole::Species; });
}

int64_t MdModel::element_code(const std::string& element) {
  if (species_declared_) {
    auto it = std::find(species_.begin(), species_.end(), element);
    if (it == species_.end())
      throw Error("element '" + element + "' is not in the model's species list (md.species: " + join(species_) + ")");
    return it - species_.begin();
  }
  const int z = atomic_number(element);
  if (z == 0) throw Error("'" + element + "' is not a chemical element symbol");
  if (!species_are_indices_) return z;
  auto it = std::find(species_.begin(), species_.end(), element);
  if (it != species_.end()) return it - species_.begin();
  species_.push_back(element);
  return static_cast<int64_t>(species_.size()) - 1;
}

std::string MdModel::describe() const {
  const klay_plan& plan = model_->plan();
  std::ostringstream out;
  out << "cutoff " << cutoff_ << " (" << cutoff_origin_ << ")\n";
  out << "message-passing stages " << num_stages_ << ": ghost atoms needed within " << num_stages_ * cutoff_ << "\n";
  for (size_t i = 0; i < plan.n_inputs; ++i)
    out << "input '" << plan.inputs[i] << "': " << describe_role(bindings_[i]) << "\n";
  out << "energy: output '" << model_->output_names()[energy_output_] << "'";
  if (energy_kind_ == EnergyKind::IndexedSum)
    out << ", a sum by owned/ghost index in layer '" << energy_layer_ << "' (owned atoms = row " << owned_row_ << ")";
  else
    out << ", a per-atom tensor summed over owned atoms (a single total is accepted only without ghost atoms)";
  out << "\n";
  if (per_atom_request_) out << "per-atom energy: " << per_atom_origin_ << "\n";
  if (takes_species()) {
    if (!species_are_indices_) {
      out << "species: atomic numbers\n";
    } else {
      out << "species: indices";
      for (size_t k = 0; k < species_.size(); ++k) out << " " << species_[k] << "=" << k;
      out << (species_declared_ ? " (declared in md:)" : " (order of first appearance; declare md: species to fix it)")
          << "\n";
    }
  }
  if (!units_.empty()) out << "units " << units_ << "\n";
  return out.str();
}

}  // namespace klay::md
