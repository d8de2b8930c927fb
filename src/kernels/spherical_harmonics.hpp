// e3nn's spherical harmonics of edge vectors as one kernel: one pass over the vectors computes
// their lengths, the unit vector (when normalising), every component Y^0…Y^lmax (closed forms up
// to l = 3, e3nn's 3j recursion above) and the normalisation, with a hand-written backward that
// rebuilds each vector's Jacobian on the fly from the saved vectors, where the composite path runs
// a few dozen small ATen ops (stack, mul, sub, cat, the length's where/sqrt/clamp/div), each an
// autograd node. With lmax 0 (a constant) the composite path runs.
//
// A backward evaluated with create_graph (training's force loss) differentiates the composite
// path (e3nn::vector_lengths, e3nn::spherical_harmonics) instead, so every order of derivative stays exact; the kernels
// switched off (KLAY_FUSED_KERNELS=0), or inputs the kernels do not take, run the composite path.
#pragma once
#include <ATen/core/Tensor.h>

#include "e3nn/spherical_harmonics.hpp"
#include "kernels/kernel_autograd.hpp"

namespace klay::kernels {

// The same as e3nn::spherical_harmonics(lmax, vectors, normalize, normalization):
// vectors [..., 3] → [..., (lmax+1)²].
at::Tensor spherical_harmonics(int lmax, const at::Tensor& vectors, bool normalize,
                               e3nn::ShNormalization normalization = e3nn::ShNormalization::component);

struct LengthsAndHarmonics {
  at::Tensor lengths, harmonics;
};

// {e3nn::vector_lengths(vectors), e3nn::spherical_harmonics(lmax, vectors, true, normalization)}
// (SphericalHarmonicEdgeAttrs' edge lengths and harmonics) in the same pass.
LengthsAndHarmonics lengths_and_spherical_harmonics(int lmax, const at::Tensor& vectors,
                                                    e3nn::ShNormalization normalization);

// Calls of the kernel's forward and backward since the process started.
KernelCounters spherical_harmonics_counters();

}  // namespace klay::kernels
