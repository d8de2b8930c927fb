// e3nn spherical harmonics (docs/layers.md#spherical-harmonics).
#include "e3nn/spherical_harmonics.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <mutex>

#include "e3nn/wigner_3j.hpp"
#include "base/error.hpp"

namespace klay::e3nn {
namespace {

// Component-normalised blocks l = 0..min(lmax, 3) from their closed forms
// (docs/layers.md#spherical-harmonics); x, y, z are [E].
std::vector<at::Tensor> closed_form_blocks(int lmax, const at::Tensor& x, const at::Tensor& y,
                                           const at::Tensor& z) {
  at::Tensor components[16];
  closed_form_harmonics<double>(lmax, x, y, z, components);
  std::vector<at::Tensor> blocks{at::ones_like(x).unsqueeze(-1)};
  for (int l = 1; l <= std::min(lmax, 3); ++l)
    blocks.push_back(at::stack(at::TensorList(components + l * l, 2 * l + 1), -1));
  return blocks;
}

}  // namespace

// A_l[j, k, i] = c_l W(l+1, 1, l)[i, k, j], c_l > 0 fixed by |Y^{l+1}(0,1,0)| = √(2l+3).
at::Tensor spherical_harmonics_recursion_matrix(int l) {
  static std::mutex mutex;
  static std::vector<at::Tensor> matrices;  // index l; undefined until needed
  static std::vector<at::Tensor> pole;      // Y^l(0,1,0), component normalisation
  std::lock_guard<std::mutex> lock(mutex);
  if (pole.empty()) {
    const at::Tensor zero = at::zeros({1}, at::kDouble), one = at::ones({1}, at::kDouble);
    for (const auto& block : closed_form_blocks(3, zero, one, zero)) pole.push_back(block[0]);
  }
  for (int k = static_cast<int>(matrices.size()); k <= l; ++k) {
    if (k < 3) {  // closed forms cover these; the recursion starts at l = 3
      matrices.emplace_back();
      continue;
    }
    const at::Tensor a = wigner_3j(k + 1, 1, k).permute({2, 1, 0}).reshape({2 * k + 1, 3 * (2 * k + 3)});
    // At (0,1,0) only the k = y term survives.
    const at::Tensor unscaled = at::matmul(pole[k], a).view({3, 2 * k + 3})[1];
    const double c = std::sqrt(2.0 * k + 3.0) / unscaled.norm().item<double>();
    matrices.push_back(a * c);
    pole.push_back(unscaled * c);
  }
  return matrices[l];
}

at::Tensor vector_lengths(const at::Tensor& vectors) {
  const at::Tensor x = vectors.select(-1, 0), y = vectors.select(-1, 1), z = vectors.select(-1, 2);
  const at::Tensor squared = x * x + y * y + z * z;
  // sqrt's derivative is infinite at 0: the zero vectors take the other branch of the where.
  const at::Tensor nonzero = squared > 0;
  return at::where(nonzero, at::where(nonzero, squared, at::ones_like(squared)).sqrt(), at::zeros_like(squared));
}

at::Tensor spherical_harmonics(const std::vector<int>& ls, const at::Tensor& vectors, bool normalize,
                               ShNormalization normalization) {
  if (vectors.dim() < 1 || vectors.size(-1) != 3)
    throw Error("spherical_harmonics: expected vectors of shape [..., 3], got " + std::to_string(vectors.dim()) +
                "-d tensor with last size " + std::to_string(vectors.dim() ? vectors.size(-1) : 0));
  if (ls.empty()) throw Error("spherical_harmonics: no l requested");
  const int lmax = *std::max_element(ls.begin(), ls.end());
  if (*std::min_element(ls.begin(), ls.end()) < 0) throw Error("spherical_harmonics: negative l requested");

  std::vector<int64_t> batch_shape(vectors.sizes().begin(), vectors.sizes().end() - 1);
  at::Tensor v = vectors.reshape({-1, 3});
  if (normalize) v = v / vector_lengths(v).clamp_min(1e-12).unsqueeze(-1);
  const at::Tensor x = v.select(1, 0), y = v.select(1, 1), z = v.select(1, 2);

  std::vector<at::Tensor> blocks = closed_form_blocks(std::min(lmax, 3), x, y, z);
  for (int l = 3; l < lmax; ++l) {
    const at::Tensor terms = at::matmul(blocks[l], spherical_harmonics_recursion_matrix(l).to(v.options())).view({v.size(0), 3, 2 * l + 3});
    blocks.push_back((terms * v.unsqueeze(-1)).sum(1));
  }

  std::vector<at::Tensor> selected;
  for (int l : ls) {
    at::Tensor block = blocks[l];
    if (normalization == ShNormalization::norm) block = block / std::sqrt(2.0 * l + 1.0);
    if (normalization == ShNormalization::integral) block = block / std::sqrt(4.0 * M_PI);
    selected.push_back(block);
  }
  at::Tensor out = at::cat(selected, -1);
  batch_shape.push_back(out.size(-1));
  return out.view(batch_shape);
}

at::Tensor spherical_harmonics(int lmax, const at::Tensor& vectors, bool normalize, ShNormalization normalization) {
  std::vector<int> ls(lmax + 1);
  for (int l = 0; l <= lmax; ++l) ls[l] = l;
  return spherical_harmonics(ls, vectors, normalize, normalization);
}

}  // namespace klay::e3nn
