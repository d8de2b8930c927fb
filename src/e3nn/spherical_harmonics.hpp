// Reproduces e3nn.o3.spherical_harmonics / o3.SphericalHarmonics (e3nn >= 0.5,
// docs/layers.md#spherical-harmonics): real spherical harmonics in e3nn's basis (l = 1 block is
// (x, y, z); y is the polar axis). l <= 3 use closed forms, higher l the 3j recursion. Built from
// torch ops, so it is differentiable by autograd (forces). No module state (SphericalHarmonics has
// no state_dict keys).
#pragma once
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

// The recursion above the closed forms (l >= 3): float64 [2l+1, 3·(2l+3)] A_l with
// Y^{l+1}_i = Σ_k v_k Σ_j Y^l_j A_l[j, k·(2l+3) + i] (component normalisation, v the unit vector).
// Undefined for l < 3. Cached; the tensor must not be modified.
at::Tensor spherical_harmonics_recursion_matrix(int l);

}  // namespace klay::e3nn
