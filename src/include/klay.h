/*
 * klay.h — the public C API of the klay runtime: load a KLay model (YAML + trained weights) and
 * evaluate energy, per-atom energy and forces on a set of atoms with staged edge lists.
 * No C++ exception ever crosses this API: every function that can fail returns a status and
 * writes a message into the caller's error buffer.
 *
 * Atom and edge conventions (docs/design.md#owned-ghost, #staged-graphs): atoms [0, n_owned) are owned (contributing);
 * atoms [n_owned, n_atoms) are ghost/padding images with explicit coordinates. Edges are
 * ordered pairs (i, j) stored as edge_pairs[2*e], edge_pairs[2*e+1]. The staged graphs are
 * prefixes of one edge array: G_k = the first stage_edges[k] pairs (G_0 ⊆ G_1 ⊆ ...). A model
 * with inputs edge_index0..edge_index{D-1} gets G_k on edge_index{k}; a model with a single
 * `edge_index` gets the largest graph. A model that takes `shifts` gets zeros (ghosts are explicit
 * images). Input names and the optional `md:` YAML section: src/md/md_model.hpp.
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
    int num_threads;   /* threads of an evaluation (process-wide, libtorch's); over 4,096 owned
                          atoms, that many spatial blocks at once; 0 leaves libtorch's setting
                          (OMP_NUM_THREADS) alone */
} klay_model_options;

/* Returns NULL on failure with the reason in err (YAML errors keep file:line:col). */
klay_model *klay_model_load(const char *yaml_path, const char *weights_path,
                            const klay_model_options *options, char *err, size_t err_size);
void klay_model_free(klay_model *model);

/* Process-wide, for hosts that evaluate the same sizes again and again (MD): let the C library keep
 * the memory an evaluation frees for the next one (glibc: every block from the heap, none mapped on
 * its own, and no trimming of the heap) instead of returning it to the system and page-faulting it
 * in again every step; the peak memory does not grow. Returns 0, or -1 where the C library has no
 * such setting. */
int klay_keep_freed_memory(void);

/* What the model needs from its caller. */
double klay_model_cutoff(const klay_model *model);     /* r_cut of one message-passing stage */
int klay_model_num_stages(const klay_model *model);    /* D: receptive field = D * r_cut */
int klay_model_num_graph_inputs(const klay_model *model); /* D for edge_index0.., 1 for edge_index */
int klay_model_has_edge_gradients(const klay_model *model); /* 1 if it takes shifts: per-edge gradients */
size_t klay_model_num_inputs(const klay_model *model);
const char *klay_model_input_name(const klay_model *model, size_t i);
/* The number the model is fed for an element ("Si"): its atomic number, or its species index when
 * the model declares a species list. A model that takes species indices without declaring a list
 * numbers elements in the order they are first asked for, so this call may record one: it takes
 * the model as mutable. Returns 0 and sets *code, or -1 with a message in err. */
int klay_model_element_code(klay_model *model, const char *element, int64_t *code,
                            char *err, size_t err_size);
/* The species list declared in the model's `md:` section (md: {species: [Si, O]}), in species-index
 * order: how many elements, and the i-th element's symbol (NULL when i is out of range). 0 when the
 * model declares none: it then takes atomic numbers, or numbers elements in the order asked for. */
size_t klay_model_num_declared_species(const klay_model *model);
const char *klay_model_declared_species(const klay_model *model, size_t i);

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

/* Virials are in LAMMPS order xx, yy, zz, xy, xz, yz, component ab = sum of a-coordinate times
 * b-force, in eV: W = -dE/d(strain) for a homogeneous strain of every coordinate given. With
 * ghost atoms as explicit images this is the owned atoms' exact share: the energy depends on
 * relative positions only. For a periodic cell whose owned atoms are the cell's atoms and whose
 * ghosts are their images, W is the cell's virial, W = -stress * volume (ASE's stress is -W/V);
 * over the parts of a domain decomposition the shares add up to the global virial. */
typedef struct klay_results {
    double energy;           /* out: sum over owned atoms */
    double *per_atom_energy; /* [n_atoms] or NULL; ghost entries are 0 */
    double *forces;          /* [n_atoms][3] or NULL: -dE/dx for owned and ghost atoms */
    double *edge_gradients;  /* [n_edges][3] or NULL: dE/d(shift_e), models with shifts only */
    /* [n_atoms][6] or NULL, models with shifts only (klay_model_check_outputs): edge (i, j) joins
     * i to j, its vector is u = x_j - x_i and g = dE/d(shift) = dE/du; its term -u (x) g goes half
     * to i, half to j, as LAMMPS splits a pair force's virial. Ghost entries are the ghost images'
     * shares: add them to the atoms they are images of (LAMMPS's reverse communication). The rows
     * of all n_atoms sum to virial. Refused when the forces are not the sum of the edge gradients
     * (an energy that depends on positions other than through edge vectors). */
    double *per_atom_virial;
    /* out: W = sum over all n_atoms of x (x) F, filled whenever the backward pass runs (forces,
     * edge_gradients or per_atom_virial asked for), zeros otherwise */
    double virial[6];
    double forward_seconds;  /* out: wall time of the forward pass */
    double backward_seconds; /* out: wall time of the backward pass (forces, edge gradients) */
} klay_results;

/* Returns 0 on success, -1 with a message in err. Outputs not asked for (NULL) are not computed.
 * Zero the struct before filling the pointers you want (klay_results r = {0};): fields added in
 * later versions then stay NULL. Checks the request with klay_model_check_outputs first. */
int klay_model_compute(klay_model *model, const klay_atoms *atoms, klay_results *results,
                       char *err, size_t err_size);

/* What klay_model_compute can be asked for beyond energy and forces, for klay_model_check_outputs. */
typedef enum klay_output {
    KLAY_OUTPUT_PER_ATOM_ENERGY = 1,
    KLAY_OUTPUT_EDGE_GRADIENTS = 2,
    KLAY_OUTPUT_PER_ATOM_VIRIAL = 4
} klay_output;
/* 0 when the model can give every output in `outputs` (klay_output values or-ed together), else
 * -1 with the reason in err. The answer depends on the model only, never on the atoms, so a
 * parallel host can ask on every rank before any rank computes and stop all of them alike. */
int klay_model_check_outputs(const klay_model *model, int outputs, char *err, size_t err_size);

/* 1 if per-atom energies can be returned: the energy output is per-atom, or a sum layer
 * (AtomwiseSumIndex/KIMAPISumIndex) whose input tensor is read as the per-atom energies. */
int klay_model_has_per_atom_energy(const klay_model *model);
/* The units declared in the model's `md:` section ("metal"), or NULL when undeclared. */
const char *klay_model_units(const klay_model *model);
/* What was inferred about the model (cutoff and its origin, stages, meaning of each input, energy
 * output, species numbering), one fact per line, for the caller's log. Writes at most size bytes
 * (NUL-terminated when size > 0) and returns the length of the full text. */
size_t klay_model_describe(const klay_model *model, char *buf, size_t size);

/* ---------- any KLay graph on named tensors ----------
 *
 * A model that is not an interatomic potential (any inputs, any outputs) is loaded with
 * klay_model_load_graph: no MD interpretation of its inputs, so the MD functions above refuse it
 * (klay_model_compute, klay_model_element_code fail; the queries return 0/NULL). klay_model_run
 * works on models from either loader. */
klay_model *klay_model_load_graph(const char *yaml_path, const char *weights_path,
                                  const klay_model_options *options, char *err, size_t err_size);
size_t klay_model_num_outputs(const klay_model *model);
const char *klay_model_output_name(const klay_model *model, size_t i); /* model output order */

typedef enum klay_tensor_dtype {
    KLAY_TENSOR_FLOAT64 = 0,
    KLAY_TENSOR_FLOAT32 = 1,
    KLAY_TENSOR_INT64 = 2
} klay_tensor_dtype;

#define KLAY_TENSOR_MAX_DIMS 8

/* A dense row-major (C-contiguous) tensor. As an input the caller owns data (read, never
 * written); floating inputs are converted to the model's dtype. As an output name and data
 * belong to the klay_outputs they came from. */
typedef struct klay_tensor {
    const char *name;
    klay_tensor_dtype dtype;
    int ndim;                           /* 0 (a scalar) .. KLAY_TENSOR_MAX_DIMS */
    int64_t shape[KLAY_TENSOR_MAX_DIMS];
    const void *data;                   /* prod(shape) elements of dtype */
} klay_tensor;

typedef struct klay_outputs klay_outputs;

/* Evaluates the model (no gradients) on inputs[0..n_inputs), matched by name to the model's
 * inputs in any order; every model input must be given exactly once. On success *outputs holds
 * every model output in model output order (free it with klay_outputs_free) and 0 is returned;
 * on failure -1, a message in err and *outputs = NULL. Outputs are float64/float32 as computed,
 * integer and boolean outputs become int64; an output that is not a tensor is an error. */
int klay_model_run(klay_model *model, const klay_tensor *inputs, size_t n_inputs, klay_outputs **outputs,
                   char *err, size_t err_size);
size_t klay_outputs_count(const klay_outputs *outputs);
/* The i-th output, or NULL when i is out of range; valid until klay_outputs_free. */
const klay_tensor *klay_outputs_get(const klay_outputs *outputs, size_t i);
void klay_outputs_free(klay_outputs *outputs);

/* ---------- staged graphs from a neighbour list (the LAMMPS pair style's per-step work) ----------
 *
 * S_0 = the owned atoms; for k = 0..D-1: G_k = every pair (a,b) and (b,a) with a in S_k and b a
 * neighbour of a closer than the cutoff; S_{k+1} = S_k plus those neighbours (docs/design.md#staged-graphs).
 * The result is compacted to the atoms the model needs (S_D): model atom m is caller atom
 * atoms[m]; the owned atoms come first in the order given, then each stage's new atoms in
 * increasing caller index. Edges use model indices and are grouped by stage, each group sorted,
 * so G_k is the first stage_edges[k] pairs: fill klay_atoms straight from the graph. */
typedef struct klay_neighbor_list {
    int64_t n_owned;              /* atoms of S_0 */
    const int *owned;             /* [n_owned] their caller indices (LAMMPS ilist), or NULL for 0..n_owned-1 */
    int64_t n_atoms;              /* owned + ghost atoms: every index is below this */
    const double *coords;         /* [n_atoms][3], ghosts as unwrapped images; NULL if the lists
                                     are already cut at the cutoff */
    const int *numneigh;          /* [n_atoms] (LAMMPS list->numneigh) */
    const int *const *firstneigh; /* [n_atoms] -> neighbour indices (LAMMPS list->firstneigh) */
    int neighbor_mask;            /* index bits of an entry (LAMMPS NEIGHMASK); 0 = use all bits */
} klay_neighbor_list;
/* Lists are read only for atoms of S_{D-1}: outer ghosts may have incomplete lists. A full list
 * (both i->j and j->i) is expected; with coords, b is a neighbour of a when
 * sqrt(dx^2 + dy^2 + dz^2) < cutoff, the reference data's test (a list with a skin is fine). */

typedef struct klay_graph_workspace klay_graph_workspace;
typedef struct klay_staged_graph {
    int64_t n_atoms;            /* out: model atoms (|S_D|) */
    int64_t n_owned;            /* out: = the list's n_owned, model atoms [0, n_owned) */
    const int64_t *atoms;       /* out: [n_atoms] caller index of each model atom */
    const int64_t *model_index; /* out: [caller n_atoms] model index, -1 for atoms not needed */
    int64_t n_edges;            /* out: pairs in G_{D-1} */
    const int64_t *edge_pairs;  /* out: [n_edges][2], model indices */
    int n_stage_graphs;         /* out: D */
    const int64_t *stage_edges; /* out: [D] */
    klay_graph_workspace *workspace; /* private storage, reused from call to call */
} klay_staged_graph;

/* Zero the struct before first use; storage grows as needed and is kept between calls. */
void klay_staged_graph_init(klay_staged_graph *graph);
void klay_staged_graph_free(klay_staged_graph *graph);
/* Returns 0, or -1 with a message in err (index out of range, self pair, depth < 1, ...);
 * the out fields are valid until the next call or klay_staged_graph_free. */
int klay_build_staged_graph(const klay_neighbor_list *list, double cutoff, int depth,
                            klay_staged_graph *graph, char *err, size_t err_size);

#ifdef __cplusplus
}
#endif
#endif
