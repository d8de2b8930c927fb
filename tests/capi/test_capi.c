/* The public C API (klay.h) driven from C, the way the LAMMPS pair style drives it:
 *   1. a model without a coordinates input is refused with a reason;
 *   2. an ArbitraryModule-only model (E = sum over owned atoms of |x|^2, summed by
 *      KIMAPISumIndex over `contributions`) gives the analytic energy, per-atom energies and forces;
 *   3. the staged conformance cases: from the recorded atoms (contributing + padding) and a
 *      brute-force full neighbour list, klay_build_staged_graph + klay_model_compute reproduce
 *      the reference energy and forces (≤1e-10 relative);
 *   4. klay_model_run on a non-MD graph (KLay's arbitrary_and_alias example) gives KLay's outputs
 *      and refuses missing, unknown, repeated and malformed inputs with a message.
 * Usage: test_capi CONFORMANCE_DIR TEST_DATA_DIR. Exit 0 = pass, 77 = skipped (layers not
 * implemented yet), 1 = failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "klay.h"

#define SKIPPED 77

static int failures = 0;
static int skipped = 0;

#define CHECK(cond, ...)                          \
    do {                                          \
        if (!(cond)) {                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);         \
            fprintf(stderr, "\n");                \
            ++failures;                           \
        }                                         \
    } while (0)

/* ---------- minimal reading of reference.json: the numbers of one value ---------- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (text && fread(text, 1, (size_t)size, f) != (size_t)size) {
        free(text);
        text = NULL;
    }
    if (text) text[size] = '\0';
    fclose(f);
    return text;
}

/* The value of "key" (first occurrence at or after `from`); for a tensor object {"dtype", "shape",
 * "data"} its data. Every number up to the end of that value is appended to *out. */
static size_t numbers_of(const char *from, const char *key, double **out)
{
    char quoted[128];
    snprintf(quoted, sizeof quoted, "\"%s\":", key);
    const char *p = strstr(from, quoted);
    if (!p) return 0;
    p += strlen(quoted);
    while (*p == ' ') ++p;
    if (*p == '{') {
        p = strstr(p, "\"data\":");
        if (!p) return 0;
        p += 7;
        while (*p == ' ') ++p;
    }
    size_t count = 0, capacity = 64;
    double *values = malloc(capacity * sizeof *values);
    int depth = 0;
    do {
        if (*p == '[') {
            ++depth, ++p;
        } else if (*p == ']') {
            --depth, ++p;
        } else if (*p == ',' || *p == ' ' || *p == '\n') {
            ++p;
        } else {
            char *end;
            double v = strtod(p, &end);
            if (end == p) break;
            if (count == capacity) values = realloc(values, (capacity *= 2) * sizeof *values);
            values[count++] = v;
            p = end;
        }
    } while (depth > 0);
    *out = values;
    return count;
}

static double max_abs(const double *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; ++i) m = fabs(v[i]) > m ? fabs(v[i]) : m;
    return m;
}

/* ---------- 1. refusal ---------- */

static void model_without_coordinates_is_refused(const char *conformance)
{
    char yaml[1024], weights[1024], err[2048] = "";
    snprintf(yaml, sizeof yaml, "%s/model_arbitrary_and_alias/model.yaml", conformance);
    snprintf(weights, sizeof weights, "%s/model_arbitrary_and_alias/weights.pth", conformance);
    klay_model *model = klay_model_load(yaml, weights, NULL, err, sizeof err);
    CHECK(model == NULL, "a model whose only input is 'x' was accepted for MD");
    CHECK(strstr(err, "'x'") != NULL, "the refusal does not name the input: %s", err);
    klay_model_free(model);
}

/* ---------- 2. ArbitraryModule-only model ---------- */

static void harmonic_model(const char *data_dir)
{
    char yaml[1024], err[2048] = "";
    snprintf(yaml, sizeof yaml, "%s/harmonic.yaml", data_dir);
    klay_model *model = klay_model_load(yaml, NULL, NULL, err, sizeof err);
    if (!model && strstr(err, "not implemented")) {
        printf("SKIP harmonic model: %s\n", err);
        ++skipped;
        return;
    }
    CHECK(model != NULL, "harmonic.yaml did not load: %s", err);
    if (!model) return;
    CHECK(klay_model_num_stages(model) == 0, "no message passing, got %d stages", klay_model_num_stages(model));
    CHECK(klay_model_num_graph_inputs(model) == 0, "no graph inputs expected");
    CHECK(klay_model_has_per_atom_energy(model) == 1, "per-atom energies are a model output");
    CHECK(klay_model_units(model) && strcmp(klay_model_units(model), "metal") == 0, "units not read");
    char text[4096];
    size_t length = klay_model_describe(model, text, sizeof text);
    CHECK(length > 0 && strstr(text, "energy") != NULL, "describe says nothing about the energy: %s", text);

    /* 2 owned + 1 ghost atom. */
    const double coords[9] = {1.0, 2.0, -0.5, 0.25, 0.0, 3.0, 7.0, 7.0, 7.0};
    klay_atoms atoms;
    memset(&atoms, 0, sizeof atoms);
    atoms.n_atoms = 3;
    atoms.n_owned = 2;
    atoms.coords = coords;
    double per_atom[3], forces[9];
    klay_results results;
    memset(&results, 0, sizeof results);
    results.per_atom_energy = per_atom;
    results.forces = forces;
    /* The allocator setting an MD host makes changes no result (glibc: it is accepted). */
#ifdef __GLIBC__
    CHECK(klay_keep_freed_memory() == 0, "glibc refused the allocator settings");
    {
        /* Above glibc's largest mmap threshold (32 MiB) too: a block an evaluation frees stays in
         * the heap for the next one instead of being unmapped and page-faulted in again. */
        const size_t before = mallinfo2().hblkhd;
        char *block = malloc((size_t)64 << 20);
        CHECK(block != NULL, "64 MiB allocation failed");
        CHECK(mallinfo2().hblkhd == before, "a 64 MiB block was mapped on its own (%zu bytes in mmapped blocks, %zu before)",
              mallinfo2().hblkhd, before);
        free(block);
    }
#endif
    int status = klay_model_compute(model, &atoms, &results, err, sizeof err);
    CHECK(status == 0, "compute failed: %s", err);
    if (status == 0) {
        const double e0 = 1.0 + 4.0 + 0.25, e1 = 0.0625 + 0.0 + 9.0;
        CHECK(fabs(results.energy - (e0 + e1)) <= 1e-14, "energy %.17g, expected %.17g", results.energy, e0 + e1);
        CHECK(per_atom[0] == e0 && per_atom[1] == e1 && per_atom[2] == 0.0, "per-atom energies %g %g %g",
              per_atom[0], per_atom[1], per_atom[2]);
        for (int k = 0; k < 6; ++k)
            CHECK(forces[k] == -2.0 * coords[k], "force component %d: %g, expected %g", k, forces[k], -2.0 * coords[k]);
        for (int k = 6; k < 9; ++k) CHECK(forces[k] == 0.0, "the ghost atom's energy must not count");
    }

    /* Errors come back as messages: an edge to an atom that does not exist. */
    const int64_t bad_edge[2] = {0, 5};
    atoms.n_edges = 1;
    atoms.edge_pairs = bad_edge;
    status = klay_model_compute(model, &atoms, &results, err, sizeof err);
    CHECK(status == -1 && strstr(err, "outside") != NULL, "bad edge not reported: %s", err);

    /* An element the species mapping knows: atomic numbers (no species list declared). */
    int64_t code = -1;
    CHECK(klay_model_element_code(model, "Si", &code, err, sizeof err) == 0 && code == 14, "Si -> %lld", (long long)code);
    CHECK(klay_model_element_code(model, "Qq", &code, err, sizeof err) == -1, "unknown element accepted");
    CHECK(klay_model_num_declared_species(model) == 0 && klay_model_declared_species(model, 0) == NULL,
          "no md: species list, yet %zu declared species", klay_model_num_declared_species(model));
    klay_model_free(model);
}

/* ---------- 3. staged conformance cases through the pair style's path ---------- */

static void staged_case(const char *conformance, const char *name)
{
    char path[1024], weights[1024], err[4096] = "";
    snprintf(path, sizeof path, "%s/%s/model.yaml", conformance, name);
    snprintf(weights, sizeof weights, "%s/%s/weights.pth", conformance, name);
    klay_model *model = klay_model_load(path, weights, NULL, err, sizeof err);
    if (!model && strstr(err, "not implemented")) {
        printf("SKIP %s: %s\n", name, err);
        ++skipped;
        return;
    }
    CHECK(model != NULL, "%s did not load: %s", name, err);
    if (!model) return;

    snprintf(path, sizeof path, "%s/%s/reference.json", conformance, name);
    char *json = read_text(path);
    CHECK(json != NULL, "cannot read %s", path);
    if (!json) return;
    const char *inputs = strstr(json, "\"inputs\":");
    double *coords = NULL, *species_f = NULL, *contributions = NULL, *energy = NULL, *forces_ref = NULL,
           *per_atom_ref = NULL;
    const size_t n3 = numbers_of(inputs, "coords", &coords);
    const size_t n = numbers_of(inputs, "species", &species_f);
    numbers_of(inputs, "contributions", &contributions);
    const char *outputs = strstr(json, "\"energy_note\":");
    numbers_of(outputs, "energy", &energy);
    numbers_of(outputs, "forces", &forces_ref);
    numbers_of(outputs, "per_atom_energy", &per_atom_ref);
    CHECK(n3 == 3 * n && n > 0, "%s: could not read the atoms", name);

    int n_owned = 0;
    while ((size_t)n_owned < n && contributions[n_owned] == 0.0) ++n_owned;

    /* A full neighbour list of every atom (brute force, no cutoff test: the builder cuts). */
    const double cutoff = klay_model_cutoff(model);
    int *numneigh = calloc(n, sizeof *numneigh);
    int **firstneigh = calloc(n, sizeof *firstneigh);
    for (size_t a = 0; a < n; ++a) {
        firstneigh[a] = malloc(n * sizeof **firstneigh);
        for (size_t b = 0; b < n; ++b) {
            if (a == b) continue;
            const double dx = coords[3 * b] - coords[3 * a], dy = coords[3 * b + 1] - coords[3 * a + 1],
                         dz = coords[3 * b + 2] - coords[3 * a + 2];
            /* like a LAMMPS list with a 1 Å skin */
            if (dx * dx + dy * dy + dz * dz < (cutoff + 1.0) * (cutoff + 1.0)) firstneigh[a][numneigh[a]++] = (int)b;
        }
    }
    klay_neighbor_list list;
    memset(&list, 0, sizeof list);
    list.n_owned = n_owned;
    list.n_atoms = (int64_t)n;
    list.coords = coords;
    list.numneigh = numneigh;
    list.firstneigh = (const int *const *)firstneigh;

    klay_staged_graph graph;
    klay_staged_graph_init(&graph);
    /* Twice into the same buffer: storage is reused and the result is the same. */
    int status = klay_build_staged_graph(&list, cutoff, klay_model_num_stages(model), &graph, err, sizeof err);
    status |= klay_build_staged_graph(&list, cutoff, klay_model_num_stages(model), &graph, err, sizeof err);
    CHECK(status == 0, "%s: staged graph failed: %s", name, err);
    CHECK(graph.n_stage_graphs == klay_model_num_stages(model), "%s: %d stages", name, graph.n_stage_graphs);

    double *model_coords = malloc(3 * graph.n_atoms * sizeof *model_coords);
    int64_t *species = malloc(graph.n_atoms * sizeof *species);
    for (int64_t m = 0; m < graph.n_atoms; ++m) {
        const int64_t a = graph.atoms[m];
        memcpy(model_coords + 3 * m, coords + 3 * a, 3 * sizeof *coords);
        species[m] = (int64_t)species_f[a];
    }
    klay_atoms atoms;
    memset(&atoms, 0, sizeof atoms);
    atoms.n_atoms = graph.n_atoms;
    atoms.n_owned = graph.n_owned;
    atoms.coords = model_coords;
    atoms.species = species;
    atoms.n_edges = graph.n_edges;
    atoms.edge_pairs = graph.edge_pairs;
    atoms.n_stage_graphs = graph.n_stage_graphs;
    atoms.stage_edges = graph.stage_edges;
    double *forces = malloc(3 * graph.n_atoms * sizeof *forces);
    double *per_atom = malloc(graph.n_atoms * sizeof *per_atom);
    klay_results results;
    memset(&results, 0, sizeof results);
    results.forces = forces;
    CHECK(klay_model_has_per_atom_energy(model), "%s: the readout layer feeds the energy sum", name);
    results.per_atom_energy = per_atom;
    status = klay_model_compute(model, &atoms, &results, err, sizeof err);
    CHECK(status == 0, "%s: compute failed: %s", name, err);
    if (status == 0) {
        CHECK(fabs(results.energy - energy[0]) <= 1e-10 * fabs(energy[0]), "%s: energy %.17g, reference %.17g", name,
              results.energy, energy[0]);
        /* Forces of every recorded atom: model atoms by their caller index, the rest exactly 0. */
        const double scale = max_abs(forces_ref, 3 * n);
        double worst = 0;
        for (size_t a = 0; a < n; ++a) {
            const int64_t m = graph.model_index[a];
            for (int k = 0; k < 3; ++k) {
                const double mine = m >= 0 ? forces[3 * m + k] : 0.0;
                const double d = fabs(mine - forces_ref[3 * a + k]);
                worst = d > worst ? d : worst;
            }
        }
        CHECK(worst <= 1e-10 * scale, "%s: forces differ by %.3g (scale %.3g)", name, worst, scale);
        /* Per-atom energies of the owned atoms (model atoms [0, n_owned) are the owned atoms in order). */
        const double energy_scale = max_abs(per_atom_ref, (size_t)n_owned);
        for (int m = 0; m < n_owned; ++m)
            CHECK(fabs(per_atom[m] - per_atom_ref[m]) <= 1e-10 * energy_scale, "%s: atom %d energy %.17g, reference %.17g",
                  name, m, per_atom[m], per_atom_ref[m]);
        printf("%s: energy %.17g (reference %.17g), max force difference %.3g\n", name, results.energy, energy[0], worst);
    }

    klay_staged_graph_free(&graph);
    for (size_t a = 0; a < n; ++a) free(firstneigh[a]);
    free(firstneigh);
    free(numneigh);
    free(model_coords);
    free(species);
    free(forces);
    free(per_atom);
    free(per_atom_ref);
    free(coords);
    free(species_f);
    free(contributions);
    free(energy);
    free(forces_ref);
    free(json);
    klay_model_free(model);
}

static void staged_graph_errors(void)
{
    /* Atom 0 lists atom 9 of 2: a clear error, no crash; and an empty rank is fine. */
    const int numneigh[2] = {1, 0};
    const int neighbours0[1] = {9};
    const int *firstneigh[2] = {neighbours0, NULL};
    klay_neighbor_list list;
    memset(&list, 0, sizeof list);
    list.n_owned = 1;
    list.n_atoms = 2;
    list.numneigh = numneigh;
    list.firstneigh = firstneigh;
    klay_staged_graph graph;
    klay_staged_graph_init(&graph);
    char err[512] = "";
    CHECK(klay_build_staged_graph(&list, 1.0, 2, &graph, err, sizeof err) == -1 && strstr(err, "9") != NULL,
          "out-of-range neighbour not reported: %s", err);
    list.n_owned = 0;
    CHECK(klay_build_staged_graph(&list, 1.0, 2, &graph, err, sizeof err) == 0 && graph.n_atoms == 0 &&
              graph.n_edges == 0 && graph.n_stage_graphs == 2,
          "an empty rank: %s", err);
    klay_staged_graph_free(&graph);
}

/* klay_model_run on KLay's arbitrary_and_alias example (Linear, ReLU, the Linear again through an
 * alias, relu): the reference outputs of real KLay, then the refusals. */
static void graph_model_run(const char *conformance)
{
    char path[1024], yaml[1024], weights[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/model_arbitrary_and_alias/reference.json", conformance);
    snprintf(yaml, sizeof yaml, "%s/model_arbitrary_and_alias/model.yaml", conformance);
    snprintf(weights, sizeof weights, "%s/model_arbitrary_and_alias/weights.pth", conformance);
    char *json = read_text(path);
    CHECK(json != NULL, "cannot read %s", path);
    if (!json) return;
    double *x = NULL, *preds = NULL;
    const size_t n_x = numbers_of(strstr(json, "\"inputs\":"), "x", &x);
    const size_t n_preds = numbers_of(strstr(json, "\"outputs\":"), "preds", &preds);
    CHECK(n_x == 4 * 16 && n_preds == 4 * 16, "reference sizes %zu, %zu", n_x, n_preds);

    klay_model *md_refused = klay_model_load(yaml, weights, NULL, err, sizeof err);
    CHECK(md_refused == NULL && strstr(err, "x") != NULL, "a model with input 'x' loads as MD: %s", err);
    klay_model_free(md_refused);

    klay_model *model = klay_model_load_graph(yaml, weights, NULL, err, sizeof err);
    CHECK(model != NULL, "klay_model_load_graph: %s", err);
    if (!model || n_x != 64 || n_preds != 64) {
        klay_model_free(model);
        free(x), free(preds), free(json);
        return;
    }
    CHECK(klay_model_num_inputs(model) == 1 && strcmp(klay_model_input_name(model, 0), "x") == 0, "inputs");
    CHECK(klay_model_num_outputs(model) == 1 && strcmp(klay_model_output_name(model, 0), "preds") == 0 &&
              klay_model_output_name(model, 1) == NULL,
          "outputs");
    CHECK(klay_model_cutoff(model) == 0.0 && klay_model_units(model) == NULL, "MD queries on a graph model");
    int64_t code = 0;
    CHECK(klay_model_element_code(model, "Si", &code, err, sizeof err) == -1 &&
              strstr(err, "klay_model_load_graph") != NULL,
          "element code of a graph model: %s", err);

    klay_tensor input = {"x", KLAY_TENSOR_FLOAT64, 2, {4, 16}, x};
    klay_outputs *outputs = NULL;
    CHECK(klay_model_run(model, &input, 1, &outputs, err, sizeof err) == 0 && outputs != NULL, "run: %s", err);
    if (outputs) {
        const klay_tensor *out = klay_outputs_get(outputs, 0);
        CHECK(klay_outputs_count(outputs) == 1 && klay_outputs_get(outputs, 1) == NULL, "one output");
        CHECK(strcmp(out->name, "preds") == 0 && out->dtype == KLAY_TENSOR_FLOAT64 && out->ndim == 2 &&
                  out->shape[0] == 4 && out->shape[1] == 16,
              "output '%s' dtype %d ndim %d", out->name, (int)out->dtype, out->ndim);
        const double *values = out->data;
        const double scale = max_abs(preds, n_preds);
        double worst = 0;
        for (size_t i = 0; i < n_preds; ++i) worst = fmax(worst, fabs(values[i] - preds[i]));
        CHECK(worst <= 1e-10 * scale, "preds differ from KLay by %g (scale %g)", worst, scale);
        klay_outputs_free(outputs);
    }

    /* float32 input: converted to the float64 model, so float32 rounding of x is all that differs */
    float x32[64];
    for (int i = 0; i < 64; ++i) x32[i] = (float)x[i];
    klay_tensor input32 = {"x", KLAY_TENSOR_FLOAT32, 2, {4, 16}, x32};
    CHECK(klay_model_run(model, &input32, 1, &outputs, err, sizeof err) == 0, "float32 input: %s", err);
    if (outputs) {
        const klay_tensor *out = klay_outputs_get(outputs, 0);
        CHECK(out->dtype == KLAY_TENSOR_FLOAT64, "a float64 model returns float64");
        klay_outputs_free(outputs);
    }

    /* refusals: a message naming the problem, *outputs NULL, no crash */
    outputs = (klay_outputs *)&input; /* must be reset to NULL on failure */
    CHECK(klay_model_run(model, NULL, 0, &outputs, err, sizeof err) == -1 && outputs == NULL &&
              strstr(err, "'x' is missing") != NULL,
          "missing input: %s", err);
    klay_tensor unknown = {"y", KLAY_TENSOR_FLOAT64, 2, {4, 16}, x};
    klay_tensor both[2] = {input, unknown};
    CHECK(klay_model_run(model, both, 2, &outputs, err, sizeof err) == -1 && strstr(err, "no input 'y'") != NULL,
          "unknown input: %s", err);
    klay_tensor twice[2] = {input, input};
    CHECK(klay_model_run(model, twice, 2, &outputs, err, sizeof err) == -1 && strstr(err, "twice") != NULL,
          "input given twice: %s", err);
    int64_t ints[64] = {0};
    klay_tensor integer = {"x", KLAY_TENSOR_INT64, 2, {4, 16}, ints};
    CHECK(klay_model_run(model, &integer, 1, &outputs, err, sizeof err) == -1 && outputs == NULL &&
              strstr(err, "layer 'dense'") != NULL && strstr(err, "dtype") != NULL,
          "int64 input to a Linear layer: %s", err);
    klay_tensor wrong_shape = {"x", KLAY_TENSOR_FLOAT64, 2, {16, 4}, x};
    CHECK(klay_model_run(model, &wrong_shape, 1, &outputs, err, sizeof err) == -1 && outputs == NULL &&
              strstr(err, "layer 'dense'") != NULL && strstr(err, "16x4") != NULL,
          "(16,4) input to Linear(16,16): %s", err);
    klay_tensor bad_ndim = {"x", KLAY_TENSOR_FLOAT64, 9, {4, 16}, x};
    CHECK(klay_model_run(model, &bad_ndim, 1, &outputs, err, sizeof err) == -1 && strstr(err, "ndim 9") != NULL,
          "ndim 9: %s", err);
    klay_tensor bad_dtype = {"x", (klay_tensor_dtype)7, 2, {4, 16}, x};
    CHECK(klay_model_run(model, &bad_dtype, 1, &outputs, err, sizeof err) == -1 && strstr(err, "dtype") != NULL,
          "dtype 7: %s", err);
    klay_tensor no_data = {"x", KLAY_TENSOR_FLOAT64, 2, {4, 16}, NULL};
    CHECK(klay_model_run(model, &no_data, 1, &outputs, err, sizeof err) == -1 && strstr(err, "NULL") != NULL,
          "NULL data: %s", err);
    klay_model_free(model);
    free(x), free(preds), free(json);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_capi CONFORMANCE_DIR TEST_DATA_DIR\n");
        return 2;
    }
    model_without_coordinates_is_refused(argv[1]);
    staged_graph_errors();
    harmonic_model(argv[2]);
    graph_model_run(argv[1]);
    const char *cases[] = {"staged_nequip_staged2_si8", "staged_nequip_staged2_box20", "staged_nequip_staged3_tric12",
                           "staged_mace_staged2_si8"};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c) staged_case(argv[1], cases[c]);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    if (skipped) {
        printf("SKIP: %d part(s) need layers that are not implemented yet\n", skipped);
        return SKIPPED;
    }
    printf("all C API checks passed\n");
    return 0;
}
