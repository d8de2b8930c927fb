// The virial of a model's energy, globally and split onto atoms, from the gradients autograd gives.
//
// Conventions (those of the `shifts` input, md_model.hpp): edge e = (i, j) with shift s_e joins
// atom i to the image of atom j at x_j + s_e, so its edge vector is u_e = x_j + s_e - x_i; in MD
// every s_e is zero (ghost atoms are explicit images). Every layer that reads shifts uses this
// sense (SphericalHarmonicEdgeAttrs: x_j - x_i + s; EGCL: x_i - x_j - s, the same vector negated),
// so there is no sign to guess.
//
// Six components in LAMMPS order xx, yy, zz, xy, xz, yz, component ab = sum of a-coordinate times
// b-force: W = -dE/d(strain) for a homogeneous strain of every coordinate and shift.
#pragma once
#include <array>

#include <ATen/core/Tensor.h>

namespace klay::md {

// W = sum_a x_a (x) F_a - sum_e s_e (x) g_e over all atoms given (owned and ghost images) and all
// edges. coords, forces: [n,3] float64; shifts, shift_gradients (g_e = dE/ds_e): [E,3] float64, or
// undefined when all shifts are zero. Exact when E depends on relative positions only.
std::array<double, 6> global_virial(const at::Tensor& coords, const at::Tensor& forces, const at::Tensor& shifts,
                                    const at::Tensor& shift_gradients);

// [n,6] float64: each edge's term -u_e (x) g_e split half onto i, half onto j, as LAMMPS splits a
// pair force's virial; the rows sum to global_virial. edge_pairs: [E,2] int64; shifts: [E,3] or
// undefined for zeros. The energy must depend on positions only through the edge vectors: the
// forces implied by the edge gradients (F_i += g_e, F_j -= g_e) must equal `forces` to
// `tolerance` times the largest force, otherwise klay::Error says so.
at::Tensor per_atom_virial(const at::Tensor& coords, const at::Tensor& edge_pairs, const at::Tensor& shifts,
                           const at::Tensor& forces, const at::Tensor& shift_gradients, double tolerance);

}  // namespace klay::md
