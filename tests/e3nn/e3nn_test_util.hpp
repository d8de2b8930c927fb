// Helpers shared by the e3nn tests: rotations and the Wigner-D matrices of real irreps (obtained
// from the spherical harmonics by least squares, so equivariance tests do not presuppose our own
// D-matrix code), and error measures.
#pragma once
#include <string>

#include <ATen/ATen.h>

#include "e3nn/irreps.hpp"

namespace klay::e3nn::test {

inline std::string conformance_file(const std::string& case_name, const std::string& file) {
  return std::string(KLAY_SHARED_DIR) + "/conformance/" + case_name + "/" + file;
}

// max |a - b| / max |b| (b is the reference).
inline double relative_error(const at::Tensor& a, const at::Tensor& b) {
  const double scale = b.abs().max().item<double>();
  return (a - b).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

// A random proper rotation (QR of a Gaussian matrix, det fixed to +1), float64 [3, 3].
inline at::Tensor random_rotation() {
  auto qr = at::linalg_qr(at::randn({3, 3}, at::kDouble));
  at::Tensor q = std::get<0>(qr) * at::sign(at::diagonal(std::get<1>(qr))).unsqueeze(0);
  if (at::det(q).item<double>() < 0) q = -q;
  return q;
}

// D_l(R) with Y^l(R v) = D_l(R) Y^l(v), fitted on random directions: D^T = pinv(Y(V)) Y(V R^T).
at::Tensor wigner_d(int l, const at::Tensor& rotation);

// Block-diagonal representation of a rotation (optionally composed with the inversion) on an Irreps
// feature vector: each copy of (l, p) gets D_l(R), times p under inversion.
at::Tensor irreps_rotation(const Irreps& irreps, const at::Tensor& rotation, bool inversion);

}  // namespace klay::e3nn::test
