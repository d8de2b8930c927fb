/*
 * klay.h — the public C API of the klay runtime: load a KLay model (YAML + trained weights) and
 * evaluate energy, per-atom energy and forces on a set of atoms with staged edge lists.
 * No C++ exception ever crosses this API: every function that can fail returns a status and
 * writes a message into the caller's error buffer.
 *
 * Atom and edge conventions (design.md §3–4): atoms [0, n_owned) are owned (contributing);
 * atoms [n_owned, n_atoms) are ghost/padding images with explicit coordinates. Edges are
 * ordered pairs (i, j) stored as edge_pairs[2*e], edge_pairs[2*e+1]. The staged graphs are
 * prefixes of one edge array: G_k = the first stage_edges[k] pairs (G_0 ⊆ G_1 ⊆ ...). A model
 * with inputs edge_index0..edge_index{D-1} gets G_k on edge_index{k}; a model with a single
 * `edge_index` gets the largest graph.
 */
#ifndef KLAY_H
#define KLAY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct klay_model klay_model;

typedef enum klay_dtype { KLAY_FLOAT64 = 0, KLAY_FLOAT32 = 1 } klay_dtype;

typedef struct klay_model_options {
    klay_dtype dtype;  /* weights and activations; float64 is the reference */
    int num_threads;   /* intra-op threads; 0 leaves libtorch's setting alone */
} klay_model_options;

/* Returns NULL on failure with the reason in err (YAML errors keep file:line:col). */
klay_model *klay_model_load(const char *yaml_path, const char *weights_path,
                            const klay_model_options *options, char *err, size_t err_size);
void klay_model_free(klay_model *model);

/* What the model needs from its caller. */
double klay_model_cutoff(const klay_model *model);     /* r_cut of one message-passing stage */
int klay_model_num_stages(const klay_model *model);    /* D: receptive field = D * r_cut */
int klay_model_num_graph_inputs(const klay_model *model); /* D for edge_index0.., 1 for edge_index */
int klay_model_has_edge_gradients(const klay_model *model); /* 1 if it takes shifts: per-edge gradients */
size_t klay_model_num_inputs(const klay_model *model);
const char *klay_model_input_name(const klay_model *model, size_t i);
/* The number the model is fed for an element ("Si"): its atomic number, or its species index when
 * the model declares a species list. Returns 0 and sets *code, or -1 with a message in err. */
int klay_model_element_code(const klay_model *model, const char *element, int64_t *code,
                            char *err, size_t err_size);

typedef struct klay_atoms {
    int64_t n_atoms;
    int64_t n_owned;
    const double *coords;       /* [n_atoms][3] */
    const int64_t *species;     /* [n_atoms], codes from klay_model_element_code */
    int64_t n_edges;            /* pairs in edge_pairs (the largest graph) */
    const int64_t *edge_pairs;  /* [n_edges][2] */
    int n_stage_graphs;         /* number of prefixes given */
    const int64_t *stage_edges; /* [n_stage_graphs], nondecreasing, last == n_edges */
} klay_atoms;

typedef struct klay_results {
    double energy;           /* out: sum over owned atoms */
    double *per_atom_energy; /* [n_atoms] or NULL; ghost entries are 0 */
    double *forces;          /* [n_atoms][3] or NULL: -dE/dx for owned and ghost atoms */
    double *edge_gradients;  /* [n_edges][3] or NULL: dE/d(shift_e), models with shifts only */
} klay_results;

/* Returns 0 on success, -1 with a message in err. */
int klay_model_compute(klay_model *model, const klay_atoms *atoms, klay_results *results,
                       char *err, size_t err_size);

#ifdef __cplusplus
}
#endif
#endif
