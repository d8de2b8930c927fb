#include "e3nn_test_util.hpp"

#include "e3nn/spherical_harmonics.hpp"

namespace klay::e3nn::test {

at::Tensor wigner_d(int l, const at::Tensor& rotation) {
  const at::Tensor directions = at::randn({4 * (2 * l + 1) + 8, 3}, at::kDouble);
  const at::Tensor y = spherical_harmonics(std::vector<int>{l}, directions, true);
  const at::Tensor y_rotated = spherical_harmonics(std::vector<int>{l}, at::matmul(directions, rotation.t()), true);
  return at::matmul(at::linalg_pinv(y), y_rotated).t();
}

at::Tensor irreps_rotation(const Irreps& irreps, const at::Tensor& rotation, bool inversion) {
  std::vector<at::Tensor> blocks;
  for (const auto& entry : irreps) {
    if (entry.mul == 0) continue;
    at::Tensor d = wigner_d(entry.ir.l, rotation);
    if (inversion) d = d * static_cast<double>(entry.ir.p);
    for (int64_t u = 0; u < entry.mul; ++u) blocks.push_back(d);
  }
  return blocks.empty() ? at::zeros({0, 0}, at::kDouble) : at::block_diag(blocks);
}

}  // namespace klay::e3nn::test
