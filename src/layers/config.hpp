// Typed read access to one layer's `config:` subtree, with errors that name the layer, the key
// and the YAML position. Layers read their arguments through this, never through raw nodes.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "klay_builder.h"

namespace klay {

// "file:line:col: " prefix for a YAML mark ("" when the mark is unknown).
std::string where(const klay_mark& mark);

class Config {
 public:
  // node may be NULL (a layer entry without `config:`).
  Config(const klay_node* node, std::string layer_name, klay_mark layer_mark);

  bool has(const std::string& key) const;          // present and not null
  const klay_node* raw(const std::string& key) const;  // NULL if absent

  int64_t get_int(const std::string& key) const;   // required
  int64_t get_int(const std::string& key, int64_t fallback) const;
  // Counts and sizes: below `minimum` is an error "must be at least MIN, got V" at the value.
  int64_t get_int_at_least(const std::string& key, int64_t minimum) const;
  int64_t get_int_at_least(const std::string& key, int64_t minimum, int64_t fallback) const;
  double get_double(const std::string& key) const;  // ints are accepted as doubles
  double get_double(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  // A nested mapping (e.g. nonlinearity_scalars) as a Config of its own.
  Config get_map(const std::string& key) const;

  // Error for a bad value: "file:line:col: layer 'conv1', config 'lmax': <message>".
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;
  // Error for unknown keys (those not in `known`), with "did you mean".
  void reject_unknown_keys(const std::vector<std::string>& known) const;

  const std::string& layer_name() const { return layer_name_; }
  const klay_node* node() const { return node_; }
  klay_mark mark() const { return mark_; }

 private:
  const klay_node* node_;
  std::string layer_name_;
  klay_mark mark_;
};

}  // namespace klay
