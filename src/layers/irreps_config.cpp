#include "layers/irreps_config.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "base/error.hpp"

namespace klay {

namespace {

// Python's int() of an int or of a digit string, as irreps_blocks_to_string does; negative values
// are refused here (e3nn would reject the resulting text).
int64_t block_count(const Config& config, const std::string& key, const ConfigValue& block, const char* field) {
  const ConfigValue* value = block.find(field);
  if (!value) config.fail_at(block, key, std::string("block without '") + field + "'");
  if (value->kind == ConfigValue::Kind::Int) {
    if (value->integer < 0) config.fail_at(*value, key, std::string("'") + field + "' must not be negative");
    return value->integer;
  }
  if (value->kind == ConfigValue::Kind::String) {
    std::string text = value->text;
    text.erase(std::remove_if(text.begin(), text.end(), [](unsigned char c) { return std::isspace(c); }),
               text.end());
    if (!text.empty() &&
        std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); }))
      return std::strtoll(text.c_str(), nullptr, 10);
  }
  config.fail_at(*value, key, std::string("'") + field + "' must be a non-negative integer");
}

int block_parity(const Config& config, const std::string& key, const ConfigValue& block, int64_t l) {
  const ConfigValue* value = block.find("p");
  if (!value || value->kind == ConfigValue::Kind::Null) return l % 2 == 0 ? 1 : -1;
  if (value->kind == ConfigValue::Kind::String) {
    std::string text = value->text;
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
    if (text == "e" || text == "even") return 1;
    if (text == "o" || text == "odd") return -1;
  }
  config.fail_at(*value, key, "'p' must be one of e, even, o, odd");
}

}  // namespace

e3nn::Irreps irreps_from_blocks(const Config& config, const std::string& key) {
  const ConfigValue list = config.get_value(key);
  if (list.kind == ConfigValue::Kind::Null) config.fail(key, "required irreps block list is missing");
  if (list.kind != ConfigValue::Kind::List)
    config.fail(key, std::string("expected a list of {l, mul, p} blocks, got ") + list.kind_name());
  std::vector<e3nn::MulIrrep> entries;
  for (const ConfigValue& block : list.items) {
    if (block.kind != ConfigValue::Kind::Map)
      config.fail_at(block, key, std::string("each block must be a mapping {l, mul, p}, got ") + block.kind_name());
    for (const ConfigValue& field : block.keys) {
      // Integer keys keep their source text.
      if (field.text != "l" && field.text != "mul" && field.text != "p")
        config.fail_at(field, key, "unknown block key '" + field.text + "' (a block has l, mul and optionally p)");
    }
    const int64_t l = block_count(config, key, block, "l");
    const int64_t mul = block_count(config, key, block, "mul");
    entries.push_back(
        e3nn::MulIrrep{mul, e3nn::Irrep{static_cast<int>(l), block_parity(config, key, block, l)}});
  }
  return e3nn::Irreps(std::move(entries));
}

e3nn::Irreps irreps_from_config(const Config& config, const std::string& key) {
  const ConfigValue value = config.get_value(key);
  if (value.kind == ConfigValue::Kind::String) {
    try {
      return e3nn::Irreps(value.text);
    } catch (const Error& e) {
      config.fail(key, e.what());
    }
  }
  return irreps_from_blocks(config, key);
}

}  // namespace klay
