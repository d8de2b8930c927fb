#include "layers/config.hpp"

#include <map>
#include <memory>

#include "klay_layer_table.h"
#include "layers/diags.hpp"
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

ConfigValue value_of(const klay_node* node) {
  ConfigValue value;
  value.kind = static_cast<ConfigValue::Kind>(node->kind);
  value.boolean = node->boolean != 0;
  value.integer = node->integer;
  value.real = node->real;
  value.text = node->text ? node->text : "";
  value.mark = node->mark;
  if (node->kind == KLAY_SEQ || node->kind == KLAY_MAP)
    for (size_t i = 0; i < node->len; ++i) {
      value.items.push_back(value_of(node->items[i]));
      if (node->kind == KLAY_MAP) value.keys.push_back(value_of(node->keys[i]));
    }
  return value;
}

// Every default of the layer table, parsed once (thread-safe static initialisation) and kept for
// the life of the process: Configs hand out its nodes.
class DeclaredDefaults {
 public:
  DeclaredDefaults() {
    const klay_layer_table* table = klay_layer_table_get();
    for (size_t i = 0; i < table->count; ++i)
      for (const klay_config_arg* arg = table->specs[i].config_args; arg->name; ++arg)
        if (arg->default_text) parse(table->specs[i], *arg);
  }
  ~DeclaredDefaults() {
    for (auto& entry : docs_) klay_doc_free(entry.second);
  }
  const klay_node* find(const klay_config_arg& arg) const {
    auto it = docs_.find(&arg);
    return it == docs_.end() ? nullptr : klay_map_get(klay_doc_root(it->second), "default");
  }

 private:
  void parse(const klay_layer_spec& spec, const klay_config_arg& arg) {
    const std::string yaml = std::string("default: ") + arg.default_text + "\n";
    const std::string source = std::string("layer table: ") + spec.name + "." + arg.name;
    Diags diags;
    klay_doc* doc = klay_doc_load_string(yaml.data(), yaml.size(), source.c_str(), &diags.list);
    if (!doc) throw Error("the default of " + std::string(spec.name) + "." + arg.name + " is not YAML: " +
                          diags_text(diags.list));
    docs_.emplace(&arg, doc);
  }

  std::map<const klay_config_arg*, klay_doc*> docs_;
};

}  // namespace

const char* ConfigValue::kind_name() const { return klay_node_kind_name(static_cast<klay_node_kind>(kind)); }

const ConfigValue* ConfigValue::find(const std::string& key) const {
  for (size_t i = 0; i < keys.size(); ++i)
    if (keys[i].kind == Kind::String && keys[i].text == key) return &items[i];
  return nullptr;
}

const klay_node* declared_default(const klay_config_arg& arg) {
  static const DeclaredDefaults defaults;
  return defaults.find(arg);
}

Config::Config(const klay_node* node, std::string layer_name, klay_mark layer_mark, const klay_layer_spec* spec)
    : node_(node && node->kind == KLAY_NULL ? nullptr : node),
      layer_name_(std::move(layer_name)),
      mark_(node_ ? node_->mark : layer_mark),
      spec_(spec) {
  if (spec_) {
    Diags diags;
    if (klay_config_check_keys(spec_, node_, layer_name_.c_str(), &diags.list) > 0)
      throw Error(diags_text(diags.list));
  } else if (node_ && node_->kind != KLAY_MAP) {
    throw Error(where(mark_) + "layer '" + layer_name_ + "': config must be a mapping, got " +
                klay_node_kind_name(node_->kind));
  }
}

const klay_node* Config::raw(const std::string& key) const {
  if (spec_ && !klay_config_arg_find(spec_, key.c_str()))
    throw Error(std::string(spec_->name) + " reads config '" + key +
                "', which its declaration in src/layer_table.c does not list");
  return node_ ? klay_map_get(node_, key.c_str()) : nullptr;
}

bool Config::has(const std::string& key) const {
  const klay_node* value = raw(key);
  return value && value->kind != KLAY_NULL;
}

bool Config::is_null(const std::string& key) const {
  const klay_node* value = raw(key);
  return value && value->kind == KLAY_NULL;
}

const klay_node* Config::value(const std::string& key) const {
  const klay_node* set = raw(key);
  if (set && set->kind != KLAY_NULL) return set;
  const klay_node* fallback = spec_ ? declared_default(*klay_config_arg_find(spec_, key.c_str())) : nullptr;
  return fallback && fallback->kind != KLAY_NULL ? fallback : nullptr;
}

void Config::fail(const std::string& key, const std::string& message) const {
  const klay_node* value = node_ ? klay_map_get(node_, key.c_str()) : nullptr;
  throw Error(where(value ? value->mark : mark_) + "layer '" + layer_name_ + "', config '" + key +
              "': " + message);
}

void Config::fail_at(const ConfigValue& part, const std::string& key, const std::string& message) const {
  throw Error(where(part.mark) + "layer '" + layer_name_ + "', config '" + key + "': " + message);
}

int64_t Config::get_int(const std::string& key) const {
  const klay_node* v = value(key);
  if (!v) fail(key, "required integer is missing");
  if (v->kind != KLAY_INT) fail(key, std::string("expected an integer, got ") + klay_node_kind_name(v->kind));
  return v->integer;
}

int64_t Config::get_int_at_least(const std::string& key, int64_t minimum) const {
  const int64_t v = get_int(key);
  if (v < minimum) fail(key, "must be at least " + std::to_string(minimum) + ", got " + std::to_string(v));
  return v;
}

double Config::get_double(const std::string& key) const {
  const klay_node* v = value(key);
  if (!v) fail(key, "required number is missing");
  if (v->kind == KLAY_INT) return static_cast<double>(v->integer);
  if (v->kind != KLAY_FLOAT) fail(key, std::string("expected a number, got ") + klay_node_kind_name(v->kind));
  return v->real;
}

bool Config::get_bool(const std::string& key) const {
  const klay_node* v = value(key);
  if (!v) fail(key, "required boolean is missing");
  if (v->kind != KLAY_BOOL) fail(key, std::string("expected a boolean, got ") + klay_node_kind_name(v->kind));
  return v->boolean != 0;
}

std::string Config::get_string(const std::string& key) const {
  const klay_node* v = value(key);
  if (!v) fail(key, "required string is missing");
  if (v->kind != KLAY_STRING) fail(key, std::string("expected a string, got ") + klay_node_kind_name(v->kind));
  return v->text;
}

Config Config::get_map(const std::string& key) const {
  const klay_node* v = value(key);
  if (v && v->kind != KLAY_MAP) fail(key, std::string("expected a mapping, got ") + klay_node_kind_name(v->kind));
  return Config(v, layer_name_, v ? v->mark : mark_);
}

ConfigValue Config::get_value(const std::string& key) const {
  const klay_node* value = raw(key);
  if (value) return value_of(value);
  ConfigValue absent;
  absent.mark = mark_;
  return absent;
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
