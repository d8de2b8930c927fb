// klay layers [--type CATEGORY]: the registered KLay layer types (src/layer_table.c) with their
// ports and config arguments, and whether this build implements each.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <set>
#include <string>

#include "cli/commands.hpp"
#include "klay_layer_table.h"
#include "layers/layer.hpp"

namespace {

std::string join(const char* const* names) {
  std::string text;
  for (const char* const* n = names; n && *n; ++n) text += (text.empty() ? "" : ", ") + std::string(*n);
  return text;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

int cmd_layers(int argc, char** argv) {
  std::string category;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--type" && i + 1 < argc) {
      category = upper(argv[++i]);
    } else {
      std::cerr << "usage: klay layers [--type CATEGORY]\n";
      return 2;
    }
  }
  const klay_layer_table* table = klay_layer_table_get();
  std::set<std::string> categories;
  for (size_t i = 0; i < table->count; ++i) categories.insert(table->specs[i].category);
  if (!category.empty() && !categories.count(category)) {
    std::string known;
    for (const auto& c : categories) known += " " + c;
    std::cerr << "klay layers: unknown category '" << category << "' (categories:" << known << ")\n";
    return 2;
  }
  for (size_t i = 0; i < table->count; ++i) {
    const klay_layer_spec& spec = table->specs[i];
    if (!category.empty() && category != spec.category) continue;
    const bool implemented = klay::find_layer_factory(spec.name) != nullptr;
    std::printf("%-34s %-12s %s\n", spec.name, spec.category, implemented ? "implemented" : "NOT IMPLEMENTED");
    std::printf("    inputs:  %s\n    outputs: %s\n", join(spec.inputs).c_str(), join(spec.outputs).c_str());
    std::string config;
    for (const klay_config_arg* a = spec.config_args; a && a->name; ++a)
      config += (config.empty() ? "" : ", ") + std::string(a->name) + (a->default_text ? "=" + std::string(a->default_text) : " (required)");
    std::printf("    config:  %s\n", config.empty() ? "(none)" : config.c_str());
  }
  return 0;
}
