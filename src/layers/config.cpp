#include "layers/config.hpp"

#include "base/error.hpp"

namespace klay {

std::string where(const klay_mark& mark) {
  if (mark.line <= 0) return mark.file ? std::string(mark.file) + ": " : std::string();
  return std::string(mark.file ? mark.file : "<unknown>") + ":" + std::to_string(mark.line) + ":" +
         std::to_string(mark.col) + ": ";
}

namespace {

std::string key_text(const klay_node* key) {
  return key->kind == KLAY_INT ? std::to_string(key->integer) : std::string(key->text ? key->text : "");
}

}  // namespace

Config::Config(const klay_node* node, std::string layer_name, klay_mark layer_mark)
    : node_(node && node->kind == KLAY_NULL ? nullptr : node),
      layer_name_(std::move(layer_name)),
      mark_(node_ ? node_->mark : layer_mark) {
  if (node_ && node_->kind != KLAY_MAP)
    throw Error(where(mark_) + "layer '" + layer_name_ + "': config must be a mapping, got " +
                klay_node_kind_name(node_->kind));
}

const klay_node* Config::raw(const std::string& key) const {
  return node_ ? klay_map_get(node_, key.c_str()) : nullptr;
}

bool Config::has(const std::string& key) const {
  const klay_node* value = raw(key);
  return value && value->kind != KLAY_NULL;
}

void Config::fail(const std::string& key, const std::string& message) const {
  const klay_node* value = raw(key);
  throw Error(where(value ? value->mark : mark_) + "layer '" + layer_name_ + "', config '" + key +
              "': " + message);
}

int64_t Config::get_int(const std::string& key) const {
  const klay_node* value = raw(key);
  if (!value || value->kind == KLAY_NULL) fail(key, "required integer is missing");
  if (value->kind != KLAY_INT)
    fail(key, std::string("expected an integer, got ") + klay_node_kind_name(value->kind));
  return value->integer;
}

int64_t Config::get_int(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

int64_t Config::get_int_at_least(const std::string& key, int64_t minimum) const {
  const int64_t value = get_int(key);
  if (value < minimum) fail(key, "must be at least " + std::to_string(minimum) + ", got " + std::to_string(value));
  return value;
}

int64_t Config::get_int_at_least(const std::string& key, int64_t minimum, int64_t fallback) const {
  return has(key) ? get_int_at_least(key, minimum) : fallback;
}

double Config::get_double(const std::string& key) const {
  const klay_node* value = raw(key);
  if (!value || value->kind == KLAY_NULL) fail(key, "required number is missing");
  if (value->kind == KLAY_INT) return static_cast<double>(value->integer);
  if (value->kind != KLAY_FLOAT)
    fail(key, std::string("expected a number, got ") + klay_node_kind_name(value->kind));
  return value->real;
}

double Config::get_double(const std::string& key, double fallback) const {
  return has(key) ? get_double(key) : fallback;
}

bool Config::get_bool(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const klay_node* value = raw(key);
  if (value->kind != KLAY_BOOL)
    fail(key, std::string("expected a boolean, got ") + klay_node_kind_name(value->kind));
  return value->boolean != 0;
}

std::string Config::get_string(const std::string& key) const {
  const klay_node* value = raw(key);
  if (!value || value->kind == KLAY_NULL) fail(key, "required string is missing");
  if (value->kind != KLAY_STRING)
    fail(key, std::string("expected a string, got ") + klay_node_kind_name(value->kind));
  return value->text;
}

std::string Config::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

Config Config::get_map(const std::string& key) const {
  const klay_node* value = raw(key);
  if (value && value->kind != KLAY_NULL && value->kind != KLAY_MAP)
    fail(key, std::string("expected a mapping, got ") + klay_node_kind_name(value->kind));
  return Config(value, layer_name_, value ? value->mark : mark_);
}

void Config::reject_unknown_keys(const std::vector<std::string>& known) const {
  if (!node_) return;
  for (size_t i = 0; i < node_->len; ++i) {
    const std::string key = key_text(node_->keys[i]);
    bool is_known = false;
    for (const std::string& k : known) is_known = is_known || k == key;
    if (is_known) continue;
    const std::string suggestion = closest_match(key, known);
    throw Error(where(node_->keys[i]->mark) + "layer '" + layer_name_ + "': unknown config key '" + key +
                "'" + (suggestion.empty() ? std::string() : " (did you mean '" + suggestion + "'?)"));
  }
}

}  // namespace klay
