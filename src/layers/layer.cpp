#include "layers/layer.hpp"

#include <map>

#include "base/error.hpp"

namespace klay {

namespace {
// Function-local so registration from other translation units' static initializers is safe.
std::map<std::string, LayerFactory>& registry() {
  static std::map<std::string, LayerFactory> factories;
  return factories;
}
}  // namespace

void register_layer(const std::string& type, LayerFactory factory) {
  if (!registry().emplace(type, std::move(factory)).second)
    throw Error("layer type " + type + " is registered twice");
}

const LayerFactory* find_layer_factory(const std::string& type) {
  auto it = registry().find(type);
  return it == registry().end() ? nullptr : &it->second;
}

std::vector<std::string> implemented_layer_types() {
  std::vector<std::string> names;
  for (const auto& entry : registry()) names.push_back(entry.first);
  return names;
}

}  // namespace klay
