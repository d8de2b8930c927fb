// ArbitraryModule's torch.nn.functional functions that are Python compositions of operators
// (docs/layers.md#arbitrary-module), not operators in the registry.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/config.hpp"
#include "layers/layer.hpp"

namespace klay::arbitrary {

// The layer for torch.nn.functional.<name> (`target` as written), or nullptr when <name> is not
// one of these compositions.
std::shared_ptr<Layer> make_composite_layer(const std::string& target, const std::string& name, const Config& config);

// Their names (without torch.nn.functional.), for "did you mean".
std::vector<std::string> composite_names();

}  // namespace klay::arbitrary
