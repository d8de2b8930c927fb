// AutogradForces (docs/layers.md#autograd-forces)
//   ports:   energy (float, any shape), pos (float [N, 3], a tensor the energy was computed from,
//            requiring grad) → forces [N, 3] = −∂(Σ energy)/∂pos
//   config:  none
//   state:   none
//   quirks:  as in Python, create_graph=True and retain_graph=True: the forces stay differentiable
//            (training on forces, second derivatives) and the graph can be differentiated again by
//            the caller. Python raises when pos does not require grad or the energy does not depend
//            on it; so does this layer, naming the layer.
#include <torch/csrc/autograd/autograd.h>

#include "layers/named_layer.hpp"

namespace klay {
namespace {

class AutogradForces : public NamedLayer {
 public:
  explicit AutogradForces(const Config& config) : NamedLayer("AutogradForces", config) {
  }

  c10::IValue call(const CallArgs& call) override {
    const at::Tensor energy = tensor_input(call, 0, "energy");
    const at::Tensor pos = tensor_input(call, 1, "pos");
    if (!pos.requires_grad())
      fail("input pos does not require grad; the forces need positions that autograd tracks");
    if (!energy.requires_grad())
      fail("input energy does not depend on tracked positions (it carries no autograd graph)");
    const at::Tensor total = energy.sum();
    std::vector<at::Tensor> gradient;
    try {
      gradient = torch::autograd::grad({total}, {pos}, /*grad_outputs=*/{}, /*retain_graph=*/true,
                                       /*create_graph=*/true);
    } catch (const c10::Error& error) {
      fail(std::string("differentiating the energy with respect to pos failed: ") + error.what_without_backtrace());
    }
    return -gradient[0];
  }
};

}  // namespace

KLAY_REGISTER_LAYER(AutogradForces, make_layer<AutogradForces>, {"energy", "pos"}, {"forces"});

}  // namespace klay
