/*
 * The KLay OpenKIM model driver's state, shared by its creation (klay_kim_driver.c) and its
 * compute routine (klay_kim_compute.c). The driver reaches the model only through klay.h.
 */
#ifndef KLAY_KIM_DRIVER_H
#define KLAY_KIM_DRIVER_H

#include "KIM_ModelDriverHeaders.h"
#include "klay.h"

#include <stddef.h>
#include <stdint.h>

/* klay.h writes a failure's reason into a caller buffer; YAML errors with file:line:col need room. */
#define KLAY_KIM_ERROR_SIZE 8192

/* Grown on demand and kept from one compute to the next (an MD step asks for the same sizes). */
typedef struct klay_kim_scratch {
    size_t particles_capacity, neighbors_capacity, atoms_capacity;
    int *owned;                 /* [particles] indices of the contributing particles */
    int *numneigh;              /* [particles] */
    const int **firstneigh;     /* [particles] into neighbors */
    int *neighbors;             /* all lists, copied: KIM's pointers last only until the next call */
    double *coords;             /* [atoms][3] model atoms */
    int64_t *species;           /* [atoms] */
    double *forces;             /* [atoms][3] */
    double *per_atom_energy;    /* [atoms] */
    double *per_atom_virial;    /* [atoms][6] */
} klay_kim_scratch;

typedef struct klay_kim_model {
    klay_model *model;
    int num_stages;             /* D */
    double cutoff;              /* r_cut of one stage: the neighbor list the driver asks for */
    double influence_distance;  /* D * r_cut: how far the staged graphs reach from a contributing particle */
    int will_not_request_noncontributing_neighbors; /* 0: the graphs' later stages need them */
    /* what the model allows beyond energy, forces and virial (klay_model_check_outputs): KIM
     * refuses a pointer to an argument declared not supported */
    int has_particle_energy, has_particle_virial;
    int num_species;
    int64_t *species_code;      /* [num_species] the model's code for KIM species code k */
    klay_staged_graph graph;
    klay_kim_scratch scratch;
} klay_kim_model;

/* Defines `static int function(const object_type *object, int line, const char *format, ...)`:
 * formats the message, writes it to the KIM log through log_entry and to stderr (where a
 * simulator's user sees it), and returns 1, KIM's failure status. One per KIM object the driver
 * reports from (they have a log function each). Needs <stdarg.h> and <stdio.h>. */
#define KLAY_KIM_ERROR_FUNCTION(function, object_type, log_entry)                               \
    static int function(object_type const *object, int line, const char *format, ...)            \
    {                                                                                            \
        char message[KLAY_KIM_ERROR_SIZE + 512];                                                 \
        va_list args;                                                                            \
        va_start(args, format);                                                                  \
        vsnprintf(message, sizeof message, format, args);                                        \
        va_end(args);                                                                            \
        log_entry(object, KIM_LOG_VERBOSITY_error, message, line, __FILE__);                     \
        fprintf(stderr, "KLay KIM driver: %s\n", message);                                       \
        return 1;                                                                                \
    }

int klay_kim_compute(KIM_ModelCompute const *model_compute, KIM_ModelComputeArguments const *arguments);

#endif
