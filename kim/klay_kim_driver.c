/*
 * KLay OpenKIM model driver: creation and destruction of a KIM portable model whose parameter
 * files are a KLay model's YAML (file 1) and its trained weights (file 2).
 *
 * What the model tells KIM, all read through klay.h:
 *   species             the `md: species` list of the YAML, KIM species code k = list entry k
 *   units               Angstrom and eV (a model declaring other `md: units` is refused)
 *   neighbor list       one, cut at r_cut (klay_model_cutoff), with the lists of non-contributing
 *                       particles too: stage k of the staged graphs starts from particles up to
 *                       k * r_cut outside the contributing ones
 *   influence distance  D * r_cut (D = klay_model_num_stages), the reach of the staged graphs
 *   compute arguments   partialEnergy, partialForces, partialVirial; partialParticleEnergy and
 *                       partialParticleVirial where klay_model_check_outputs allows them
 * This is the convention of the OpenKIM TorchML driver: contributing particles are the owned atoms.
 */
#include "klay_kim_driver.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int klay_kim_driver_create(KIM_ModelDriverCreate *create, KIM_LengthUnit requested_length,
                           KIM_EnergyUnit requested_energy, KIM_ChargeUnit requested_charge,
                           KIM_TemperatureUnit requested_temperature, KIM_TimeUnit requested_time);

KLAY_KIM_ERROR_FUNCTION(create_error, KIM_ModelDriverCreate, KIM_ModelDriverCreate_LogEntry)
#define CREATE_ERROR(...) create_error(create, __LINE__, __VA_ARGS__)

static void free_model(klay_kim_model *m)
{
    if (!m) return;
    klay_model_free(m->model);
    klay_staged_graph_free(&m->graph);
    free(m->species_code);
    free(m->scratch.owned);
    free(m->scratch.numneigh);
    free(m->scratch.firstneigh);
    free(m->scratch.neighbors);
    free(m->scratch.coords);
    free(m->scratch.species);
    free(m->scratch.forces);
    free(m->scratch.per_atom_energy);
    free(m->scratch.per_atom_virial);
    free(m);
}

static int destroy(KIM_ModelDestroy *model_destroy)
{
    klay_kim_model *m;
    KIM_ModelDestroy_GetModelBufferPointer(model_destroy, (void **)&m);
    free_model(m);
    return 0;
}

static int can_give(const klay_model *model, klay_output output)
{
    char reason[KLAY_KIM_ERROR_SIZE];
    return klay_model_check_outputs(model, output, reason, sizeof reason) == 0;
}

static int compute_arguments_create(KIM_ModelCompute const *model_compute,
                                    KIM_ModelComputeArgumentsCreate *arguments_create)
{
    klay_kim_model *m;
    KIM_ModelCompute_GetModelBufferPointer(model_compute, (void **)&m);
    const KIM_SupportStatus optional = KIM_SUPPORT_STATUS_optional, no = KIM_SUPPORT_STATUS_notSupported;
    KIM_SupportStatus per_atom_energy = m->has_particle_energy ? optional : no;
    KIM_SupportStatus per_atom_virial = m->has_particle_virial ? optional : no;
    int failed =
        KIM_ModelComputeArgumentsCreate_SetArgumentSupportStatus(
            arguments_create, KIM_COMPUTE_ARGUMENT_NAME_partialEnergy, KIM_SUPPORT_STATUS_optional) ||
        KIM_ModelComputeArgumentsCreate_SetArgumentSupportStatus(
            arguments_create, KIM_COMPUTE_ARGUMENT_NAME_partialForces, KIM_SUPPORT_STATUS_optional) ||
        KIM_ModelComputeArgumentsCreate_SetArgumentSupportStatus(
            arguments_create, KIM_COMPUTE_ARGUMENT_NAME_partialParticleEnergy, per_atom_energy) ||
        KIM_ModelComputeArgumentsCreate_SetArgumentSupportStatus(
            arguments_create, KIM_COMPUTE_ARGUMENT_NAME_partialVirial, KIM_SUPPORT_STATUS_optional) ||
        KIM_ModelComputeArgumentsCreate_SetArgumentSupportStatus(
            arguments_create, KIM_COMPUTE_ARGUMENT_NAME_partialParticleVirial, per_atom_virial);
    if (failed)
        KIM_ModelComputeArgumentsCreate_LogEntry(arguments_create, KIM_LOG_VERBOSITY_error,
                                                 "KLay KIM driver: cannot set the support status of the compute arguments",
                                                 __LINE__, __FILE__);
    return failed;
}

static int compute_arguments_destroy(KIM_ModelCompute const *model_compute,
                                     KIM_ModelComputeArgumentsDestroy *arguments_destroy)
{
    (void)model_compute;
    (void)arguments_destroy;
    return 0;
}

/* The full path of parameter file `index` (0-based) into path; 1 if it does not fit. */
static int parameter_file(KIM_ModelDriverCreate *create, int index, char *path, size_t size)
{
    const char *directory, *basename;
    KIM_ModelDriverCreate_GetParameterFileDirectoryName(create, &directory);
    if (KIM_ModelDriverCreate_GetParameterFileBasename(create, index, &basename))
        return CREATE_ERROR("cannot get the name of parameter file %d", index + 1);
    if ((size_t)snprintf(path, size, "%s/%s", directory, basename) >= size)
        return CREATE_ERROR("the path of parameter file %d is longer than %zu characters: %s/%s", index + 1,
                            size - 1, directory, basename);
    return 0;
}

static int load_model(KIM_ModelDriverCreate *create, klay_kim_model *m)
{
    int num_files;
    KIM_ModelDriverCreate_GetNumberOfParameterFiles(create, &num_files);
    if (num_files != 2)
        return CREATE_ERROR("the model has %d parameter file(s); the KLay driver takes 2: the model's YAML, "
                            "then its weights (.pth or .safetensors)",
                            num_files);
    char yaml[4096], weights[4096], err[KLAY_KIM_ERROR_SIZE] = "";
    if (parameter_file(create, 0, yaml, sizeof yaml) || parameter_file(create, 1, weights, sizeof weights)) return 1;

    klay_model_options options = {KLAY_FLOAT64, 0};
    m->model = klay_model_load(yaml, weights, &options, err, sizeof err);
    if (!m->model) return CREATE_ERROR("cannot load the KLay model (parameter files %s and %s): %s", yaml, weights, err);

    const char *units = klay_model_units(m->model);
    if (units && strcmp(units, "metal") != 0)
        return CREATE_ERROR("the model declares md: units %s; the KLay driver provides Angstrom and eV (metal)", units);

    m->num_stages = klay_model_num_stages(m->model);
    m->cutoff = klay_model_cutoff(m->model);
    if (!(m->cutoff > 0.0) || m->num_stages < 1)
        return CREATE_ERROR("the model has cutoff %g and %d message-passing stage(s); the driver needs a positive "
                            "cutoff and at least one stage",
                            m->cutoff, m->num_stages);
    m->influence_distance = m->num_stages * m->cutoff;
    /* Per-atom energies where the energy is a sum of per-atom terms the model exposes; per-atom
     * virials where it takes shifts, whose gradients split the many-body virial onto edges (forces
     * alone do not define that split). */
    m->has_particle_energy = can_give(m->model, KLAY_OUTPUT_PER_ATOM_ENERGY);
    m->has_particle_virial = can_give(m->model, KLAY_OUTPUT_PER_ATOM_VIRIAL);
    m->will_not_request_noncontributing_neighbors = 0;
    return 0;
}

/* KIM species code k is entry k of the model's md: species list. */
static int register_species(KIM_ModelDriverCreate *create, klay_kim_model *m)
{
    const size_t n = klay_model_num_declared_species(m->model);
    if (n == 0)
        return CREATE_ERROR("the model's YAML declares no species list; KIM needs the elements when the model is "
                            "created: add them to its md: section, e.g. `md: {species: [Si, O]}`, in the order of "
                            "the model's species indices");
    m->species_code = malloc(n * sizeof *m->species_code);
    if (!m->species_code) return CREATE_ERROR("out of memory");
    m->num_species = (int)n;
    for (size_t k = 0; k < n; ++k) {
        const char *element = klay_model_declared_species(m->model, k);
        KIM_SpeciesName name = KIM_SpeciesName_FromString(element);
        if (!KIM_SpeciesName_Known(name))
            return CREATE_ERROR("md: species entry %zu, '%s', is not an element KIM knows", k + 1, element);
        char err[KLAY_KIM_ERROR_SIZE] = "";
        if (klay_model_element_code(m->model, element, &m->species_code[k], err, sizeof err))
            return CREATE_ERROR("md: species entry %zu, '%s': %s", k + 1, element, err);
        if (KIM_ModelDriverCreate_SetSpeciesCode(create, name, (int)k))
            return CREATE_ERROR("KIM refused species %s", element);
    }
    return 0;
}

static int register_routines(KIM_ModelDriverCreate *create)
{
    const KIM_LanguageName c = KIM_LANGUAGE_NAME_c;
    int failed =
        KIM_ModelDriverCreate_SetRoutinePointer(create, KIM_MODEL_ROUTINE_NAME_ComputeArgumentsCreate, c, 1,
                                                (KIM_Function *)compute_arguments_create) ||
        KIM_ModelDriverCreate_SetRoutinePointer(create, KIM_MODEL_ROUTINE_NAME_Compute, c, 1,
                                                (KIM_Function *)klay_kim_compute) ||
        KIM_ModelDriverCreate_SetRoutinePointer(create, KIM_MODEL_ROUTINE_NAME_ComputeArgumentsDestroy, c, 1,
                                                (KIM_Function *)compute_arguments_destroy) ||
        KIM_ModelDriverCreate_SetRoutinePointer(create, KIM_MODEL_ROUTINE_NAME_Destroy, c, 1,
                                                (KIM_Function *)destroy);
    return failed ? CREATE_ERROR("KIM refused the driver's routines") : 0;
}

int klay_kim_driver_create(KIM_ModelDriverCreate *create, KIM_LengthUnit requested_length,
                           KIM_EnergyUnit requested_energy, KIM_ChargeUnit requested_charge,
                           KIM_TemperatureUnit requested_temperature, KIM_TimeUnit requested_time)
{
    /* KLay models are trained in Angstrom and eV; the simulator converts (KIM reports the units). */
    (void)requested_length;
    (void)requested_energy;
    (void)requested_charge;
    (void)requested_temperature;
    (void)requested_time;
    if (KIM_ModelDriverCreate_SetUnits(create, KIM_LENGTH_UNIT_A, KIM_ENERGY_UNIT_eV, KIM_CHARGE_UNIT_unused,
                                       KIM_TEMPERATURE_UNIT_unused, KIM_TIME_UNIT_unused))
        return CREATE_ERROR("KIM refused the units Angstrom and eV");
    if (KIM_ModelDriverCreate_SetModelNumbering(create, KIM_NUMBERING_zeroBased))
        return CREATE_ERROR("KIM refused zero-based numbering");

    klay_kim_model *m = calloc(1, sizeof *m);
    if (!m) return CREATE_ERROR("out of memory");
    klay_staged_graph_init(&m->graph);
    if (load_model(create, m) || register_species(create, m) || register_routines(create)) {
        free_model(m);
        return 1;
    }
    KIM_ModelDriverCreate_SetModelBufferPointer(create, m);
    KIM_ModelDriverCreate_SetInfluenceDistancePointer(create, &m->influence_distance);
    KIM_ModelDriverCreate_SetNeighborListPointers(create, 1, &m->cutoff,
                                                  &m->will_not_request_noncontributing_neighbors);
    return 0;
}
