#include "layers/layer.hpp"

#include <map>

#include "base/error.hpp"

namespace klay {

namespace {
struct Registration {
  LayerFactory factory;
  LayerPorts ports;
};
// Function-local so registration from other translation units' static initializers is safe.
std::map<std::string, Registration>& registry() {
  static std::map<std::string, Registration> registrations;
  return registrations;
}
}  // namespace

void register_layer(const std::string& type, LayerFactory factory, LayerPorts ports) {
  if (!registry().emplace(type, Registration{std::move(factory), std::move(ports)}).second)
    throw Error("layer type " + type + " is registered twice");
}

const LayerFactory* find_layer_factory(const std::string& type) {
  auto it = registry().find(type);
  return it == registry().end() ? nullptr : &it->second.factory;
}

const LayerPorts* find_layer_ports(const std::string& type) {
  auto it = registry().find(type);
  return it == registry().end() ? nullptr : &it->second.ports;
}

std::vector<std::string> implemented_layer_types() {
  std::vector<std::string> names;
  for (const auto& entry : registry()) names.push_back(entry.first);
  return names;
}

}  // namespace klay
