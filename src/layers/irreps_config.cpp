#include "layers/irreps_config.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "base/error.hpp"

namespace klay {

namespace {

[[noreturn]] void block_error(const Config& config, const std::string& key, const klay_node* node,
                              const std::string& message) {
  throw Error(where(node->mark) + "layer '" + config.layer_name() + "', config '" + key + "': " + message);
}

// Python's int() of an int or of a digit string, as irreps_blocks_to_string does; negative values
// are refused here (e3nn would reject the resulting text).
int64_t block_count(const Config& config, const std::string& key, const klay_node* block, const char* field) {
  const klay_node* value = klay_map_get(block, field);
  if (!value) block_error(config, key, block, std::string("block without '") + field + "'");
  if (value->kind == KLAY_INT) {
    if (value->integer < 0)
      block_error(config, key, value, std::string("'") + field + "' must not be negative");
    return value->integer;
  }
  if (value->kind == KLAY_STRING) {
    std::string text = value->text;
    text.erase(std::remove_if(text.begin(), text.end(), [](unsigned char c) { return std::isspace(c); }),
               text.end());
    if (!text.empty() &&
        std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); }))
      return std::strtoll(text.c_str(), nullptr, 10);
  }
  block_error(config, key, value, std::string("'") + field + "' must be a non-negative integer");
}

int block_parity(const Config& config, const std::string& key, const klay_node* block, int64_t l) {
  const klay_node* value = klay_map_get(block, "p");
  if (!value || value->kind == KLAY_NULL) return l % 2 == 0 ? 1 : -1;
  if (value->kind == KLAY_STRING) {
    std::string text = value->text;
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
    if (text == "e" || text == "even") return 1;
    if (text == "o" || text == "odd") return -1;
  }
  block_error(config, key, value, "'p' must be one of e, even, o, odd");
}

}  // namespace

e3nn::Irreps irreps_from_blocks(const Config& config, const std::string& key) {
  const klay_node* list = config.raw(key);
  if (!list || list->kind == KLAY_NULL) config.fail(key, "required irreps block list is missing");
  if (list->kind != KLAY_SEQ)
    config.fail(key,
                std::string("expected a list of {l, mul, p} blocks, got ") + klay_node_kind_name(list->kind));
  std::vector<e3nn::MulIrrep> entries;
  for (size_t k = 0; k < list->len; ++k) {
    const klay_node* block = list->items[k];
    if (block->kind != KLAY_MAP)
      block_error(
          config, key, block,
          std::string("each block must be a mapping {l, mul, p}, got ") + klay_node_kind_name(block->kind));
    for (size_t f = 0; f < block->len; ++f) {
      // Integer keys keep their source text.
      const std::string name = block->keys[f]->text ? block->keys[f]->text : "";
      if (name != "l" && name != "mul" && name != "p")
        block_error(config, key, block->keys[f],
                    "unknown block key '" + name + "' (a block has l, mul and optionally p)");
    }
    const int64_t l = block_count(config, key, block, "l");
    const int64_t mul = block_count(config, key, block, "mul");
    entries.push_back(
        e3nn::MulIrrep{mul, e3nn::Irrep{static_cast<int>(l), block_parity(config, key, block, l)}});
  }
  return e3nn::Irreps(std::move(entries));
}

e3nn::Irreps irreps_from_config(const Config& config, const std::string& key) {
  const klay_node* value = config.raw(key);
  if (value && value->kind == KLAY_STRING) {
    try {
      return e3nn::Irreps(std::string(value->text));
    } catch (const Error& e) {
      config.fail(key, e.what());
    }
  }
  return irreps_from_blocks(config, key);
}

}  // namespace klay
