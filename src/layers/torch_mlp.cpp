#include "layers/torch_mlp.hpp"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/functional.h>
#include <torch/nn/modules/linear.h>

#include <cmath>

namespace klay {

namespace {

torch::nn::Linear make_linear(int64_t in, int64_t out) {
  torch::nn::Linear linear(in, out);
  linear->to(torch::kFloat64);
  return linear;
}

void push_activation(torch::nn::Sequential& mlp, MlpActivation activation) {
  switch (activation) {
    case MlpActivation::silu:
      mlp->push_back(torch::nn::SiLU());
      return;
    case MlpActivation::shifted_softplus:
      // KLay's ShiftedSoftPlus: softplus(x) − ln 2 (beta 1, threshold 20 as torch).
      mlp->push_back(
          torch::nn::Functional([](const at::Tensor& x) { return at::softplus(x, 1, 20) - std::log(2.0); }));
      return;
  }
}

}  // namespace

torch::nn::Sequential make_sequential_mlp(int64_t in, int64_t width, int64_t out, int64_t n_hidden,
                                          MlpActivation activation) {
  torch::nn::Sequential mlp;
  mlp->push_back(make_linear(in, width));
  push_activation(mlp, activation);
  for (int64_t k = 0; k < n_hidden; ++k) {
    mlp->push_back(make_linear(width, width));
    push_activation(mlp, activation);
  }
  mlp->push_back(make_linear(width, out));
  return mlp;
}

}  // namespace klay
