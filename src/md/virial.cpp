#include "md/virial.hpp"

#include <cstdio>

#include <ATen/ATen.h>

#include "base/error.hpp"

namespace klay::md {

namespace {

// [..., 3, 3] -> [..., 6] in LAMMPS order xx, yy, zz, xy, xz, yz.
at::Tensor voigt(const at::Tensor& w) {
  const auto component = [&](int a, int b) { return w.select(-2, a).select(-1, b); };
  return at::stack({component(0, 0), component(1, 1), component(2, 2), component(0, 1), component(0, 2),
                    component(1, 2)},
                   -1);
}

}  // namespace

std::array<double, 6> global_virial(const at::Tensor& coords, const at::Tensor& forces, const at::Tensor& shifts,
                                    const at::Tensor& shift_gradients) {
  at::Tensor w = coords.t().mm(forces);
  if (shifts.defined() && shift_gradients.defined()) w = w - shifts.t().mm(shift_gradients);
  const at::Tensor six = voigt(w).contiguous();
  std::array<double, 6> out;
  std::copy(six.data_ptr<double>(), six.data_ptr<double>() + 6, out.begin());
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
