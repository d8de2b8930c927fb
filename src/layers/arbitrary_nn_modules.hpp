// ArbitraryModule's torch.nn targets (docs/layers.md#arbitrary-module): torch.nn.<Class> built
// from the layer's `args`/`kwargs` by Python's parameter names, with Python's state_dict names.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "layers/config.hpp"
#include "layers/layer.hpp"

namespace klay::arbitrary {

// The layer for `target` = torch.nn.<class_name>; unknown classes are config errors at `target`.
std::shared_ptr<Layer> make_nn_module_layer(const std::string& target, const std::string& class_name,
                                            const Config& config);

// "torch.nn.X" for every supported class, for "did you mean".
std::vector<std::string> nn_class_names();

// Python's legacy implicit softmax dimension (torch.nn.functional._get_softmax_dim).
int64_t softmax_dim(const at::Tensor& x, std::optional<int64_t> dim);

}  // namespace klay::arbitrary
