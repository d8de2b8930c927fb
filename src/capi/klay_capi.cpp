// klay.h over klay::md::MdModel and the staged-graph builder. Every entry point catches every
// exception into the caller's error buffer: nothing C++ crosses the C boundary.
#include "klay.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include <ATen/Parallel.h>

#include "md/md_model.hpp"
#include "md/staged.hpp"
#include "runtime/error.hpp"
#include "runtime/model.hpp"

struct klay_model {
  std::unique_ptr<klay::md::MdModel> md;
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

}  // namespace

extern "C" {

klay_model* klay_model_load(const char* yaml_path, const char* weights_path, const klay_model_options* options,
                            char* err, size_t err_size) {
  return guarded(err, err_size, static_cast<klay_model*>(nullptr), [&]() -> klay_model* {
    if (!yaml_path) throw klay::Error("klay_model_load: yaml_path is NULL");
    const bool single = options && options->dtype == KLAY_FLOAT32;
    if (options && options->dtype != KLAY_FLOAT32 && options->dtype != KLAY_FLOAT64)
      throw klay::Error("klay_model_load: unknown dtype " + std::to_string(options->dtype));
    if (options && options->num_threads > 0) at::set_num_threads(options->num_threads);
    auto model = std::make_unique<klay_model>();
    model->md = klay::md::MdModel::load(yaml_path, weights_path ? weights_path : "", single);
    return model.release();
  });
}

void klay_model_free(klay_model* model) { delete model; }

double klay_model_cutoff(const klay_model* model) { return model ? model->md->cutoff() : 0.0; }
int klay_model_num_stages(const klay_model* model) { return model ? model->md->num_stages() : 0; }
int klay_model_num_graph_inputs(const klay_model* model) { return model ? model->md->num_graph_inputs() : 0; }
int klay_model_has_edge_gradients(const klay_model* model) { return model && model->md->takes_shifts() ? 1 : 0; }
int klay_model_has_per_atom_energy(const klay_model* model) {
  return model && model->md->has_per_atom_energy() ? 1 : 0;
}

size_t klay_model_num_inputs(const klay_model* model) {
  return model ? model->md->model().input_names().size() : 0;
}

const char* klay_model_input_name(const klay_model* model, size_t i) {
  if (!model || i >= model->md->model().input_names().size()) return nullptr;
  return model->md->model().input_names()[i].c_str();
}

const char* klay_model_units(const klay_model* model) {
  return model && !model->md->units().empty() ? model->md->units().c_str() : nullptr;
}

size_t klay_model_describe(const klay_model* model, char* buf, size_t size) {
  return guarded(nullptr, 0, static_cast<size_t>(0), [&]() -> size_t {
    const std::string text = model ? model->md->describe() : std::string();
    if (buf && size > 0) std::snprintf(buf, size, "%s", text.c_str());
    return text.size();
  });
}

int klay_model_element_code(const klay_model* model, const char* element, int64_t* code, char* err,
                            size_t err_size) {
  return guarded(err, err_size, -1, [&]() {
    if (!model || !element || !code) throw klay::Error("klay_model_element_code: NULL argument");
    // Numbering species in the order they are first asked for is part of the documented contract,
    // so the model is a logically const registry that grows on demand.
    *code = const_cast<klay_model*>(model)->md->element_code(element);
    return 0;
  });
}

int klay_model_compute(klay_model* model, const klay_atoms* atoms, klay_results* results, char* err,
                       size_t err_size) {
  return guarded(err, err_size, -1, [&]() {
    if (!model || !atoms || !results) throw klay::Error("klay_model_compute: NULL argument");
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
    model->md->compute(view, out);
    if (out.per_atom_energy && !out.per_atom_energy_filled)
      throw klay::Error("per-atom energies are not available: the model outputs only a total energy");
    results->energy = out.energy;
    results->forward_seconds = out.forward_seconds;
    results->backward_seconds = out.backward_seconds;
    return 0;
  });
}

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
