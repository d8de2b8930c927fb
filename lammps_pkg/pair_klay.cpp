/* ----------------------------------------------------------------------
   LAMMPS - Large-scale Atomic/Molecular Massively Parallel Simulator
   https://www.lammps.org/, Sandia National Laboratories
   LAMMPS development team: developers@lammps.org

   This software is distributed under the GNU General Public License.
   See the README file in the top-level LAMMPS directory.
------------------------------------------------------------------------- */

/* ----------------------------------------------------------------------
   pair_style klay: KLay machine-learned potentials (YAML + trained weights) evaluated by the
   klay runtime through its C API (klay.h). This file adapts LAMMPS data to that API and back:
   staged graphs from the full neighbor list, energy, forces, virial.

   It compiles against LAMMPS from stable 29 Sep 2021 on. Where the LAMMPS API changed since,
   the newer call is chosen by a KLAY_LAMMPS_HAS_* macro that lammps_api.cmake sets from the
   LAMMPS headers.
------------------------------------------------------------------------- */

#include "pair_klay.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neigh_request.h"
#include "neighbor.h"
#include "update.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include <sys/resource.h>
#ifdef __linux__
#include <sched.h>
#endif

using namespace LAMMPS_NS;

namespace {
// klay.h writes a failure's reason into a caller buffer; YAML errors with file:line:col and the
// weight checks that name every offending key need room.
constexpr std::size_t KLAY_ERROR_SIZE = 8192;

void require_value(Error *error, int iarg, int narg, const char *keyword)
{
  if (iarg + 2 > narg)
    error->all(FLERR, "Illegal pair_style klay command: {} needs a value", keyword);
}
}    // namespace

/* ---------------------------------------------------------------------- */

PairKLay::PairKLay(LAMMPS *lmp) :
    Pair(lmp), model(nullptr), use_float32(0), num_threads(0), threads_source("threads keyword"),
    feed_largest_graph(0), cutoff(0.0), num_stages(0), ghost_cutoff_set(0.0), reverse_stride(3),
    model_energy(0.0), time_graph(0.0), time_forward(0.0), time_backward(0.0),
    time_first_compute(-1.0), num_computes(0)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  centroidstressflag = CENTROID_NOTAVAIL;

  // The global virial is the runtime's, over owned and ghost atoms (tally_virial): with newton
  // off the ghost forces never enter atom->f, so an fdotr over atom->f would miss them.
  // pair_style hybrid then lets every sub-style tally its own.
  no_virial_fdotr_compute = 1;

  // newton off: the forces (and per-atom virials) of ghost atoms go home by this style's own
  // reverse communication
  comm_reverse = 9;

  klay_staged_graph_init(&graph);
}

/* ---------------------------------------------------------------------- */

PairKLay::~PairKLay()
{
  if (copymode) return;
  free_model();
  klay_staged_graph_free(&graph);
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairKLay::free_model()
{
  klay_model_free(model);
  model = nullptr;
}

/* ----------------------------------------------------------------------
   one step: staged graphs of owned + ghost atoms -> model -> energy, forces, virial
------------------------------------------------------------------------- */

void PairKLay::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  check_requested_outputs();

  const double time_start = MPI_Wtime();
  if (time_first_compute < 0.0) time_first_compute = time_start;

  build_model_inputs();
  time_graph += MPI_Wtime() - time_start;
  run_model();

  tally_energy();
  tally_forces();
  tally_virial();
  num_computes++;
}

/* ----------------------------------------------------------------------
   per-atom energies and virials depend on the model only: every rank gets the same answer
   from the runtime, so a refusal stops all ranks alike
------------------------------------------------------------------------- */

void PairKLay::check_requested_outputs()
{
  const int outputs = (eflag_atom ? KLAY_OUTPUT_PER_ATOM_ENERGY : 0) |
      (vflag_atom ? KLAY_OUTPUT_PER_ATOM_VIRIAL : 0);
  char message[KLAY_ERROR_SIZE];
  if (outputs && klay_model_check_outputs(model, outputs, message, sizeof(message)) != 0)
    error->all(FLERR, "Pair style klay: {}", message);
}

/* ----------------------------------------------------------------------
   S_0 = the owned atoms of this style's list, staged graphs out to D stages,
   coordinates and species codes of the atoms the graphs reach
------------------------------------------------------------------------- */

void PairKLay::build_model_inputs()
{
  const int nall = atom->nlocal + atom->nghost;
  klay_neighbor_list neighbors;
  neighbors.n_owned = list->inum;
  neighbors.owned = list->ilist;
  neighbors.n_atoms = nall;
  neighbors.coords = nall > 0 ? atom->x[0] : nullptr;    // LAMMPS stores x contiguously
  neighbors.numneigh = list->numneigh;
  neighbors.firstneigh = list->firstneigh;
  neighbors.neighbor_mask = NEIGHMASK;
  char message[KLAY_ERROR_SIZE];
  if (klay_build_staged_graph(&neighbors, cutoff, num_stages, &graph, message, sizeof(message)))
    error->one(FLERR, "Pair style klay cannot build the staged graphs: {}", message);

  const int n = (int) graph.n_atoms;
  coords.resize(3 * (std::size_t) n);
  species.resize(n);
  double **x = atom->x;
  const int *type = atom->type;
  for (int m = 0; m < n; m++) {
    const int i = (int) graph.atoms[m];
    coords[3 * m + 0] = x[i][0];
    coords[3 * m + 1] = x[i][1];
    coords[3 * m + 2] = x[i][2];
    species[m] = type_code[type[i]];
  }
}

/* ----------------------------------------------------------------------
   forward + backward: energy of the owned atoms and -dE/dx of every model atom
------------------------------------------------------------------------- */

void PairKLay::run_model()
{
  const int n = (int) graph.n_atoms;
  forces.assign(3 * (std::size_t) n, 0.0);
  atom_energy.assign(eflag_atom ? n : 0, 0.0);
  atom_virial.assign(vflag_atom ? 6 * (std::size_t) n : 0, 0.0);
  model_energy = 0.0;
  std::fill(model_virial, model_virial + 6, 0.0);

  // A rank without owned atoms of this style contributes nothing; the model is not asked to
  // evaluate an empty structure.
  if (list->inum == 0) return;

  klay_atoms atoms;
  atoms.n_atoms = n;
  atoms.n_owned = list->inum;
  atoms.coords = coords.data();
  atoms.species = species.data();
  atoms.n_edges = graph.n_edges;
  atoms.edge_pairs = graph.edge_pairs;
  atoms.n_stage_graphs = graph.n_stage_graphs;
  atoms.stage_edges = graph.stage_edges;
  if (feed_largest_graph) {
    largest_graph_edges.assign(graph.n_stage_graphs, graph.n_edges);
    atoms.stage_edges = largest_graph_edges.data();
  }

  klay_results results = {};
  results.per_atom_energy = eflag_atom ? atom_energy.data() : nullptr;
  results.forces = forces.data();
  results.per_atom_virial = vflag_atom ? atom_virial.data() : nullptr;

  char message[KLAY_ERROR_SIZE];
  if (klay_model_compute(model, &atoms, &results, message, sizeof(message)) != 0)
    error->one(FLERR, "Pair style klay: model evaluation failed on {} atoms ({} owned): {}", n,
               list->inum, message);
  model_energy = results.energy;
  std::copy(results.virial, results.virial + 6, model_virial);
  time_forward += results.forward_seconds;
  time_backward += results.backward_seconds;

  // One sum catches any NaN or Inf among the energy and forces.
  double sum = model_energy;
  for (double value : forces) sum += value;
  if (!std::isfinite(sum)) stop_on_non_finite_result();
}

/* ----------------------------------------------------------------------
   a NaN or Inf energy or force ends the run on this rank, naming the owned atoms concerned and
   the distance to their closest neighbour (overlapping atoms are the usual cause)
------------------------------------------------------------------------- */

void PairKLay::stop_on_non_finite_result()
{
  constexpr int listed_atoms = 10;
  double **x = atom->x;
  std::string atoms;
  int num_bad = 0;
  for (int m = 0; m < list->inum; m++) {
    if (std::isfinite(forces[3 * m]) && std::isfinite(forces[3 * m + 1]) &&
        std::isfinite(forces[3 * m + 2]))
      continue;
    if (++num_bad > listed_atoms) continue;
    const int i = (int) graph.atoms[m];
    double closest_squared = -1.0;
    for (int k = 0; k < list->numneigh[i]; k++) {
      const int j = list->firstneigh[i][k] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      const double r_squared = dx * dx + dy * dy + dz * dz;
      if (closest_squared < 0.0 || r_squared < closest_squared) closest_squared = r_squared;
    }
    atoms += atoms.empty() ? " " : ", ";
    atoms += closest_squared < 0.0
        ? fmt::format("atom {} (no neighbour in the list)", atom->tag[i])
        : fmt::format("atom {} (closest neighbour at {:.6g} A)", atom->tag[i],
                      std::sqrt(closest_squared));
  }
  if (num_bad > listed_atoms) atoms += fmt::format(" and {} more", num_bad - listed_atoms);
  error->one(FLERR,
             "Pair style klay: the model gives a non-finite result at step {}: energy {} on this "
             "rank, non-finite forces on {} owned atom(s){}",
             update->ntimestep, model_energy, num_bad, num_bad ? ":" + atoms : std::string());
}

/* ---------------------------------------------------------------------- */

void PairKLay::tally_energy()
{
  if (eflag_global) eng_vdwl += model_energy;
  if (eflag_atom)
    for (int m = 0; m < list->inum; m++) eatom[graph.atoms[m]] += atom_energy[m];
}

/* ----------------------------------------------------------------------
   forces on owned atoms go to atom->f; forces on ghost atoms go to atom->f with newton on
   (LAMMPS sends them home) or home by this style's reverse communication with newton off
------------------------------------------------------------------------- */

void PairKLay::tally_forces()
{
  double **f = atom->f;
  const int n = (int) graph.n_atoms;
  const int num_owned = list->inum;
  const int num_tallied = force->newton_pair ? n : num_owned;

  for (int m = 0; m < num_tallied; m++) {
    const int i = (int) graph.atoms[m];
    for (int c = 0; c < 3; c++) f[i][c] += forces[3 * m + c];
    if (vflag_atom)
      for (int c = 0; c < 6; c++) vatom[i][c] += atom_virial[6 * m + c];
  }
  if (!force->newton_pair) send_ghost_values_home();
}

/* ----------------------------------------------------------------------
   newton off: LAMMPS neither sends forces on ghost atoms home nor, in compute stress/atom, their
   per-atom virials, so this style does both by its own reverse communication
------------------------------------------------------------------------- */

void PairKLay::send_ghost_values_home()
{
  const int n = (int) graph.n_atoms;
  const int nlocal = atom->nlocal;
  reverse_stride = vflag_atom ? 9 : 3;
  ghost_values.assign(reverse_stride * (std::size_t) (nlocal + atom->nghost), 0.0);
  for (int m = list->inum; m < n; m++) {
    double *values = &ghost_values[reverse_stride * graph.atoms[m]];
    for (int c = 0; c < 3; c++) values[c] = forces[3 * m + c];
    if (vflag_atom)
      for (int c = 0; c < 6; c++) values[3 + c] = atom_virial[6 * m + c];
  }
#ifdef KLAY_LAMMPS_HAS_OVERLOADED_REVERSE_COMM
  comm->reverse_comm(this);
#else
  comm->reverse_comm_pair(this);
#endif
  double **f = atom->f;
  for (int i = 0; i < nlocal; i++) {
    const double *values = &ghost_values[reverse_stride * (std::size_t) i];
    for (int c = 0; c < 3; c++) f[i][c] += values[c];
    if (vflag_atom)
      for (int c = 0; c < 6; c++) vatom[i][c] += values[3 + c];
  }
}

/* ----------------------------------------------------------------------
   the runtime's virial over this rank's model atoms (owned and ghost images) is this rank's
   exact share of the global virial (klay.h)
------------------------------------------------------------------------- */

void PairKLay::tally_virial()
{
  if (vflag_global)
    for (int k = 0; k < 6; k++) virial[k] += model_virial[k];
}

/* ---------------------------------------------------------------------- */

int PairKLay::pack_reverse_comm(int n, int first, double *buf)
{
  int k = 0;
  for (int i = first; i < first + n; i++)
    for (int c = 0; c < reverse_stride; c++) buf[k++] = ghost_values[reverse_stride * i + c];
  return k;
}

void PairKLay::unpack_reverse_comm(int n, int *list, double *buf)
{
  // A receiving atom may itself be a ghost that sends on in a later swap (ghost shells deeper
  // than one subdomain), so values accumulate in ghost_values, not in atom->f.
  int k = 0;
  for (int i = 0; i < n; i++)
    for (int c = 0; c < reverse_stride; c++) ghost_values[reverse_stride * list[i] + c] += buf[k++];
}

/* ---------------------------------------------------------------------- */

void PairKLay::allocate()
{
  allocated = 1;
  const int np1 = atom->ntypes + 1;
  memory->create(setflag, np1, np1, "pair:setflag");
  memory->create(cutsq, np1, np1, "pair:cutsq");
  map = new int[np1];
}

/* ----------------------------------------------------------------------
   pair_style klay [dtype float64|float32] [threads N] [graphs staged|largest]
------------------------------------------------------------------------- */

void PairKLay::settings(int narg, char **arg)
{
  // LAMMPS keeps this object when pair_style klay is issued again, but the settings take effect
  // when pair_coeff loads the model: the loaded model goes, and a run without a new pair_coeff
  // stops with "All pair coeffs are not set" instead of running the old settings.
  if (allocated) {
    free_model();
    for (int i = 1; i <= atom->ntypes; i++)
      for (int j = i; j <= atom->ntypes; j++) setflag[i][j] = 0;
  }
  use_float32 = 0;
  num_threads = 0;
  threads_source = "threads keyword";
  feed_largest_graph = 0;
  int iarg = 0;
  while (iarg < narg) {
    if (strcmp(arg[iarg], "dtype") == 0) {
      require_value(error, iarg, narg, "dtype");
      if (strcmp(arg[iarg + 1], "float64") == 0)
        use_float32 = 0;
      else if (strcmp(arg[iarg + 1], "float32") == 0)
        use_float32 = 1;
      else
        error->all(FLERR, "Pair style klay dtype must be float64 or float32, not {}",
                   arg[iarg + 1]);
      iarg += 2;
    } else if (strcmp(arg[iarg], "threads") == 0) {
      require_value(error, iarg, narg, "threads");
      num_threads = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
      if (num_threads < 1)
        error->all(FLERR, "Pair style klay threads must be at least 1, not {}", num_threads);
      iarg += 2;
    } else if (strcmp(arg[iarg], "graphs") == 0) {
      require_value(error, iarg, narg, "graphs");
      if (strcmp(arg[iarg + 1], "staged") == 0)
        feed_largest_graph = 0;
      else if (strcmp(arg[iarg + 1], "largest") == 0)
        feed_largest_graph = 1;
      else
        error->all(FLERR, "Pair style klay graphs must be staged or largest, not {}",
                   arg[iarg + 1]);
      iarg += 2;
    } else
      error->all(FLERR,
                 "Unknown pair style klay keyword: {} (expected dtype, threads or graphs)",
                 arg[iarg]);
  }
}

/* ----------------------------------------------------------------------
   Without the threads keyword: OMP_NUM_THREADS (its first number, as OpenMP reads a list), else
   one thread, as LAMMPS's own OpenMP styles do. libtorch's default, every CPU the rank may run on,
   would give each rank of `mpirun -np N` on N cores all N of them.
------------------------------------------------------------------------- */

int PairKLay::threads_from_environment()
{
  const char *value = getenv("OMP_NUM_THREADS");
  if (!value || !*value) {
    threads_source = "OMP_NUM_THREADS unset";
    return 1;
  }
  char *end = nullptr;
  const long threads = strtol(value, &end, 10);
  if (end == value || (*end && *end != ',') || threads < 1 || threads > 4096) {
    if (comm->me == 0)
      error->warning(FLERR, "Pair style klay: OMP_NUM_THREADS={} is not a thread count; using 1 "
                            "thread per rank", value);
    threads_source = "OMP_NUM_THREADS not a number";
    return 1;
  }
  threads_source = "OMP_NUM_THREADS";
  return static_cast<int>(threads);
}

/* ----------------------------------------------------------------------
   Threads beyond the CPUs a rank may run on share them and run slower than one thread. Open
   MPI's mpirun binds each rank to one core when it starts two ranks or fewer, so
   `mpirun -np 1 lmp` with `threads 2` gets one core unless told otherwise.
------------------------------------------------------------------------- */

void PairKLay::warn_if_threads_share_cpus()
{
#ifdef __linux__
  if (num_threads <= 1) return;
  cpu_set_t allowed;
  int cpus = num_threads;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) cpus = CPU_COUNT(&allowed);
  int fewest = cpus;
  MPI_Allreduce(&cpus, &fewest, 1, MPI_INT, MPI_MIN, world);
  if (comm->me == 0 && fewest < num_threads) {
    const std::string fewer = strcmp(threads_source, "OMP_NUM_THREADS") == 0
        ? fmt::format("set OMP_NUM_THREADS={}", fewest)
        : fmt::format("use threads {}", fewest);
    error->warning(FLERR,
                   "Pair style klay: {} threads per rank ({}), but a rank may run on only {} CPU(s) "
                   "(its CPU affinity), so its threads share them and run slower than fewer threads; "
                   "with Open MPI start LAMMPS with `mpirun --bind-to none` or "
                   "`mpirun --map-by slot:PE={}`, or {}",
                   num_threads, threads_source, fewest, num_threads, fewer);
  }
#endif
}

/* ----------------------------------------------------------------------
   pair_coeff * * MODEL.yaml WEIGHTS El1 El2 ...  (NULL for types left to other styles)
------------------------------------------------------------------------- */

void PairKLay::coeff(int narg, char **arg)
{
  if (narg < 5)
    error->all(FLERR, "Pair coeff for klay needs: * * MODEL.yaml WEIGHTS followed by one element "
                      "(or NULL) per atom type");
  if (!allocated) allocate();

  map_element2type(narg - 4, arg + 4);

  free_model();
  if (num_threads == 0) num_threads = threads_from_environment();
  klay_model_options options;
  options.dtype = use_float32 ? KLAY_FLOAT32 : KLAY_FLOAT64;
  options.num_threads = num_threads;
  char message[KLAY_ERROR_SIZE];
  model = klay_model_load(arg[2], arg[3], &options, message, sizeof(message));
  if (!model)
    error->all(FLERR, "Pair style klay cannot load model {} with weights {}: {}", arg[2], arg[3],
               message);
  // Every step frees and allocates the same tensors again; keeping the freed memory mapped saves
  // re-faulting it (a quarter of a 512-atom step of the silicon example).
  klay_keep_freed_memory();
  warn_if_threads_share_cpus();

  const char *model_units = klay_model_units(model);
  if (model_units && strcmp(model_units, "metal") != 0)
    error->all(FLERR, "KLay model {} declares units {}; pair style klay runs metal units only",
               arg[2], model_units);

  cutoff = klay_model_cutoff(model);
  num_stages = klay_model_num_stages(model);
  if (!(cutoff > 0.0) || num_stages < 1)
    error->all(FLERR, "KLay model {} has cutoff {} and {} message-passing stages: a pair style "
                      "needs a positive cutoff and at least one stage", arg[2], cutoff, num_stages);

  // Elements are asked for in order of first appearance on this line: a model without a
  // species list numbers its species in that order (docs/design.md#species).
  std::vector<int64_t> element_code(nelements);
  for (int e = 0; e < nelements; e++)
    if (klay_model_element_code(model, elements[e], &element_code[e], message,
                                sizeof(message)) != 0)
      error->all(FLERR, "Pair coeff for klay: element {}: {}", elements[e], message);

  type_code.assign(atom->ntypes + 1, -1);
  for (int itype = 1; itype <= atom->ntypes; itype++)
    if (map[itype] >= 0) type_code[itype] = element_code[map[itype]];

  if (comm->me == 0) {
    std::string description(klay_model_describe(model, nullptr, 0) + 1, '\0');
    klay_model_describe(model, &description[0], description.size());
    description.resize(description.size() - 1);
    std::string mesg = fmt::format("KLay model {} with weights {} ({}):\n", arg[2], arg[3],
                                   use_float32 ? "float32" : "float64");
    mesg += fmt::format("  Pair style klay runs {} thread(s) per rank ({})\n", num_threads,
                        threads_source);
    for (const auto &line : utils::split_lines(description))
      if (!line.empty()) mesg += "  " + line + "\n";
    for (int itype = 1; itype <= atom->ntypes; itype++) {
      if (map[itype] < 0)
        mesg += fmt::format("  atom type {}: NULL (not handled by klay)\n", itype);
      else
        mesg += fmt::format("  atom type {}: {} -> model code {}\n", itype, elements[map[itype]],
                            type_code[itype]);
    }
    utils::logmesg(lmp, mesg);
  }
}

/* ----------------------------------------------------------------------
   full neighbor list of owned and ghost atoms; ghost atoms out to D * r_cut + skin
------------------------------------------------------------------------- */

void PairKLay::init_style()
{
  if (!model) error->all(FLERR, "Pair style klay requires pair_coeff * * MODEL.yaml WEIGHTS ...");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "Pair style klay requires metal units (eV, Angstrom), not {}",
               update->unit_style);
  // A many-body model has no pair energy at the cutoff to subtract.
  if (offset_flag) error->all(FLERR, "Pair style klay does not support pair_modify shift yes");

#ifdef KLAY_LAMMPS_HAS_ADD_REQUEST
  neighbor->add_request(this, NeighConst::REQ_FULL | NeighConst::REQ_GHOST);
#else
  // request() may grow neighbor->requests, so the array is read after it
  const int request_index = neighbor->request(this, instance_me);
  NeighRequest *request = neighbor->requests[request_index];
  request->half = 0;
  request->full = 1;
  request->ghost = 1;
#endif

  // An atom D-1 stages away from an owned atom needs its neighbors within r_cut, and atoms move
  // up to skin/2 between neighbor list builds.
  const double ghost_cutoff = num_stages * cutoff + neighbor->skin;
  const double user_cutoff = comm->cutghostuser;
  if (user_cutoff > 0.0 && user_cutoff != ghost_cutoff_set && user_cutoff < ghost_cutoff)
    error->all(FLERR,
               "Pair style klay needs ghost atoms out to {} A ({} stages x cutoff {} A + skin {} "
               "A) but comm_modify cutoff is {} A: raise it or remove it",
               ghost_cutoff, num_stages, cutoff, neighbor->skin, user_cutoff);
  if (user_cutoff < ghost_cutoff) {
    comm->cutghostuser = ghost_cutoff;
    ghost_cutoff_set = ghost_cutoff;
    if (comm->me == 0)
      utils::logmesg(lmp, "Pair style klay sets the communication cutoff to {} A\n", ghost_cutoff);
  }
}

/* ---------------------------------------------------------------------- */

double PairKLay::init_one(int, int)
{
  return cutoff;
}

#ifdef KLAY_LAMMPS_HAS_PAIR_FINISH
/* ----------------------------------------------------------------------
   timing breakdown of the run averaged over ranks, and the ranks' peak memory (resident set)
------------------------------------------------------------------------- */

void PairKLay::finish()
{
  const double time_total =
      time_first_compute < 0.0 ? 0.0 : MPI_Wtime() - time_first_compute;
  const double mine[4] = {time_graph, time_forward, time_backward, time_total};
  double sum[4];
  MPI_Allreduce(mine, sum, 4, MPI_DOUBLE, MPI_SUM, world);
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  const double peak_mib = usage.ru_maxrss / 1024.0;    // Linux reports KiB
  double peak_max, peak_min;
  MPI_Allreduce(&peak_mib, &peak_max, 1, MPI_DOUBLE, MPI_MAX, world);
  MPI_Allreduce(&peak_mib, &peak_min, 1, MPI_DOUBLE, MPI_MIN, world);
  if (comm->me == 0 && num_computes > 0 && sum[3] > 0.0) {
    double average[4];
    for (int k = 0; k < 4; k++) average[k] = sum[k] / comm->nprocs;
    const double total = average[3];
    const double rest = total - average[0] - average[1] - average[2];
    // Another tool parses these lines: keep the format as it is.
    utils::logmesg(lmp,
                   "\nPair style klay timing ({} force evaluations, average over {} ranks):\n"
                   "  staged graphs        {:10.4f} s {:6.2f}%\n"
                   "  forward              {:10.4f} s {:6.2f}%\n"
                   "  backward             {:10.4f} s {:6.2f}%\n"
                   "  LAMMPS (rest)        {:10.4f} s {:6.2f}%\n"
                   "  peak memory per rank {:10.1f} MiB max, {:.1f} MiB min\n",
                   num_computes, comm->nprocs, average[0], 100.0 * average[0] / total, average[1],
                   100.0 * average[1] / total, average[2], 100.0 * average[2] / total, rest,
                   100.0 * rest / total, peak_max, peak_min);
  }
  time_graph = time_forward = time_backward = 0.0;
  time_first_compute = -1.0;
  num_computes = 0;
}
#endif

/* ---------------------------------------------------------------------- */

double PairKLay::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += (double) coords.capacity() * sizeof(double);
  bytes += (double) forces.capacity() * sizeof(double);
  bytes += (double) atom_energy.capacity() * sizeof(double);
  bytes += (double) ghost_values.capacity() * sizeof(double);
  bytes += (double) atom_virial.capacity() * sizeof(double);
  bytes += (double) species.capacity() * sizeof(int64_t);
  bytes += (double) (2 * graph.n_edges + 2 * graph.n_atoms) * sizeof(int64_t);
  return bytes;
}
