// A small strict JSON reader/writer for the conformance format: tensors are written as
// {"dtype": "float64", "shape": [...], "data": nested lists}. Floats are printed with %.17g so a
// double survives a round trip exactly. Python's json extensions NaN, Infinity and -Infinity are
// accepted and written, because json.dump emits them for non-finite floats.
#pragma once
#include <cstdint>
#include <cstddef>
#include <iosfwd>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace klay::json {

struct Value {
  enum class Kind { Null, Bool, Int, Float, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0.0;
  std::string text;
  std::vector<Value> items;                            // Array
  std::vector<std::pair<std::string, Value>> members;  // Object, in file order

  const Value* find(const std::string& key) const;  // nullptr if absent or not an object
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float; }
  double as_double() const { return kind == Kind::Int ? static_cast<double>(integer) : real; }

  static Value make_object() { Value v; v.kind = Kind::Object; return v; }
  static Value make_array() { Value v; v.kind = Kind::Array; return v; }
  static Value make_string(std::string s) { Value v; v.kind = Kind::String; v.text = std::move(s); return v; }
  void set(const std::string& key, Value value);  // append or replace a member of an object
};

// Throws klay::Error "SOURCE:line:col: ..." on malformed input or trailing garbage.
Value parse(const std::string& text, const std::string& source);
Value parse_file(const std::string& path);

// A malformed string literal; `pos` is left where the problem is, for the caller's location.
struct StringSyntaxError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Decodes a JSON string literal whose opening quote text[pos - 1] has been consumed: escapes
// (surrogate pairs included) are re-encoded as UTF-8 and pos ends after the closing quote. Shared
// with the safetensors header reader, which parses its own stricter JSON subset.
std::string decode_string(const char* text, size_t size, size_t& pos);

void write(std::ostream& out, const Value& value, int indent = 1);

// {"dtype", "shape", "data"} <-> tensor (float64, float32, int64, int32, bool). `what` names the
// value in error messages (e.g. "input 'x'").
at::Tensor to_tensor(const Value& value, const std::string& what);
Value from_tensor(const at::Tensor& tensor);

}  // namespace klay::json
