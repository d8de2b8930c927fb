// Typed read access to one layer's `config:` subtree, with errors that name the layer, the key
// and the YAML position. Layers read their arguments through this, never through raw nodes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "klay_builder.h"

namespace klay {

// One config entry as a plain tree, for the arguments whose shape a layer cannot declare (an
// ArbitraryModule's args/kwargs, irreps blocks). Every part keeps its YAML position for errors.
struct ConfigValue {
  enum class Kind { Null = KLAY_NULL, Bool = KLAY_BOOL, Int = KLAY_INT, Float = KLAY_FLOAT,
                    String = KLAY_STRING, List = KLAY_SEQ, Map = KLAY_MAP };
  Kind kind = Kind::Null;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0.0;
  std::string text;                // a string's value; other scalars' source text
  std::vector<ConfigValue> items;  // List elements, Map values
  std::vector<ConfigValue> keys;   // Map keys (String or Int scalars), one per item
  klay_mark mark{};

  const char* kind_name() const;  // "null", "int", "list", ... as in the front end's messages
  // A Map's value under `key` (a String key), or nullptr.
  const ConfigValue* find(const std::string& key) const;
};
// The YAML default a layer table entry declares for `arg` (a KLAY_NULL node for "null"), parsed
// once; NULL when the key is required.
const klay_node* declared_default(const klay_config_arg& arg);
// "file:line:col: " prefix for a YAML mark ("" when the mark is unknown).
std::string where(const klay_mark& mark);

class Config {
 public:
  // node may be NULL (a layer entry without `config:`). With the layer's table entry (`spec`), the
  // config is checked against its declaration (unknown keys, value kinds: the same check and
  // message as `klay validate`), getters fall back to the declared defaults, and reading an
  // undeclared key is an error. Without it (a nested mapping), every key read is required.
  Config(const klay_node* node, std::string layer_name, klay_mark layer_mark,
         const klay_layer_spec* spec = nullptr);

  bool has(const std::string& key) const;          // set in the YAML and not null

  // The value set in the YAML, else the declared default; "required ... is missing" if neither.
  int64_t get_int(const std::string& key) const;
  // Counts and sizes: below `minimum` is an error "must be at least MIN, got V" at the value.
  int64_t get_int_at_least(const std::string& key, int64_t minimum) const;
  double get_double(const std::string& key) const;  // ints are accepted as doubles
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  // A nested mapping (e.g. nonlinearity_scalars) as a Config of its own.
  Config get_map(const std::string& key) const;
  // Any entry as a tree; Null (at the layer's position) when absent.
  ConfigValue get_value(const std::string& key) const;
  bool is_null(const std::string& key) const;  // written as null (has() is false for it too)

  // Error for a bad value: "file:line:col: layer 'conv1', config 'lmax': <message>".
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;
  // The same error at a part of the entry under `key` (a list item, a mapping key).
  [[noreturn]] void fail_at(const ConfigValue& part, const std::string& key, const std::string& message) const;
  // Error for keys of a nested mapping not in `known`, with "did you mean".
  void reject_unknown_keys(const std::vector<std::string>& known) const;

  const std::string& layer_name() const { return layer_name_; }
  klay_mark mark() const { return mark_; }

 private:
  const klay_node* raw(const std::string& key) const;  // as set in the YAML; NULL if absent
  // The YAML value, else the declared default; NULL when neither (or null).
  const klay_node* value(const std::string& key) const;

  const klay_node* node_;
  std::string layer_name_;
  klay_mark mark_;
  const klay_layer_spec* spec_;
};

}  // namespace klay
