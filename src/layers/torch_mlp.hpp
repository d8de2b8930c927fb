// Plain (non-equivariant) MLPs in the layout of a Python torch.nn.Sequential, shared by the layers
// that build one (EGCL, RadialAttention).
#pragma once
#include <torch/nn/modules/container/sequential.h>

#include <cstdint>

namespace klay {

enum class MlpActivation { silu, shifted_softplus };

// Sequential(Linear(in→width), act, n_hidden × [Linear(width→width), act], Linear(width→out)),
// torch.nn.Linear with bias (y = x Wᵀ + b), activation not normalised. The activations occupy the
// odd indices, so the state_dict keys are "0.weight", "0.bias", "2.weight", …, "{2n+2}.bias", exactly
// as Python's. Parameters are created in float64.
torch::nn::Sequential make_sequential_mlp(int64_t in, int64_t width, int64_t out, int64_t n_hidden,
                                          MlpActivation activation);

}  // namespace klay
