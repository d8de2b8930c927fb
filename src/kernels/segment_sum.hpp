// The segment sum of per-atom values out[index[i]] += src[i] (AtomwiseSumIndex, KIMAPISumIndex) as
// one loop, where the composite path runs ATen's zeros and scatter_add_ forward and a gather
// backward: ATen's general scatter costs about 15 us a call on the 1,350 rows of a 512-atom MD
// step, all of it between the threads' parallel work. The sums run in row order, as scatter_add_
// adds them, so the numbers are the same.
//
// The backward is index_select of the segments' gradient, itself differentiable, so a backward
// with create_graph (training's force loss) goes through it as well. A src that is neither [N] nor
// [N, 1] (KLay's column-0 quirk), other types or the kernels switched off run the composite path.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "kernels/kernel_autograd.hpp"

namespace klay::kernels {

// src [N] or [N, F], index int64 [N] with entries in 0..segments−1 → [segments, F...]; for F > 1
// only column 0 is summed (KLay's quirk, docs/layers.md#quirk-sum-index).
at::Tensor segment_sum(const at::Tensor& src, const at::Tensor& index, int64_t segments);

// Calls of the kernel's forward and backward since the process started.
KernelCounters segment_sum_counters();

}  // namespace klay::kernels
