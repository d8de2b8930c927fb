// A KLay model seen from molecular dynamics (docs/design.md#md-conventions, #staged-graphs): which model
// input gets what, the cutoff and number of message-passing stages, which output is the energy and
// how to take the owned atoms' part of it, and the evaluation of energy, per-atom energy and
// forces (−dE_owned/dx by autograd) on owned + ghost atoms with staged edge lists.
//
// Input names (the OpenKIM TorchML driver's, so its models run unchanged):
//   species | atomic_numbers | Z     per atom int64: species index or atomic number (see below)
//   coords | positions | pos         per atom [N,3] float, ghosts as explicit images (autograd leaf)
//   edge_index0.. | graph_layer_0..  staged graph G_k, [2,E_k] int64
//   edge_index                       the largest staged graph
//   shifts | shift                   [E,3]: S·cell per edge of the largest graph (zeros in MD)
//                                    edge (i, j) joins i to j's image at x_j + shift
//   contributions                    0 owned / 1 ghost        contributing   1 owned / 0 ghost
//   batch                            0 owned / 1 ghost
// Any other input name is an error at load unless the `md:` section maps it to one of these.
//
// The optional top-level `md:` section (ignored by Python KLay):
//   md:
//     cutoff: 4.0               # r_cut of one stage; default: largest r_max of BesselBasis,
//                               # PolynomialCutoff and RadialBasisEdgeEncoding layers
//     species: [Si, O]          # species index order; every species input then gets indices
//     energy: total_energy      # the model output that is the energy
//     inputs: {x: coords}       # model input name -> one of the names above
//     units: metal              # reported to the caller (LAMMPS checks it)
// Species codes: with a declared list, the index in it. Without one, `atomic_numbers`/`Z` get the
// atomic number and `species` gets indices in the order elements are first asked for (the
// pair_coeff order); describe() says which.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/model.hpp"

namespace at {
class Tensor;
}

namespace klay::md {

enum class InputRole { Species, Coords, StageGraph, LargestGraph, Shifts, Contributions, Contributing, Batch };

struct InputBinding {
  InputRole role;
  int stage = 0;  // StageGraph: k of G_k
};

// Atoms [0, n_owned) are owned, the rest ghost images with explicit coordinates.
struct AtomsView {
  int64_t n_atoms = 0;
  int64_t n_owned = 0;
  const double* coords = nullptr;        // [n_atoms][3]
  const int64_t* species = nullptr;      // [n_atoms] codes from element_code(); may be NULL
                                         // when the model takes no species input
  int64_t n_edges = 0;
  const int64_t* edge_pairs = nullptr;   // [n_edges][2]
  int n_stage_graphs = 0;
  const int64_t* stage_edges = nullptr;  // [n_stage_graphs], G_k = first stage_edges[k] pairs
  const double* shifts = nullptr;        // [n_edges][3] or NULL for zeros
};

struct ResultsView {
  double energy = 0;
  double* per_atom_energy = nullptr;  // [n_atoms] or NULL
  double* forces = nullptr;           // [n_atoms][3] or NULL
  double* edge_gradients = nullptr;   // [n_edges][3] or NULL: dE/dshift
  double* per_atom_virial = nullptr;  // [n_atoms][6] or NULL: models with shifts only (md/virial.hpp)
  // Out, whenever the backward pass runs (forces, edge gradients or per-atom virial asked for):
  // the virial of the owned atoms' energy over all atoms given (md/virial.hpp), LAMMPS order.
  double virial[6] = {0, 0, 0, 0, 0, 0};
  // Out: false when per-atom energies were asked for but the model gives only a total (possible
  // only without ghost atoms); per_atom_energy is then left at zero.
  bool per_atom_energy_filled = false;
  // Out: wall time of the forward pass (model outputs) and of the backward pass (autograd of the
  // energy), for the callers' timing breakdowns.
  double forward_seconds = 0;
  double backward_seconds = 0;
};

class MdModel {
 public:
  // single_precision: float32 weights and activations (float64 is the reference). Throws
  // klay::Error with the reason a model cannot be used for MD (unknown input name, no coordinates,
  // graphs wired to the wrong stages, ...).
  static std::unique_ptr<MdModel> load(const std::string& yaml_path, const std::string& weights_path,
                                       bool single_precision = false);
  explicit MdModel(std::unique_ptr<Model> model);
  ~MdModel();

  const Model& model() const { return *model_; }
  Model& model() { return *model_; }
  double cutoff() const { return cutoff_; }
  int num_stages() const { return num_stages_; }          // D: ghost shell D·cutoff
  int num_graph_inputs() const;                            // staged inputs, or 1 for edge_index
  bool takes_shifts() const;
  bool takes_species() const;
  bool has_per_atom_energy() const { return per_atom_request_.has_value() || energy_kind_ == EnergyKind::Direct; }
  const std::string& units() const { return units_; }     // "" when undeclared
  // The md: species list in species-index order; empty when the model declares none (the elements a
  // species-index model numbered in the order asked for are not a declaration).
  const std::vector<std::string>& declared_species() const;

  // The number fed for an element symbol; see the header comment. Throws for an unknown element.
  int64_t element_code(const std::string& element);
  // What was inferred (cutoff, stages, energy output, species mapping), one fact per line.
  std::string describe() const;

  // Throws klay::Error with the reason when the model cannot give an output asked for. The answer
  // depends on the model only, never on the atoms; compute() makes the same check first.
  void check_outputs(bool per_atom_energy, bool edge_gradients, bool per_atom_virial) const;

  // Throws klay::Error for inconsistent atoms/graphs, an energy that cannot be split, or an
  // output check_outputs refuses. With spatial blocks (below) in use, the owned atoms are
  // evaluated block by block, the blocks concurrently on libtorch's threads.
  void compute(const AtomsView& atoms, ResultsView& results) const;

  // Spatial blocks (md/spatial_blocks.hpp): compute() splits the owned atoms into blocks of at
  // most `max_owned_atoms` (0 = no cap, no blocks), as many per thread (spatial_block_count), and
  // runs one block per thread, each single-threaded inside, so that a large system's per-edge
  // tensors stay small and the threads share little.
  // One block is the plain evaluation.
  // Used for models with graph inputs whose energy can be split over atoms (an indexed sum, or
  // per-atom energies: known from ghost atoms being present or from an earlier evaluation). The
  // numbers are those of one block up to summation order. On by default with default_block_atoms();
  // KLAY_SPATIAL_BLOCKS=0 turns blocks off and KLAY_BLOCK_ATOMS=N sets the cap.
  // The cap bounds a block's memory: kDefaultBlockAtoms in float64, as many atoms per byte of
  // their per-edge tensors in a narrower dtype (8,192 in float32, the same memory).
  static constexpr int64_t kDefaultBlockAtoms = 4096;
  int64_t default_block_atoms() const;
  void set_spatial_blocks(bool enabled, int64_t max_owned_atoms);
  bool spatial_blocks() const { return blocks_enabled_; }
  int64_t block_atoms() const { return block_atoms_; }
  // Blocks evaluated by compute() calls that used more than one, since loading (tests).
  int64_t blocks_evaluated() const { return blocks_evaluated_; }

  // Training (src/fit): the owned atoms' energies, [n_owned] in the model's dtype, whose autograd
  // graph reaches `coords` (float64 [n_atoms,3], the caller's leaf; atoms.coords is not read) and
  // the parameters, fed exactly as compute() feeds the model; their sum is compute()'s energy.
  // Shifts are constants. Throws when the model gives no per-atom energies.
  at::Tensor owned_atom_energies(const AtomsView& atoms, const at::Tensor& coords) const;

 private:
  enum class EnergyKind {
    IndexedSum,  // AtomwiseSumIndex/KIMAPISumIndex over an owned/ghost index input
    Direct       // per-atom tensor, or one number (refused when ghosts are present)
  };

  void bind_inputs(const std::map<std::string, std::string>& mapping);
  void infer_cutoff(std::optional<double> declared);
  void check_stage_wiring();
  void find_energy(const std::string& declared);
  struct Evaluation;
  // The model on `atoms` (checked): energy, owned per-atom energies, and when `gradients` the
  // forces on all atoms and (with `shift_gradients`) dE/dshift per edge.
  Evaluation evaluate(const AtomsView& atoms, bool per_atom_energy, bool gradients, bool shift_gradients) const;
  // The same summed over spatial blocks, scattered to the caller's atoms and edges.
  Evaluation evaluate_in_blocks(const AtomsView& atoms, int64_t n_blocks, bool per_atom_energy, bool gradients,
                                bool shift_gradients) const;
  // How many spatial blocks compute() uses for `atoms` (1: no blocks).
  int64_t block_count(const AtomsView& atoms) const;
  // [n_edges,3] float64 constants (zeros without atoms.shifts); undefined for a model without shifts.
  at::Tensor edge_shifts(const AtomsView& atoms) const;
  // The model's inputs in plan order; `shifts` is used only when the model takes them.
  std::vector<at::Tensor> model_inputs(const AtomsView& atoms, const at::Tensor& coords, const at::Tensor& shifts) const;

  std::unique_ptr<Model> model_;
  std::vector<InputBinding> bindings_;
  double cutoff_ = 0;
  std::string cutoff_origin_;
  int num_stages_ = 0;
  int num_staged_inputs_ = 0;
  bool species_are_indices_ = false;
  bool species_declared_ = false;
  std::vector<std::string> species_;  // index order (declared, or first asked for)
  std::string units_;
  int energy_output_ = -1;
  EnergyKind energy_kind_ = EnergyKind::Direct;
  int64_t owned_row_ = 0;      // IndexedSum: row of the owned atoms (AtomwiseSumIndex)
  bool row_selected_ = false;  // IndexedSum: KIMAPISumIndex already returned that row
  std::string energy_layer_;   // for messages
  std::optional<Model::ValueRef> per_atom_request_;  // IndexedSum: the per-atom energies feeding the sum
  std::string per_atom_origin_;
  bool blocks_enabled_ = true;
  int64_t block_atoms_ = kDefaultBlockAtoms;
  mutable std::atomic<int64_t> blocks_evaluated_{0};
  mutable std::atomic<bool> energy_seen_per_atom_{false};  // Direct: an evaluation gave one energy per atom
};

}  // namespace klay::md
