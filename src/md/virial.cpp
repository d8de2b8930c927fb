#include "md/virial.hpp"

#include <array>
#include <cstdio>
#include <vector>

#include <ATen/ATen.h>

#include "base/error.hpp"

namespace klay::md {

namespace {

// The six components of a symmetric 3x3 tensor in LAMMPS order: xx, yy, zz, xy, xz, yz.
constexpr int kVoigt[6][2] = {{0, 0}, {1, 1}, {2, 2}, {0, 1}, {0, 2}, {1, 2}};

// [..., 3, 3] -> [..., 6] in kVoigt order.
at::Tensor voigt(const at::Tensor& w) {
  std::vector<at::Tensor> components;
  for (const auto& [a, b] : kVoigt) components.push_back(w.select(-2, a).select(-1, b));
  return at::stack(components, -1);
}

// Σ_rows a_r ⊗ b_r ([n,3] each) into w, with `sign`: a loop, where ATen's mm and the Voigt
// gathering cost a dozen operator calls on the step's serial path.
void add_outer_products(const at::Tensor& a, const at::Tensor& b, double sign, double w[3][3]) {
  const at::Tensor ac = a.contiguous(), bc = b.contiguous();
  const double* x = ac.data_ptr<double>();
  const double* y = bc.data_ptr<double>();
  double sum[3][3] = {};
  for (int64_t r = 0; r < ac.size(0); ++r)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) sum[i][j] += x[3 * r + i] * y[3 * r + j];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) w[i][j] += sign * sum[i][j];
}

}  // namespace

std::array<double, 6> global_virial(const at::Tensor& coords, const at::Tensor& forces, const at::Tensor& shifts,
                                    const at::Tensor& shift_gradients) {
  double w[3][3] = {};
  add_outer_products(coords, forces, 1.0, w);
  if (shifts.defined() && shift_gradients.defined()) add_outer_products(shifts, shift_gradients, -1.0, w);
  std::array<double, 6> out;
  for (int k = 0; k < 6; ++k) out[k] = w[kVoigt[k][0]][kVoigt[k][1]];
  return out;
}

at::Tensor per_atom_virial(const at::Tensor& coords, const at::Tensor& edge_pairs, const at::Tensor& shifts,
                           const at::Tensor& forces, const at::Tensor& shift_gradients, double tolerance) {
  const at::Tensor i = edge_pairs.select(1, 0), j = edge_pairs.select(1, 1);
  const at::Tensor implied =
      at::zeros_like(forces).index_add_(0, i, shift_gradients).index_add_(0, j, -shift_gradients);
  const double off = forces.numel() ? (implied - forces).abs().max().item<double>() : 0.0;
  const double scale = forces.numel() ? forces.abs().max().item<double>() : 0.0;
  if (off > tolerance * scale) {
    char amount[32];
    std::snprintf(amount, sizeof amount, "%.3g", off);
    throw Error("cannot compute a per-atom virial with this model: its forces are not the sum of its per-edge "
                "gradients (off by " + std::string(amount) + " eV/A), so its energy depends on atom positions "
                "other than through the edge vectors x_j + shift - x_i");
  }
  at::Tensor u = coords.index_select(0, j) - coords.index_select(0, i);
  if (shifts.defined()) u = u + shifts;
  const at::Tensor half = voigt(u.unsqueeze(2) * shift_gradients.unsqueeze(1)) * -0.5;
  return at::zeros({coords.size(0), 6}, coords.options()).index_add_(0, i, half).index_add_(0, j, half);
}

}  // namespace klay::md
