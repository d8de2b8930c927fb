/* -*- c++ -*- ----------------------------------------------------------
   LAMMPS - Large-scale Atomic/Molecular Massively Parallel Simulator
   https://www.lammps.org/, Sandia National Laboratories
   LAMMPS development team: developers@lammps.org

   This software is distributed under the GNU General Public License.
   See the README file in the top-level LAMMPS directory.
------------------------------------------------------------------------- */

#ifdef PAIR_CLASS
// clang-format off
PairStyle(klay,PairKLay);
// clang-format on
#else

#ifndef LMP_PAIR_KLAY_H
#define LMP_PAIR_KLAY_H

#include "pair.h"

#include "klay.h"

#include <cstdint>
#include <vector>

namespace LAMMPS_NS {

class PairKLay : public Pair {
 public:
  PairKLay(class LAMMPS *);
  ~PairKLay() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
#ifdef KLAY_LAMMPS_HAS_PAIR_FINISH
  void finish() override;
#endif
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;
  double memory_usage() override;

 protected:
  klay_model *model;
  int use_float32;
  int num_threads;                 // 0 until pair_coeff: the threads keyword, else the environment
  const char *threads_source;      // where num_threads came from, for the log
  int feed_largest_graph;          // graphs largest: every staged input gets G_{D-1} (benchmarks)
  double cutoff;                   // r_cut of one message-passing stage
  int num_stages;                  // D: ghost atoms are needed out to D * r_cut
  double ghost_cutoff_set;         // what init_style() wrote into comm->cutghostuser, 0 if nothing
  std::vector<int64_t> type_code;  // per LAMMPS type: model species code, -1 for NULL

  klay_staged_graph graph;              // this step's model atoms and staged edge lists
  std::vector<double> coords;           // [n][3] model atoms
  std::vector<int64_t> species;         // [n]
  std::vector<double> forces;           // [n][3] -dE/dx from the model
  std::vector<double> atom_energy;      // [n] when per-atom energy is requested
  std::vector<int64_t> largest_graph_edges;  // graphs largest: [D] copies of n_edges
  std::vector<double> atom_virial;      // [n][6] when the per-atom virial is requested
  int reverse_stride;                   // values per atom sent home: 3 forces (+ 6 virial)
  std::vector<double> ghost_values;     // [nall][reverse_stride] newton off: to send home
  double model_energy;                  // energy of the owned atoms, this step
  double model_virial[6];               // this rank's share of the virial, this step

  // seconds spent since the last finish(), for the timing breakdown (where LAMMPS calls finish())
  double time_graph, time_forward, time_backward, time_first_compute;
  long num_computes;

  void allocate();
  void build_model_inputs();
  void run_model();
  void stop_on_non_finite_result();
  void tally_energy();
  void tally_forces();
  void tally_virial();
  void check_requested_outputs();
  void send_ghost_values_home();
  void free_model();
  void warn_if_threads_share_cpus();
  int threads_from_environment();
};

}    // namespace LAMMPS_NS

#endif
#endif
