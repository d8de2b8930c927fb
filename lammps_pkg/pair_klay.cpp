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
------------------------------------------------------------------------- */

#include "pair_klay.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

#include <cstring>
#include <string>

using namespace LAMMPS_NS;

namespace {
// klay.h writes a failure's reason into a caller buffer; YAML errors with file:line:col and the
// weight checks that name every offending key need room.
constexpr std::size_t KLAY_ERROR_SIZE = 8192;

bool is_coordinates_input(const char *name)
{
  return strcmp(name, "coords") == 0 || strcmp(name, "positions") == 0 || strcmp(name, "pos") == 0;
}
}    // namespace

/* ---------------------------------------------------------------------- */

PairKLay::PairKLay(LAMMPS *lmp) :
    Pair(lmp), model(nullptr), use_float32(0), num_threads(0), cutoff(0.0), num_stages(0),
    ghost_cutoff_set(0.0), model_energy(0.0), time_graph(0.0), time_model(0.0), time_first_compute(-1.0),
    num_computes(0)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  centroidstressflag = CENTROID_NOTAVAIL;

  // The global virial is summed from the model's own forces on owned and ghost atoms
  // (tally_virial): with newton off the ghost forces never enter atom->f, so an fdotr over
  // atom->f would miss them. pair_style hybrid then lets every sub-style tally its own.
  no_virial_fdotr_compute = 1;

  // newton off: the forces on ghost atoms go home by this style's own reverse communication
  comm_reverse = 3;

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
  if (eflag_atom && !klay_model_has_per_atom_energy(model))
    error->all(FLERR,
               "Pair style klay cannot compute per-atom energies with this model: its energy "
               "output is a sum whose per-atom terms are not a model output");
  if (vflag_atom)
    error->all(FLERR,
               "Pair style klay cannot compute a per-atom virial: the model gives forces on "
               "atoms, and a per-atom split of its many-body virial is not defined by them");

  const double time_start = platform::walltime();
  if (time_first_compute < 0.0) time_first_compute = time_start;

  build_model_inputs();
  const double time_inputs = platform::walltime();
  run_model();
  const double time_forward_backward = platform::walltime();

  tally_energy();
  tally_forces();
  tally_virial();

  time_graph += time_inputs - time_start;
  time_model += time_forward_backward - time_inputs;
  num_computes++;
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
  model_energy = 0.0;

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

  klay_results results;
  results.energy = 0.0;
  results.per_atom_energy = eflag_atom ? atom_energy.data() : nullptr;
  results.forces = forces.data();
  results.edge_gradients = nullptr;

  char message[KLAY_ERROR_SIZE];
  if (klay_model_compute(model, &atoms, &results, message, sizeof(message)) != 0)
    error->one(FLERR, "Pair style klay: model evaluation failed on {} atoms ({} owned): {}", n,
               list->inum, message);
  model_energy = results.energy;
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

  for (int m = 0; m < num_owned; m++) {
    const int i = (int) graph.atoms[m];
    f[i][0] += forces[3 * m + 0];
    f[i][1] += forces[3 * m + 1];
    f[i][2] += forces[3 * m + 2];
  }

  if (force->newton_pair) {
    for (int m = num_owned; m < n; m++) {
      const int i = (int) graph.atoms[m];
      f[i][0] += forces[3 * m + 0];
      f[i][1] += forces[3 * m + 1];
      f[i][2] += forces[3 * m + 2];
    }
    return;
  }

  const int nlocal = atom->nlocal;
  ghost_forces.assign(3 * (std::size_t) (nlocal + atom->nghost), 0.0);
  for (int m = num_owned; m < n; m++) {
    const int i = (int) graph.atoms[m];
    ghost_forces[3 * i + 0] = forces[3 * m + 0];
    ghost_forces[3 * i + 1] = forces[3 * m + 1];
    ghost_forces[3 * i + 2] = forces[3 * m + 2];
  }
  comm->reverse_comm(this);
  for (int i = 0; i < nlocal; i++) {
    f[i][0] += ghost_forces[3 * i + 0];
    f[i][1] += ghost_forces[3 * i + 1];
    f[i][2] += ghost_forces[3 * i + 2];
  }
}

/* ----------------------------------------------------------------------
   W = sum over the model's atoms (owned and ghost images) of x (x) F: the energy depends on
   relative positions only, so this is this rank's exact share of the virial
------------------------------------------------------------------------- */

void PairKLay::tally_virial()
{
  if (!vflag_global) return;
  const int n = (int) graph.n_atoms;
  double v[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  for (int m = 0; m < n; m++) {
    const double *xm = &coords[3 * m];
    const double *fm = &forces[3 * m];
    v[0] += xm[0] * fm[0];
    v[1] += xm[1] * fm[1];
    v[2] += xm[2] * fm[2];
    v[3] += xm[0] * fm[1];
    v[4] += xm[0] * fm[2];
    v[5] += xm[1] * fm[2];
  }
  for (int k = 0; k < 6; k++) virial[k] += v[k];
}

/* ---------------------------------------------------------------------- */

int PairKLay::pack_reverse_comm(int n, int first, double *buf)
{
  int k = 0;
  for (int i = first; i < first + n; i++) {
    buf[k++] = ghost_forces[3 * i + 0];
    buf[k++] = ghost_forces[3 * i + 1];
    buf[k++] = ghost_forces[3 * i + 2];
  }
  return k;
}

void PairKLay::unpack_reverse_comm(int n, int *list, double *buf)
{
  // A receiving atom may itself be a ghost that sends on in a later swap (ghost shells deeper
  // than one subdomain), so forces accumulate in ghost_forces, not in atom->f.
  int k = 0;
  for (int i = 0; i < n; i++) {
    const int j = list[i];
    ghost_forces[3 * j + 0] += buf[k++];
    ghost_forces[3 * j + 1] += buf[k++];
    ghost_forces[3 * j + 2] += buf[k++];
  }
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
   pair_style klay [dtype float64|float32] [threads N]
------------------------------------------------------------------------- */

void PairKLay::settings(int narg, char **arg)
{
  use_float32 = 0;
  num_threads = 0;
  int iarg = 0;
  while (iarg < narg) {
    if (strcmp(arg[iarg], "dtype") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "pair_style klay dtype", error);
      if (strcmp(arg[iarg + 1], "float64") == 0)
        use_float32 = 0;
      else if (strcmp(arg[iarg + 1], "float32") == 0)
        use_float32 = 1;
      else
        error->all(FLERR, "Pair style klay dtype must be float64 or float32, not {}",
                   arg[iarg + 1]);
      iarg += 2;
    } else if (strcmp(arg[iarg], "threads") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "pair_style klay threads", error);
      num_threads = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
      if (num_threads < 1)
        error->all(FLERR, "Pair style klay threads must be at least 1, not {}", num_threads);
      iarg += 2;
    } else
      error->all(FLERR, "Unknown pair style klay keyword: {} (expected dtype or threads)",
                 arg[iarg]);
  }
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
  klay_model_options options;
  options.dtype = use_float32 ? KLAY_FLOAT32 : KLAY_FLOAT64;
  options.num_threads = num_threads;
  char message[KLAY_ERROR_SIZE];
  model = klay_model_load(arg[2], arg[3], &options, message, sizeof(message));
  if (!model)
    error->all(FLERR, "Pair style klay cannot load model {} with weights {}: {}", arg[2], arg[3],
               message);

  bool has_coordinates = false;
  for (std::size_t k = 0; k < klay_model_num_inputs(model); k++)
    if (is_coordinates_input(klay_model_input_name(model, k))) has_coordinates = true;
  if (!has_coordinates)
    error->all(FLERR,
               "KLay model {} has no coordinates input (coords, positions or pos): its output "
               "does not depend on atom positions, so it cannot be a pair style",
               arg[2]);

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
  // species list numbers its species in that order (design.md §3).
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

  neighbor->add_request(this, NeighConst::REQ_FULL | NeighConst::REQ_GHOST);

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

/* ----------------------------------------------------------------------
   timing breakdown of the run, averaged over ranks
------------------------------------------------------------------------- */

void PairKLay::finish()
{
  const double time_total =
      time_first_compute < 0.0 ? 0.0 : platform::walltime() - time_first_compute;
  const double mine[3] = {time_graph, time_model, time_total};
  double sum[3];
  MPI_Allreduce(mine, sum, 3, MPI_DOUBLE, MPI_SUM, world);
  if (comm->me == 0 && num_computes > 0 && sum[2] > 0.0) {
    const double nprocs = comm->nprocs;
    const double graph_time = sum[0] / nprocs, model_time = sum[1] / nprocs;
    const double total = sum[2] / nprocs;
    const double rest = total - graph_time - model_time;
    utils::logmesg(lmp,
                   "\nPair style klay timing ({} force evaluations, average over {} ranks):\n"
                   "  staged graphs        {:10.4f} s {:6.2f}%\n"
                   "  forward + backward   {:10.4f} s {:6.2f}%\n"
                   "  LAMMPS (rest)        {:10.4f} s {:6.2f}%\n",
                   num_computes, comm->nprocs, graph_time, 100.0 * graph_time / total, model_time,
                   100.0 * model_time / total, rest, 100.0 * rest / total);
  }
  time_graph = time_model = 0.0;
  time_first_compute = -1.0;
  num_computes = 0;
}

/* ---------------------------------------------------------------------- */

double PairKLay::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += (double) coords.capacity() * sizeof(double);
  bytes += (double) forces.capacity() * sizeof(double);
  bytes += (double) atom_energy.capacity() * sizeof(double);
  bytes += (double) ghost_forces.capacity() * sizeof(double);
  bytes += (double) species.capacity() * sizeof(int64_t);
  bytes += (double) (2 * graph.n_edges + 2 * graph.n_atoms) * sizeof(int64_t);
  return bytes;
}
