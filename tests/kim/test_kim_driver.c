/*
 * A small KIM simulator (the KIM API's C interface) that loads a KLay portable model through the
 * KLay model driver and checks what the driver computes against the energy it computes:
 *   - the declared species, support statuses and neighbor-list request (non-contributing included)
 *   - partialForces on contributing and padding particles = central differences of partialEnergy
 *   - forces folded onto the unit cell = central differences of the periodic energy
 *   - partialVirial = finite-strain derivative of the energy, all 6 components
 *   - partialParticleEnergy sums to partialEnergy; partialParticleVirial (if supported) to partialVirial
 *   - more padding than the influence distance asks for changes nothing
 *   - a species code the model does not know is an error, not a result
 * The structure: a rattled diamond cell on a general triclinic lattice, periodic through explicit
 * padding images, species assigned round-robin from the command line's elements.
 *
 *   test_kim_driver [--particle-virial] [--nan-on-overlap] <KIM model name> <element>...
 *       --particle-virial: the model supports partialParticleVirial (it takes shifts); without it
 *       the driver must declare it not supported
 *       --nan-on-overlap: the model's numbers are NaN for two atoms at one place (examples/si's are):
 *       the driver must report that as an error
 *       exit 0: pass, 1: fail
 *   test_kim_driver --refused <KIM model name> <text>  KIM cannot create the model, and the driver's
 *                                                      message (stderr) contains the text
 */
#define _POSIX_C_SOURCE 200809L /* dup, dup2, fileno: the refusal check reads the driver's stderr */
#include "KIM_SimulatorHeaders.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ATOMS 8
/* central differences with h = 1e-5: truncation ~h^2, rounding ~1e-16/h of the energy */
#define STEP 1e-5
#define FINITE_DIFFERENCE_TOLERANCE 1e-7
#define EXACT_TOLERANCE 1e-12
#define SKIN 0.4

static int failures = 0;

#define CHECK(condition, ...)                                       \
    do {                                                            \
        if (!(condition)) {                                         \
            printf("FAIL (%s:%d): ", __FILE__, __LINE__);           \
            printf(__VA_ARGS__);                                    \
            printf("\n");                                           \
            ++failures;                                             \
        }                                                           \
    } while (0)

/* The periodic structure: unit cell atoms, the lattice, and the particles KIM sees: the atoms
 * (contributing) then padding images (non-contributing) of atom origin[p] shifted by image[p]. */
typedef struct {
    double cell[3][3]; /* rows: lattice vectors */
    int n_atoms;
    double atoms[MAX_ATOMS][3];
    int atom_species[MAX_ATOMS]; /* KIM species codes */
    int n;                       /* particles */
    int *origin, (*image)[3], *contributing, *species;
    double *x;
    double list_cutoff;          /* neighbor lists: every particle within list_cutoff */
    int *numneigh, *offset, *neighbors;
} System;

static void *checked_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) {
        printf("FAIL: out of memory\n");
        exit(1);
    }
    return p;
}

static void particle_position(const System *s, int p, double out[3])
{
    for (int c = 0; c < 3; ++c) {
        out[c] = s->atoms[s->origin[p]][c];
        for (int k = 0; k < 3; ++k) out[c] += s->image[p][k] * s->cell[k][c];
    }
}

static double distance_squared(const double *a, const double *b)
{
    double d2 = 0.0;
    for (int c = 0; c < 3; ++c) d2 += (a[c] - b[c]) * (a[c] - b[c]);
    return d2;
}

/* Particles: the atoms, then every image within `reach` of an atom. The set is chosen once and
 * kept under displacements and strains, which stay far below the margin the callers leave. */
static void choose_particles(System *s, double reach)
{
    const int range = 4;
    const int max = s->n_atoms * (2 * range + 1) * (2 * range + 1) * (2 * range + 1);
    s->origin = checked_malloc(max * sizeof *s->origin);
    s->image = checked_malloc(max * sizeof *s->image);
    s->n = 0;
    for (int a = 0; a < s->n_atoms; ++a) {
        s->origin[s->n] = a;
        s->image[s->n][0] = s->image[s->n][1] = s->image[s->n][2] = 0;
        ++s->n;
    }
    for (int i = -range; i <= range; ++i)
        for (int j = -range; j <= range; ++j)
            for (int k = -range; k <= range; ++k) {
                if (i == 0 && j == 0 && k == 0) continue;
                for (int a = 0; a < s->n_atoms; ++a) {
                    s->origin[s->n] = a;
                    s->image[s->n][0] = i, s->image[s->n][1] = j, s->image[s->n][2] = k;
                    double x[3];
                    particle_position(s, s->n, x);
                    int near = 0;
                    for (int b = 0; b < s->n_atoms && !near; ++b) near = distance_squared(x, s->atoms[b]) <= reach * reach;
                    if (near) ++s->n;
                }
            }
    s->x = checked_malloc(3 * s->n * sizeof *s->x);
    s->contributing = checked_malloc(s->n * sizeof *s->contributing);
    s->species = checked_malloc(s->n * sizeof *s->species);
    s->numneigh = checked_malloc(s->n * sizeof *s->numneigh);
    s->offset = checked_malloc(s->n * sizeof *s->offset);
    s->neighbors = NULL;
    for (int p = 0; p < s->n; ++p) {
        s->contributing[p] = p < s->n_atoms;
        s->species[p] = s->atom_species[s->origin[p]];
    }
}

/* Positions from the atoms and the cell, and full neighbor lists within list_cutoff (brute force). */
static void update(System *s)
{
    for (int p = 0; p < s->n; ++p) particle_position(s, p, &s->x[3 * p]);
    size_t total = 0, capacity = 64 * (size_t)s->n;
    free(s->neighbors);
    s->neighbors = checked_malloc(capacity * sizeof *s->neighbors);
    const double cut2 = s->list_cutoff * s->list_cutoff;
    for (int p = 0; p < s->n; ++p) {
        s->offset[p] = (int)total;
        for (int q = 0; q < s->n; ++q) {
            if (q == p || distance_squared(&s->x[3 * p], &s->x[3 * q]) > cut2) continue;
            if (total == capacity) {
                capacity *= 2;
                s->neighbors = realloc(s->neighbors, capacity * sizeof *s->neighbors);
                if (!s->neighbors) exit(1);
            }
            s->neighbors[total++] = q;
        }
        s->numneigh[p] = (int)total - s->offset[p];
    }
}

static int get_neighbors(void *data, int number_of_lists, const double *cutoffs, int list, int particle,
                         int *count, const int **neighbors)
{
    const System *s = data;
    if (number_of_lists != 1 || list != 0 || cutoffs[0] > s->list_cutoff || particle < 0 || particle >= s->n)
        return 1;
    *count = s->numneigh[particle];
    *neighbors = s->neighbors + s->offset[particle];
    return 0;
}

typedef struct {
    KIM_Model *model;
    KIM_ComputeArguments *arguments;
    int per_particle_energy, per_particle_virial;
    double energy, virial[6], particle_virial_sum[6];
    double *forces, *particle_energy, *particle_virial;
} Simulator;

/* Points KIM at the system's arrays (they move when the system is rebuilt) and computes. */
static int compute(Simulator *sim, System *s)
{
    free(sim->forces);
    free(sim->particle_energy);
    free(sim->particle_virial);
    sim->forces = checked_malloc(3 * s->n * sizeof(double));
    sim->particle_energy = checked_malloc(s->n * sizeof(double));
    sim->particle_virial = checked_malloc(6 * s->n * sizeof(double));
    KIM_ComputeArguments *args = sim->arguments;
    int error =
        KIM_ComputeArguments_SetArgumentPointerInteger(args, KIM_COMPUTE_ARGUMENT_NAME_numberOfParticles, &s->n) ||
        KIM_ComputeArguments_SetArgumentPointerInteger(args, KIM_COMPUTE_ARGUMENT_NAME_particleSpeciesCodes,
                                                       s->species) ||
        KIM_ComputeArguments_SetArgumentPointerInteger(args, KIM_COMPUTE_ARGUMENT_NAME_particleContributing,
                                                       s->contributing) ||
        KIM_ComputeArguments_SetArgumentPointerDouble(args, KIM_COMPUTE_ARGUMENT_NAME_coordinates, s->x) ||
        KIM_ComputeArguments_SetArgumentPointerDouble(args, KIM_COMPUTE_ARGUMENT_NAME_partialEnergy, &sim->energy) ||
        KIM_ComputeArguments_SetArgumentPointerDouble(args, KIM_COMPUTE_ARGUMENT_NAME_partialForces, sim->forces) ||
        KIM_ComputeArguments_SetArgumentPointerDouble(args, KIM_COMPUTE_ARGUMENT_NAME_partialVirial, sim->virial) ||
        KIM_ComputeArguments_SetArgumentPointerDouble(args, KIM_COMPUTE_ARGUMENT_NAME_partialParticleEnergy,
                                                      sim->per_particle_energy ? sim->particle_energy : NULL) ||
        KIM_ComputeArguments_SetArgumentPointerDouble(args, KIM_COMPUTE_ARGUMENT_NAME_partialParticleVirial,
                                                      sim->per_particle_virial ? sim->particle_virial : NULL) ||
        KIM_ComputeArguments_SetCallbackPointer(args, KIM_COMPUTE_CALLBACK_NAME_GetNeighborList, KIM_LANGUAGE_NAME_c,
                                                (KIM_Function *)get_neighbors, s);
    if (error) {
        printf("FAIL: cannot set the compute arguments\n");
        exit(1);
    }
    return KIM_Model_Compute(sim->model, args);
}

/* The energy of the particles as they are (neighbor lists kept: displacements stay inside the skin). */
static double energy_now(Simulator *sim, System *s)
{
    if (compute(sim, s)) {
        printf("FAIL: KIM_Model_Compute failed (the driver's reason is above and in kim.log)\n");
        exit(1);
    }
    return sim->energy;
}

/* The energy after placing the particles from the atoms and the cell, with fresh neighbor lists. */
static double energy_of(Simulator *sim, System *s)
{
    update(s);
    return energy_now(sim, s);
}

/* max |got - want| / max |want| over n values, printed with its name; counts a failure over bar. */
static void compare(const char *name, const double *got, const double *want, int n, double bar)
{
    double worst = 0.0, scale = 0.0;
    for (int k = 0; k < n; ++k) {
        worst = fmax(worst, fabs(got[k] - want[k]));
        scale = fmax(scale, fabs(want[k]));
    }
    const double relative = scale > 0.0 ? worst / scale : worst;
    printf("%s: max |difference| %.3e = %.3e relative (bar %g) %s\n", name, worst, relative, bar,
           relative <= bar ? "ok" : "FAIL");
    if (!(relative <= bar)) ++failures;
}

static double force_size(const double *f) { return fabs(f[0]) + fabs(f[1]) + fabs(f[2]); }

/* -dE/dx of single particles, the padding ones included (KIM's partialForces): the first atom, and
 * the padding particles with the largest and the smallest force (0: beyond the graphs' reach). */
static void check_particle_forces(Simulator *sim, System *s)
{
    energy_of(sim, s);
    double *forces = checked_malloc(3 * s->n * sizeof *forces);
    memcpy(forces, sim->forces, 3 * s->n * sizeof *forces);
    int largest = s->n_atoms, smallest = s->n_atoms;
    for (int p = s->n_atoms; p < s->n; ++p) {
        if (force_size(&forces[3 * p]) > force_size(&forces[3 * largest])) largest = p;
        if (force_size(&forces[3 * p]) < force_size(&forces[3 * smallest])) smallest = p;
    }
    const int particles[3] = {0, largest, smallest};
    double got[9], want[9];
    for (int k = 0; k < 3; ++k)
        for (int c = 0; c < 3; ++c) {
            double *x = &s->x[3 * particles[k] + c];
            const double x0 = *x;
            *x = x0 + STEP;
            const double plus = energy_now(sim, s);
            *x = x0 - STEP;
            const double minus = energy_now(sim, s);
            *x = x0;
            got[3 * k + c] = forces[3 * particles[k] + c];
            want[3 * k + c] = -(plus - minus) / (2 * STEP);
        }
    printf("single particles: contributing 0 (|F| %.3g), padding %d (|F| %.3g), padding %d (|F| %.3g)\n",
           force_size(&forces[0]), largest, force_size(&forces[3 * largest]), smallest,
           force_size(&forces[3 * smallest]));
    compare("partialForces vs central differences of partialEnergy, single particles", got, want, 9,
            FINITE_DIFFERENCE_TOLERANCE);
    free(forces);
}

/* Each atom's force summed over its images vs -dE/dx of the periodic energy (atom and images move). */
static void check_folded_forces(Simulator *sim, System *s, double folded[][3])
{
    double got[3 * MAX_ATOMS], want[3 * MAX_ATOMS];
    for (int a = 0; a < s->n_atoms; ++a)
        for (int c = 0; c < 3; ++c) {
            const double x0 = s->atoms[a][c];
            s->atoms[a][c] = x0 + STEP;
            const double plus = energy_of(sim, s);
            s->atoms[a][c] = x0 - STEP;
            const double minus = energy_of(sim, s);
            s->atoms[a][c] = x0;
            got[3 * a + c] = folded[a][c];
            want[3 * a + c] = -(plus - minus) / (2 * STEP);
        }
    compare("forces folded onto the cell vs central differences of the periodic energy", got, want,
            3 * s->n_atoms, FINITE_DIFFERENCE_TOLERANCE);
}

/* KIM's virial component (a,b), order xx yy zz yz xz xy, is -sum x_a F_b = dE/dh under x_b += h x_a. */
static const int VIRIAL_AXES[6][2] = {{0, 0}, {1, 1}, {2, 2}, {1, 2}, {0, 2}, {0, 1}};

static void strain(System *s, int a, int b, double h)
{
    for (int k = 0; k < 3; ++k) s->cell[k][b] += h * s->cell[k][a];
    for (int i = 0; i < s->n_atoms; ++i) s->atoms[i][b] += h * s->atoms[i][a];
}

static void check_virial(Simulator *sim, System *s, const double virial[6])
{
    System saved = *s;
    double want[6];
    for (int k = 0; k < 6; ++k) {
        const int a = VIRIAL_AXES[k][0], b = VIRIAL_AXES[k][1];
        strain(s, a, b, STEP);
        const double plus = energy_of(sim, s);
        memcpy(s->cell, saved.cell, sizeof s->cell);
        memcpy(s->atoms, saved.atoms, sizeof s->atoms);
        strain(s, a, b, -STEP);
        const double minus = energy_of(sim, s);
        memcpy(s->cell, saved.cell, sizeof s->cell);
        memcpy(s->atoms, saved.atoms, sizeof s->atoms);
        want[k] = (plus - minus) / (2 * STEP);
    }
    compare("partialVirial vs finite-strain derivative of the energy (xx yy zz yz xz xy)", virial, want, 6,
            FINITE_DIFFERENCE_TOLERANCE);
}

/* The diamond structure on a general triclinic cell, every atom moved by up to 0.1 A. */
static void make_structure(System *s, const int *codes, int n_codes)
{
    static const double cell[3][3] = {{5.43, 0.0, 0.0}, {0.21, 5.47, 0.0}, {-0.13, 0.17, 5.39}};
    static const double fractions[MAX_ATOMS][3] = {{0, 0, 0},          {0, 0.5, 0.5},      {0.5, 0, 0.5},
                                                   {0.5, 0.5, 0},      {0.25, 0.25, 0.25}, {0.25, 0.75, 0.75},
                                                   {0.75, 0.25, 0.75}, {0.75, 0.75, 0.25}};
    memcpy(s->cell, cell, sizeof cell);
    s->n_atoms = MAX_ATOMS;
    unsigned state = 12345u;
    for (int a = 0; a < MAX_ATOMS; ++a) {
        for (int c = 0; c < 3; ++c) {
            state = state * 1103515245u + 12345u;
            const double rattle = 0.1 * (2.0 * ((state >> 8) & 0xffff) / 65535.0 - 1.0);
            s->atoms[a][c] = rattle;
            for (int k = 0; k < 3; ++k) s->atoms[a][c] += fractions[a][k] * cell[k][c];
        }
        s->atom_species[a] = codes[a % n_codes];
    }
}

static KIM_SupportStatus support_of(KIM_ComputeArguments *args, KIM_ComputeArgumentName name)
{
    KIM_SupportStatus status;
    if (KIM_ComputeArguments_GetArgumentSupportStatus(args, name, &status)) {
        printf("FAIL: no support status for %s\n", KIM_ComputeArgumentName_ToString(name));
        exit(1);
    }
    return status;
}

static int is_optional(KIM_SupportStatus status) { return KIM_SupportStatus_Equal(status, KIM_SUPPORT_STATUS_optional); }

static int create_model(const char *name, KIM_Model **model, int *accepted)
{
    return KIM_Model_Create(KIM_NUMBERING_zeroBased, KIM_LENGTH_UNIT_A, KIM_ENERGY_UNIT_eV, KIM_CHARGE_UNIT_e,
                            KIM_TEMPERATURE_UNIT_K, KIM_TIME_UNIT_ps, name, accepted, model);
}

/* A model the driver must refuse: KIM_Model_Create fails and the driver says why. (KIM API 2.3.0
 * writes a model's parameter files to /tmp/kim-shared-library-parameter-file-directory-* for the
 * driver to read and leaves that directory behind when the driver refuses: one per run.) */
static int check_refused(const char *name, const char *expected)
{
    FILE *capture = tmpfile();
    const int saved = dup(2);
    if (!capture || saved < 0) {
        printf("FAIL: cannot capture stderr\n");
        return 1;
    }
    fflush(stderr);
    dup2(fileno(capture), 2);
    KIM_Model *model = NULL;
    int accepted;
    const int error = create_model(name, &model, &accepted);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char text[16384] = "";
    rewind(capture);
    text[fread(text, 1, sizeof text - 1, capture)] = '\0';
    fclose(capture);
    printf("the driver said: %s\n", text);
    CHECK(error != 0, "KIM created model %s, which the driver should refuse", name);
    CHECK(strstr(text, expected) != NULL, "the driver's message does not say '%s'", expected);
    if (!error) KIM_Model_Destroy(&model);
    printf(failures ? "%d check(s) FAILED\n" : "refused as expected\n", failures);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--refused") == 0) return check_refused(argv[2], argv[3]);
    int expect_particle_virial = 0, nan_on_overlap = 0;
    for (; argc > 1 && strncmp(argv[1], "--", 2) == 0; --argc, ++argv) {
        if (strcmp(argv[1], "--particle-virial") == 0)
            expect_particle_virial = 1;
        else if (strcmp(argv[1], "--nan-on-overlap") == 0)
            nan_on_overlap = 1;
        else
            break;
    }
    if (argc < 3) {
        printf("usage: test_kim_driver [--particle-virial] [--nan-on-overlap] <KIM model name> <element>... | "
               "--refused <KIM model name> <text>\n");
        return 1;
    }
    Simulator sim;
    memset(&sim, 0, sizeof sim);
    int accepted;
    if (create_model(argv[1], &sim.model, &accepted)) {
        printf("FAIL: KIM cannot create model %s (is KIM_API_CONFIGURATION_FILE the build tree's?)\n", argv[1]);
        return 1;
    }
    CHECK(accepted, "the model does not work in Angstrom and eV");

    int codes[16], n_codes = argc - 2;
    if (n_codes > 16) n_codes = 16;
    for (int k = 0; k < n_codes; ++k) {
        int supported;
        KIM_Model_GetSpeciesSupportAndCode(sim.model, KIM_SpeciesName_FromString(argv[k + 2]), &supported, &codes[k]);
        CHECK(supported, "the model does not declare %s", argv[k + 2]);
        if (!supported) return 1;
    }
    int supported = 1, unused_code;
    KIM_Model_GetSpeciesSupportAndCode(sim.model, KIM_SPECIES_NAME_Xe, &supported, &unused_code);
    CHECK(!supported, "the model claims Xe, which its md: species list does not have");

    int n_lists;
    const double *cutoffs;
    const int *will_not_request;
    double influence;
    KIM_Model_GetInfluenceDistance(sim.model, &influence);
    KIM_Model_GetNeighborListPointers(sim.model, &n_lists, &cutoffs, &will_not_request);
    CHECK(n_lists == 1, "%d neighbor lists, expected one cut at the model's cutoff", n_lists);
    CHECK(will_not_request[0] == 0, "the driver does not ask for neighbors of non-contributing particles; the "
                                    "later stages of the staged graphs start from them");
    CHECK(influence >= 2 * cutoffs[0] - 1e-12, "influence distance %g below 2 stages of cutoff %g", influence,
          cutoffs[0]);
    printf("model %s: influence distance %g, neighbor list cutoff %g\n", argv[1], influence, cutoffs[0]);

    if (KIM_Model_ComputeArgumentsCreate(sim.model, &sim.arguments)) {
        printf("FAIL: KIM_Model_ComputeArgumentsCreate\n");
        return 1;
    }
    CHECK(is_optional(support_of(sim.arguments, KIM_COMPUTE_ARGUMENT_NAME_partialEnergy)), "partialEnergy");
    CHECK(is_optional(support_of(sim.arguments, KIM_COMPUTE_ARGUMENT_NAME_partialForces)), "partialForces");
    CHECK(is_optional(support_of(sim.arguments, KIM_COMPUTE_ARGUMENT_NAME_partialVirial)), "partialVirial");
    sim.per_particle_energy = is_optional(support_of(sim.arguments, KIM_COMPUTE_ARGUMENT_NAME_partialParticleEnergy));
    sim.per_particle_virial = is_optional(support_of(sim.arguments, KIM_COMPUTE_ARGUMENT_NAME_partialParticleVirial));
    printf("partialParticleEnergy %s, partialParticleVirial %s\n", sim.per_particle_energy ? "optional" : "not supported",
           sim.per_particle_virial ? "optional" : "not supported");
    CHECK(sim.per_particle_virial == expect_particle_virial, "partialParticleVirial should be %s for this model",
          expect_particle_virial ? "optional" : "not supported");

    System s;
    memset(&s, 0, sizeof s);
    make_structure(&s, codes, n_codes);
    s.list_cutoff = cutoffs[0] + SKIN;
    choose_particles(&s, influence);
    const double energy = energy_of(&sim, &s);
    double virial[6], folded[MAX_ATOMS][3] = {{0}};
    memcpy(virial, sim.virial, sizeof virial);
    for (int p = 0; p < s.n; ++p)
        for (int c = 0; c < 3; ++c) folded[s.origin[p]][c] += sim.forces[3 * p + c];
    printf("%d atoms, %d padding particles: energy %.12f eV\n", s.n_atoms, s.n - s.n_atoms, energy);

    if (sim.per_particle_energy) {
        double sum = 0.0, padding = 0.0;
        for (int p = 0; p < s.n; ++p) *(p < s.n_atoms ? &sum : &padding) += sim.particle_energy[p];
        compare("sum of partialParticleEnergy vs partialEnergy", &sum, &energy, 1, EXACT_TOLERANCE);
        CHECK(padding == 0.0, "padding particles have energy %g", padding);
    }
    if (sim.per_particle_virial) {
        double sum[6] = {0};
        for (int p = 0; p < s.n; ++p)
            for (int k = 0; k < 6; ++k) sum[k] += sim.particle_virial[6 * p + k];
        compare("sum of partialParticleVirial vs partialVirial", sum, virial, 6, EXACT_TOLERANCE);
    }

    check_particle_forces(&sim, &s);
    check_folded_forces(&sim, &s, folded);
    check_virial(&sim, &s, virial);

    /* More padding than the influence distance asks for: the same energy, forces and virial. */
    System wide = s;
    choose_particles(&wide, influence + 2.0);
    const double wide_energy = energy_of(&sim, &wide);
    double wide_folded[MAX_ATOMS][3] = {{0}};
    for (int p = 0; p < wide.n; ++p)
        for (int c = 0; c < 3; ++c) wide_folded[wide.origin[p]][c] += sim.forces[3 * p + c];
    printf("with 2 A more padding: %d padding particles\n", wide.n - wide.n_atoms);
    compare("energy with more padding", &wide_energy, &energy, 1, EXACT_TOLERANCE);
    compare("folded forces with more padding", &wide_folded[0][0], &folded[0][0], 3 * s.n_atoms, EXACT_TOLERANCE);
    compare("virial with more padding", sim.virial, virial, 6, EXACT_TOLERANCE);

    /* A species code the model never declared: an error, not numbers. */
    update(&s);
    s.species[1] = 99;
    printf("a particle with species code 99 (the driver reports it):\n");
    fflush(stdout);
    CHECK(compute(&sim, &s) != 0, "the driver computed with species code 99");

    /* Two particles on top of each other: the model's numbers are not finite, and the driver must
     * say so instead of handing them over. */
    if (nan_on_overlap) {
        s.species[1] = s.species[0];
        memcpy(&s.x[3], &s.x[0], 3 * sizeof *s.x);
        printf("particles 0 and 1 on top of each other (the driver reports it):\n");
        fflush(stdout);
        CHECK(compute(&sim, &s) != 0, "the driver computed with two particles at the same place");
    }

    KIM_Model_ComputeArgumentsDestroy(sim.model, &sim.arguments);
    KIM_Model_Destroy(&sim.model);
    printf(failures ? "%d check(s) FAILED\n" : "all checks passed\n", failures);
    return failures ? 1 : 0;
}
