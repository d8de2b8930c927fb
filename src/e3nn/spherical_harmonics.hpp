// Reproduces e3nn.o3.spherical_harmonics / o3.SphericalHarmonics (e3nn >= 0.5,
// docs/layers.md#spherical-harmonics): real spherical harmonics in e3nn's basis (l = 1 block is
// (x, y, z); y is the polar axis). l <= 3 use closed forms, higher l the 3j recursion. Built from
// torch ops, so it is differentiable by autograd (forces). No module state (SphericalHarmonics has
// no state_dict keys).
#pragma once
#include <cmath>
#include <vector>

#include <ATen/core/Tensor.h>

namespace klay::e3nn {

enum class ShNormalization { component, norm, integral };

// vectors [..., 3] → [..., Σ_l (2l+1)], blocks in the order of `ls`.
// normalize: v ← v / max(|v|, 1e-12) first (torch.nn.functional.normalize).
at::Tensor spherical_harmonics(const std::vector<int>& ls, const at::Tensor& vectors, bool normalize,
                               ShNormalization normalization = ShNormalization::component);

// ‖v‖₂ over the last axis (of size 3), with torch.linalg.norm's gradient (zero at v = 0), from
// elementwise operations: libtorch 1.13's norm reduces a 3-wide axis one output at a time, 40×
// slower than this. The values agree with torch.linalg.norm to an ulp.
at::Tensor vector_lengths(const at::Tensor& vectors);

// ls = 0, 1, …, lmax (Irreps::spherical_harmonics(lmax) layout).
at::Tensor spherical_harmonics(int lmax, const at::Tensor& vectors, bool normalize,
                               ShNormalization normalization = ShNormalization::component);

// The closed forms of Y^1…Y^min(lmax, 3) of (x, y, z) (component normalisation, e3nn's order):
// out[1 .. (min(lmax, 3)+1)²) (out[0] = Y^0 = 1 is the caller's). S is at::Tensor (the composite
// path, Constant double) or a scalar type of the kernels (Constant the scalar); S needs S ± S, S·S
// and Constant·S. One definition, so the kernels and the composite path compute the same terms.
template <typename Constant, typename S>
void closed_form_harmonics(int lmax, const S& x, const S& y, const S& z, S* out) {
  if (lmax < 1) return;
  const auto constant = [](double c) { return static_cast<Constant>(c); };
  const Constant s3 = constant(std::sqrt(3.0));
  out[1] = s3 * x;
  out[2] = s3 * y;
  out[3] = s3 * z;
  if (lmax < 2) return;
  const Constant s15 = constant(std::sqrt(15.0));
  const S y2 = y * y, x2z2 = x * x + z * z;
  const S s0 = (s15 * x) * z;
  const S s4 = constant(std::sqrt(15.0) / 2.0) * (z * z - x * x);
  out[4] = s0;
  out[5] = (s15 * x) * y;
  out[6] = constant(std::sqrt(5.0)) * (y2 - constant(0.5) * x2z2);
  out[7] = (s15 * y) * z;
  out[8] = s4;
  if (lmax < 3) return;
  const Constant c42 = constant(std::sqrt(42.0) / 6.0), c7 = constant(std::sqrt(7.0)),
                 c168 = constant(std::sqrt(168.0) / 8.0);
  const S four_y2 = constant(4.0) * y2 - x2z2;
  out[9] = c42 * (s0 * z + s4 * x);
  out[10] = (c7 * s0) * y;
  out[11] = (c168 * four_y2) * x;
  out[12] = (constant(std::sqrt(7.0) / 2.0) * y) * (constant(2.0) * y2 - constant(3.0) * x2z2);
  out[13] = (c168 * z) * four_y2;
  out[14] = (c7 * s4) * y;
  out[15] = c42 * (s4 * z - s0 * x);
}

// The recursion above the closed forms (l >= 3): float64 [2l+1, 3·(2l+3)] A_l with
// Y^{l+1}_i = Σ_k v_k Σ_j Y^l_j A_l[j, k·(2l+3) + i] (component normalisation, v the unit vector).
// Undefined for l < 3. Cached; the tensor must not be modified.
at::Tensor spherical_harmonics_recursion_matrix(int l);

}  // namespace klay::e3nn
