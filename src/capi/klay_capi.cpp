// klay.h over klay::md::MdModel and the staged-graph builder. Every entry point catches every
// exception into the caller's error buffer: nothing C++ crosses the C boundary.
#include "klay.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <exception>
#include <limits>
#include <string>

#include <ATen/Parallel.h>
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "md/md_model.hpp"
#include "md/staged.hpp"
#include "base/error.hpp"
#include "runtime/model.hpp"

struct klay_model {
  // Exactly one is set: md by klay_model_load, graph_only by klay_model_load_graph.
  std::unique_ptr<klay::md::MdModel> md;
  std::unique_ptr<klay::Model> graph_only;
  const klay::Model& graph() const { return md ? md->model() : *graph_only; }
};

struct klay_outputs {
  // Owners of what the views point at; names are copied so outputs may outlive the model.
  std::vector<std::string> names;
  std::vector<at::Tensor> tensors;
  std::vector<klay_tensor> views;
};

struct klay_graph_workspace {
  klay::md::StagedGraphBuilder builder;
  klay::md::StagedGraph graph;
  std::vector<int64_t> owned;
};

namespace {

void write_error(char* err, size_t size, const char* message) {
  if (!err || size == 0) return;
  std::snprintf(err, size, "%s", message);
}

// Runs `body`, turning any exception into (message in err, return `failed`).
template <typename Body, typename Result>
Result guarded(char* err, size_t err_size, Result failed, Body&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    write_error(err, err_size, e.what());
  } catch (...) {
    write_error(err, err_size, "unknown error");
  }
  return failed;
}

const klay::md::MdModel* md_of(const klay_model* model) { return model ? model->md.get() : nullptr; }

klay::md::MdModel& require_md(klay_model* model, const char* function) {
  if (!model) throw klay::Error(std::string(function) + ": NULL model");
  if (!model->md)
    throw klay::Error(std::string(function) +
                      ": the model was loaded with klay_model_load_graph, which gives it no MD interpretation");
  return *model->md;
}

// Checks the options and applies the thread count; returns whether to run in float32.
bool apply_options(const klay_model_options* options, const char* function) {
  if (options && options->dtype != KLAY_FLOAT32 && options->dtype != KLAY_FLOAT64)
    throw klay::Error(std::string(function) + ": unknown dtype " + std::to_string(options->dtype));
  if (options && options->num_threads > 0) at::set_num_threads(options->num_threads);
  return options && options->dtype == KLAY_FLOAT32;
}

at::ScalarType scalar_type_of(klay_tensor_dtype dtype) {
  switch (dtype) {
    case KLAY_TENSOR_FLOAT64: return at::kDouble;
    case KLAY_TENSOR_FLOAT32: return at::kFloat;
    case KLAY_TENSOR_INT64: return at::kLong;
  }
  throw klay::Error("unknown klay_tensor_dtype " + std::to_string(static_cast<int>(dtype)));
}

// A copy of the caller's buffer, so the model can never write into it.
at::Tensor tensor_from(const klay_tensor& t) {
  const std::string name = t.name;
  if (t.ndim < 0 || t.ndim > KLAY_TENSOR_MAX_DIMS)
    throw klay::Error("input '" + name + "': ndim " + std::to_string(t.ndim) + " is not in 0.." +
                      std::to_string(KLAY_TENSOR_MAX_DIMS));
  std::vector<int64_t> shape(t.shape, t.shape + t.ndim);
  int64_t numel = 1;
  for (int64_t extent : shape) {
    if (extent < 0) throw klay::Error("input '" + name + "': negative extent in its shape");
    numel *= extent;
  }
  const at::ScalarType type = scalar_type_of(t.dtype);
  if (numel > 0 && !t.data) throw klay::Error("input '" + name + "': data is NULL");
  if (numel == 0) return at::empty(shape, at::TensorOptions().dtype(type));
  return at::from_blob(const_cast<void*>(t.data), shape, at::TensorOptions().dtype(type)).clone();
}

// The returned tensor in one of the three C dtypes: integers and booleans widen to int64.
at::Tensor output_tensor(const c10::IValue& value, const std::string& name) {
  if (!value.isTensor())
    throw klay::Error("output '" + name + "' is a " + value.tagKind() +
                      ", not a tensor: klay_model_run returns tensors only");
  at::Tensor t = value.toTensor().detach();
  if (t.dim() > KLAY_TENSOR_MAX_DIMS)
    throw klay::Error("output '" + name + "' has " + std::to_string(t.dim()) + " dimensions, more than " +
                      std::to_string(KLAY_TENSOR_MAX_DIMS));
  const at::ScalarType type = t.scalar_type();
  if (type == at::kBool || at::isIntegralType(type, /*includeBool=*/false)) {
    t = t.to(at::kLong);
  } else if (type != at::kDouble && type != at::kFloat) {
    throw klay::Error("output '" + name + "' has dtype " + std::string(c10::toString(type)) +
                      ", which klay_tensor cannot hold");
  }
  return t.contiguous();
}

klay_tensor_dtype c_dtype_of(at::ScalarType type) {
  return type == at::kDouble ? KLAY_TENSOR_FLOAT64 : type == at::kFloat ? KLAY_TENSOR_FLOAT32 : KLAY_TENSOR_INT64;
}

}  // namespace

extern "C" {

klay_model* klay_model_load(const char* yaml_path, const char* weights_path, const klay_model_options* options,
                            char* err, size_t err_size) {
  return guarded(err, err_size, static_cast<klay_model*>(nullptr), [&]() -> klay_model* {
    if (!yaml_path) throw klay::Error("klay_model_load: yaml_path is NULL");
    const bool single = apply_options(options, "klay_model_load");
    auto model = std::make_unique<klay_model>();
    model->md = klay::md::MdModel::load(yaml_path, weights_path ? weights_path : "", single);
    return model.release();
  });
}

klay_model* klay_model_load_graph(const char* yaml_path, const char* weights_path, const klay_model_options* options,
                                  char* err, size_t err_size) {
  return guarded(err, err_size, static_cast<klay_model*>(nullptr), [&]() -> klay_model* {
    if (!yaml_path) throw klay::Error("klay_model_load_graph: yaml_path is NULL");
    const bool single = apply_options(options, "klay_model_load_graph");
    auto model = std::make_unique<klay_model>();
    model->graph_only =
        klay::Model::load(yaml_path, weights_path ? weights_path : "", single ? at::kFloat : at::kDouble);
    return model.release();
  });
}

void klay_model_free(klay_model* model) { delete model; }

int klay_keep_freed_memory(void) {
#ifdef __GLIBC__
  // No block mapped on its own: glibc unmaps such a block when it is freed, so every evaluation
  // page-faulted it in again. Raising the mmap threshold is not enough, as glibc accepts at most
  // 32 MiB (30,000 edges x 352 weights: 84 MB per tensor, a fifth of the convolution's backward
  // when no huge pages could be had). Without a trim threshold the heap's free top stays mapped for
  // the next step; setting it also stops glibc from moving that threshold itself.
  const bool ok = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max()) == 1;
  return ok ? 0 : -1;
#else
  return -1;
#endif
}

double klay_model_cutoff(const klay_model* model) { return md_of(model) ? md_of(model)->cutoff() : 0.0; }
int klay_model_num_stages(const klay_model* model) { return md_of(model) ? md_of(model)->num_stages() : 0; }
int klay_model_num_graph_inputs(const klay_model* model) {
  return md_of(model) ? md_of(model)->num_graph_inputs() : 0;
}
int klay_model_has_edge_gradients(const klay_model* model) {
  return md_of(model) && md_of(model)->takes_shifts() ? 1 : 0;
}
int klay_model_has_per_atom_energy(const klay_model* model) {
  return md_of(model) && md_of(model)->has_per_atom_energy() ? 1 : 0;
}

size_t klay_model_num_inputs(const klay_model* model) { return model ? model->graph().input_names().size() : 0; }

const char* klay_model_input_name(const klay_model* model, size_t i) {
  if (!model || i >= model->graph().input_names().size()) return nullptr;
  return model->graph().input_names()[i].c_str();
}

size_t klay_model_num_outputs(const klay_model* model) { return model ? model->graph().output_names().size() : 0; }

const char* klay_model_output_name(const klay_model* model, size_t i) {
  if (!model || i >= model->graph().output_names().size()) return nullptr;
  return model->graph().output_names()[i].c_str();
}

const char* klay_model_units(const klay_model* model) {
  return md_of(model) && !md_of(model)->units().empty() ? md_of(model)->units().c_str() : nullptr;
}

size_t klay_model_num_declared_species(const klay_model* model) {
  return md_of(model) ? md_of(model)->declared_species().size() : 0;
}

const char* klay_model_declared_species(const klay_model* model, size_t i) {
  if (!md_of(model) || i >= md_of(model)->declared_species().size()) return nullptr;
  return md_of(model)->declared_species()[i].c_str();
}

size_t klay_model_describe(const klay_model* model, char* buf, size_t size) {
  return guarded(nullptr, 0, static_cast<size_t>(0), [&]() -> size_t {
    const std::string text = md_of(model) ? md_of(model)->describe() : std::string();
    if (buf && size > 0) std::snprintf(buf, size, "%s", text.c_str());
    return text.size();
  });
}

int klay_model_element_code(klay_model* model, const char* element, int64_t* code, char* err,
                            size_t err_size) {
  return guarded(err, err_size, -1, [&]() {
    if (!element || !code) throw klay::Error("klay_model_element_code: NULL argument");
    *code = require_md(model, "klay_model_element_code").element_code(element);
    return 0;
  });
}

int klay_model_compute(klay_model* model, const klay_atoms* atoms, klay_results* results, char* err,
                       size_t err_size) {
  return guarded(err, err_size, -1, [&]() {
    klay::md::MdModel& md = require_md(model, "klay_model_compute");
    if (!atoms || !results) throw klay::Error("klay_model_compute: NULL argument");
    klay::md::AtomsView view;
    view.n_atoms = atoms->n_atoms;
    view.n_owned = atoms->n_owned;
    view.coords = atoms->coords;
    view.species = atoms->species;
    view.n_edges = atoms->n_edges;
    view.edge_pairs = atoms->edge_pairs;
    view.n_stage_graphs = atoms->n_stage_graphs;
    view.stage_edges = atoms->stage_edges;
    klay::md::ResultsView out;
    out.per_atom_energy = results->per_atom_energy;
    out.forces = results->forces;
    out.edge_gradients = results->edge_gradients;
    out.per_atom_virial = results->per_atom_virial;
    md.compute(view, out);
    if (out.per_atom_energy && !out.per_atom_energy_filled)
      throw klay::Error("per-atom energies are not available: the model outputs only a total energy");
    results->energy = out.energy;
    std::copy(out.virial, out.virial + 6, results->virial);
    results->forward_seconds = out.forward_seconds;
    results->backward_seconds = out.backward_seconds;
    return 0;
  });
}

int klay_model_check_outputs(const klay_model* model, int outputs, char* err, size_t err_size) {
  return guarded(err, err_size, -1, [&]() {
    const int known = KLAY_OUTPUT_PER_ATOM_ENERGY | KLAY_OUTPUT_EDGE_GRADIENTS | KLAY_OUTPUT_PER_ATOM_VIRIAL;
    if (outputs & ~known) throw klay::Error("klay_model_check_outputs: unknown output bits " + std::to_string(outputs & ~known));
    if (!md_of(model)) throw klay::Error("klay_model_check_outputs: the model is NULL or has no MD interpretation");
    md_of(model)->check_outputs(outputs & KLAY_OUTPUT_PER_ATOM_ENERGY, outputs & KLAY_OUTPUT_EDGE_GRADIENTS,
                                outputs & KLAY_OUTPUT_PER_ATOM_VIRIAL);
    return 0;
  });
}

int klay_model_run(klay_model* model, const klay_tensor* inputs, size_t n_inputs, klay_outputs** outputs, char* err,
                   size_t err_size) {
  if (outputs) *outputs = nullptr;
  return guarded(err, err_size, -1, [&]() {
    if (!model || !outputs || (n_inputs > 0 && !inputs)) throw klay::Error("klay_model_run: NULL argument");
    const klay::Model& graph = model->graph();
    const std::vector<std::string>& names = graph.input_names();
    std::vector<at::Tensor> values(names.size());
    for (size_t i = 0; i < n_inputs; ++i) {
      if (!inputs[i].name) throw klay::Error("klay_model_run: input " + std::to_string(i) + " has no name");
      const int slot = graph.input_index(inputs[i].name);
      if (slot < 0) {
        std::string known;
        for (const std::string& name : names) known += (known.empty() ? "" : ", ") + name;
        throw klay::Error("klay_model_run: the model has no input '" + std::string(inputs[i].name) +
                          "' (its inputs: " + known + ")");
      }
      if (values[slot].defined())
        throw klay::Error("klay_model_run: input '" + std::string(inputs[i].name) + "' is given twice");
      values[slot] = tensor_from(inputs[i]);
    }
    for (size_t slot = 0; slot < names.size(); ++slot)
      if (!values[slot].defined()) throw klay::Error("klay_model_run: input '" + names[slot] + "' is missing");

    std::vector<c10::IValue> results;
    {
      at::NoGradGuard no_grad;
      results = graph.forward_values(std::vector<c10::IValue>(values.begin(), values.end()));
    }
    auto out = std::make_unique<klay_outputs>();
    out->names = graph.output_names();
    for (size_t k = 0; k < results.size(); ++k) out->tensors.push_back(output_tensor(results[k], out->names[k]));
    for (size_t k = 0; k < results.size(); ++k) {
      const at::Tensor& t = out->tensors[k];
      klay_tensor view{};
      view.name = out->names[k].c_str();
      view.dtype = c_dtype_of(t.scalar_type());
      view.ndim = static_cast<int>(t.dim());
      for (int d = 0; d < view.ndim; ++d) view.shape[d] = t.size(d);
      view.data = t.data_ptr();
      out->views.push_back(view);
    }
    *outputs = out.release();
    return 0;
  });
}

size_t klay_outputs_count(const klay_outputs* outputs) { return outputs ? outputs->views.size() : 0; }

const klay_tensor* klay_outputs_get(const klay_outputs* outputs, size_t i) {
  return outputs && i < outputs->views.size() ? &outputs->views[i] : nullptr;
}

void klay_outputs_free(klay_outputs* outputs) { delete outputs; }

void klay_staged_graph_init(klay_staged_graph* graph) {
  if (graph) std::memset(graph, 0, sizeof(*graph));
}

void klay_staged_graph_free(klay_staged_graph* graph) {
  if (!graph) return;
  delete graph->workspace;
  std::memset(graph, 0, sizeof(*graph));
}

int klay_build_staged_graph(const klay_neighbor_list* list, double cutoff, int depth, klay_staged_graph* graph,
                            char* err, size_t err_size) {
  return guarded(err, err_size, -1, [&]() {
    if (!list || !graph) throw klay::Error("klay_build_staged_graph: NULL argument");
    if (list->n_atoms < 0 || list->n_owned < 0) throw klay::Error("klay_build_staged_graph: negative atom count");
    if (list->n_atoms > 0 && (!list->numneigh || !list->firstneigh))
      throw klay::Error("klay_build_staged_graph: numneigh/firstneigh is NULL");
    if (list->coords && !(cutoff > 0)) throw klay::Error("klay_build_staged_graph: the cutoff must be positive");
    if (!graph->workspace) graph->workspace = new klay_graph_workspace();
    klay_graph_workspace& ws = *graph->workspace;

    const int64_t* owned = nullptr;
    if (list->owned) {
      ws.owned.assign(list->owned, list->owned + list->n_owned);
      owned = ws.owned.data();
    }
    const unsigned mask = list->neighbor_mask ? static_cast<unsigned>(list->neighbor_mask) : ~0u;
    const double* x = list->coords;
    const auto neighbors_of = [&](int64_t a, std::vector<int64_t>& out) {
      const int count = list->numneigh[a];
      const int* js = list->firstneigh[a];
      if (count > 0 && !js) throw klay::Error("atom " + std::to_string(a) + " has neighbours but no list");
      for (int k = 0; k < count; ++k) {
        const int64_t b = static_cast<int64_t>(static_cast<unsigned>(js[k]) & mask);
        if (x && b >= 0 && b < list->n_atoms &&
            !klay::md::within_cutoff(x[3 * b] - x[3 * a], x[3 * b + 1] - x[3 * a + 1], x[3 * b + 2] - x[3 * a + 2],
                                     cutoff))
          continue;
        out.push_back(b);  // the builder rejects indices out of range
      }
    };
    ws.builder.build(owned, list->n_owned, list->n_atoms, depth, neighbors_of, /*compact=*/true, ws.graph);

    const klay::md::StagedGraph& g = ws.graph;
    graph->n_atoms = static_cast<int64_t>(g.atoms.size());
    graph->n_owned = list->n_owned;
    graph->atoms = g.atoms.data();
    graph->model_index = g.model_index.data();
    graph->n_edges = g.n_edges();
    graph->edge_pairs = g.edge_pairs.data();
    graph->n_stage_graphs = static_cast<int>(g.stage_edges.size());
    graph->stage_edges = g.stage_edges.data();
    return 0;
  });
}

}  // extern "C"
