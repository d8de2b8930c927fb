/*
 * KLay OpenKIM model driver: one compute. The contributing particles are the owned atoms of
 * klay.h; the simulator's neighbor lists (cut at r_cut, non-contributing particles included) give
 * the staged graphs (klay_build_staged_graph), the runtime gives the energy of the contributing
 * particles and -dE/dx of every particle the graphs reach, and those go back into KIM's arrays.
 */
#include "klay_kim_driver.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

KLAY_KIM_ERROR_FUNCTION(compute_error, KIM_ModelCompute, KIM_ModelCompute_LogEntry)
#define COMPUTE_ERROR(...) compute_error(model_compute, __LINE__, __VA_ARGS__)

/* Makes room for `needed` elements in each array of a group sharing one capacity; 1 when out of memory. */
static int reserve(size_t *capacity, size_t needed, void **arrays[], const size_t element_sizes[], int count)
{
    if (needed <= *capacity) return 0;
    size_t grown = needed + needed / 2;
    for (int k = 0; k < count; ++k) {
        void *p = realloc(*arrays[k], grown * element_sizes[k]);
        if (!p) return 1;
        *arrays[k] = p;
    }
    *capacity = grown;
    return 0;
}

static int reserve_particles(klay_kim_scratch *s, size_t n)
{
    void **arrays[] = {(void **)&s->owned, (void **)&s->numneigh, (void **)&s->firstneigh};
    const size_t sizes[] = {sizeof *s->owned, sizeof *s->numneigh, sizeof *s->firstneigh};
    return reserve(&s->particles_capacity, n, arrays, sizes, 3);
}

static int reserve_atoms(klay_kim_scratch *s, size_t n)
{
    void **arrays[] = {(void **)&s->coords, (void **)&s->species, (void **)&s->forces, (void **)&s->per_atom_energy,
                       (void **)&s->per_atom_virial};
    const size_t sizes[] = {3 * sizeof *s->coords, sizeof *s->species, 3 * sizeof *s->forces,
                            sizeof *s->per_atom_energy, 6 * sizeof *s->per_atom_virial};
    return reserve(&s->atoms_capacity, n, arrays, sizes, 5);
}

/* Copies every particle's neighbor list (KIM's pointer is valid only until the next request). */
static int copy_neighbor_lists(KIM_ModelCompute const *model_compute, KIM_ModelComputeArguments const *arguments,
                               klay_kim_scratch *s, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; ++i) {
        int count;
        const int *list;
        if (KIM_ModelComputeArguments_GetNeighborList(arguments, 0, i, &count, &list))
            return COMPUTE_ERROR("the simulator gave no neighbor list for particle %d", i);
        if (total + (size_t)count > s->neighbors_capacity) {
            size_t grown = 2 * (total + (size_t)count);
            int *p = realloc(s->neighbors, grown * sizeof *p);
            if (!p) return COMPUTE_ERROR("out of memory for %zu neighbors", grown);
            s->neighbors = p;
            s->neighbors_capacity = grown;
        }
        if (count > 0) memcpy(s->neighbors + total, list, (size_t)count * sizeof *list);
        s->numneigh[i] = count;
        total += (size_t)count;
    }
    const int *next = s->neighbors;
    for (int i = 0; i < n; ++i) {
        s->firstneigh[i] = next;
        next += s->numneigh[i];
    }
    return 0;
}

/* Coordinates and the model's species codes of the atoms the staged graphs reach. */
static int gather_atoms(KIM_ModelCompute const *model_compute, klay_kim_model *m, const double *coordinates,
                        const int *species_codes)
{
    klay_kim_scratch *s = &m->scratch;
    for (int64_t a = 0; a < m->graph.n_atoms; ++a) {
        const int64_t p = m->graph.atoms[a];
        memcpy(&s->coords[3 * a], &coordinates[3 * p], 3 * sizeof *coordinates);
        const int code = species_codes[p];
        if (code < 0 || code >= m->num_species)
            return COMPUTE_ERROR("particle %lld has species code %d; this model's codes are 0..%d",
                                 (long long)p, code, m->num_species - 1);
        s->species[a] = m->species_code[code];
    }
    return 0;
}

/* klay.h's virial W = sum x (x) F in the order xx yy zz xy xz yz; KIM's is -W in the order
 * xx yy zz yz xz xy. Over every atom the graphs reach, padding images included with their explicit
 * coordinates, W is the virial of the periodic system the padding stands for. */
static void to_kim_virial(const double w[6], double kim[6])
{
    kim[0] = -w[0];
    kim[1] = -w[1];
    kim[2] = -w[2];
    kim[3] = -w[5];
    kim[4] = -w[4];
    kim[5] = -w[3];
}

int klay_kim_compute(KIM_ModelCompute const *model_compute, KIM_ModelComputeArguments const *arguments)
{
    klay_kim_model *m;
    KIM_ModelCompute_GetModelBufferPointer(model_compute, (void **)&m);
    int *num_particles, *species_codes, *contributing;
    double *coordinates, *energy, *forces, *virial, *particle_energy = NULL, *particle_virial = NULL;
    if (KIM_ModelComputeArguments_GetArgumentPointerInteger(arguments, KIM_COMPUTE_ARGUMENT_NAME_numberOfParticles,
                                                            &num_particles) ||
        KIM_ModelComputeArguments_GetArgumentPointerInteger(
            arguments, KIM_COMPUTE_ARGUMENT_NAME_particleSpeciesCodes, &species_codes) ||
        KIM_ModelComputeArguments_GetArgumentPointerInteger(
            arguments, KIM_COMPUTE_ARGUMENT_NAME_particleContributing, &contributing) ||
        KIM_ModelComputeArguments_GetArgumentPointerDouble(arguments, KIM_COMPUTE_ARGUMENT_NAME_coordinates,
                                                           &coordinates) ||
        KIM_ModelComputeArguments_GetArgumentPointerDouble(arguments, KIM_COMPUTE_ARGUMENT_NAME_partialEnergy,
                                                           &energy) ||
        KIM_ModelComputeArguments_GetArgumentPointerDouble(arguments, KIM_COMPUTE_ARGUMENT_NAME_partialForces,
                                                           &forces) ||
        KIM_ModelComputeArguments_GetArgumentPointerDouble(arguments, KIM_COMPUTE_ARGUMENT_NAME_partialVirial,
                                                           &virial) ||
        (m->has_particle_energy &&
         KIM_ModelComputeArguments_GetArgumentPointerDouble(
             arguments, KIM_COMPUTE_ARGUMENT_NAME_partialParticleEnergy, &particle_energy)) ||
        (m->has_particle_virial &&
         KIM_ModelComputeArguments_GetArgumentPointerDouble(
             arguments, KIM_COMPUTE_ARGUMENT_NAME_partialParticleVirial, &particle_virial)))
        return COMPUTE_ERROR("cannot get the compute arguments");

    const int n = *num_particles;
    klay_kim_scratch *s = &m->scratch;
    if (energy) *energy = 0.0;
    if (forces) memset(forces, 0, 3 * (size_t)n * sizeof *forces);
    if (particle_energy) memset(particle_energy, 0, (size_t)n * sizeof *particle_energy);
    if (virial) memset(virial, 0, 6 * sizeof *virial);
    if (particle_virial) memset(particle_virial, 0, 6 * (size_t)n * sizeof *particle_virial);

    if (reserve_particles(s, (size_t)n)) return COMPUTE_ERROR("out of memory for %d particles", n);
    int num_owned = 0;
    for (int i = 0; i < n; ++i)
        if (contributing[i]) s->owned[num_owned++] = i;
    /* Nothing contributes, nothing to evaluate: the model is not asked about an empty structure. */
    if (num_owned == 0) return 0;
    if (copy_neighbor_lists(model_compute, arguments, s, n)) return 1;

    char err[KLAY_KIM_ERROR_SIZE] = "";
    klay_neighbor_list list = {num_owned, s->owned, n, coordinates, s->numneigh, s->firstneigh, 0};
    if (klay_build_staged_graph(&list, m->cutoff, m->num_stages, &m->graph, err, sizeof err))
        return COMPUTE_ERROR("cannot build the staged graphs: %s", err);
    const int64_t num_atoms = m->graph.n_atoms;
    if (reserve_atoms(s, (size_t)num_atoms)) return COMPUTE_ERROR("out of memory for %lld atoms", (long long)num_atoms);
    if (gather_atoms(model_compute, m, coordinates, species_codes)) return 1;

    klay_atoms atoms = {num_atoms, m->graph.n_owned, s->coords, s->species, m->graph.n_edges,
                        m->graph.edge_pairs, m->graph.n_stage_graphs, m->graph.stage_edges};
    klay_results results;
    memset(&results, 0, sizeof results);
    /* the virial comes with the backward pass, which forces ask for */
    results.forces = forces || virial ? s->forces : NULL;
    results.per_atom_energy = particle_energy ? s->per_atom_energy : NULL;
    results.per_atom_virial = particle_virial ? s->per_atom_virial : NULL;
    if (klay_model_compute(m->model, &atoms, &results, err, sizeof err))
        return COMPUTE_ERROR("model evaluation failed on %lld atoms (%d contributing): %s", (long long)num_atoms,
                             num_owned, err);

    /* One sum catches any NaN or Inf: never hand the simulator non-finite numbers as if they were results. */
    double sum = results.energy;
    if (results.forces)
        for (int64_t k = 0; k < 3 * num_atoms; ++k) sum += s->forces[k];
    if (!isfinite(sum))
        return COMPUTE_ERROR("the model gives a non-finite energy or forces (energy %g) on %d contributing "
                             "particles; overlapping particles are the usual cause",
                             results.energy, num_owned);

    if (energy) *energy = results.energy;
    if (forces)
        for (int64_t a = 0; a < num_atoms; ++a)
            for (int c = 0; c < 3; ++c) forces[3 * m->graph.atoms[a] + c] = s->forces[3 * a + c];
    if (particle_energy)
        for (int64_t a = 0; a < m->graph.n_owned; ++a) particle_energy[m->graph.atoms[a]] = s->per_atom_energy[a];
    if (virial) to_kim_virial(results.virial, virial);
    /* padding particles keep their own shares: KIM's particle virials sum to its virial */
    if (particle_virial)
        for (int64_t a = 0; a < num_atoms; ++a)
            to_kim_virial(&s->per_atom_virial[6 * a], &particle_virial[6 * m->graph.atoms[a]]);
    return 0;
}
