// ArbitraryModule's `target: torchscript` (docs/layers.md#arbitrary-module).
#pragma once
#include <memory>
#include <string>

#include "layers/config.hpp"
#include "layers/layer.hpp"

namespace klay::arbitrary {

// The scripted module at `path` (already resolved); load failures are config errors at `path`.
std::shared_ptr<Layer> make_torchscript_layer(const std::string& path, const Config& config);

}  // namespace klay::arbitrary
