#include "base/json.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ostream>

#include <ATen/ATen.h>

#include "base/error.hpp"
#include "base/files.hpp"

namespace klay::json {

const Value* Value::find(const std::string& key) const {
  if (kind != Kind::Object) return nullptr;
  for (const auto& member : members)
    if (member.first == key) return &member.second;
  return nullptr;
}

void Value::set(const std::string& key, Value value) {
  for (auto& member : members)
    if (member.first == key) {
      member.second = std::move(value);
      return;
    }
  members.emplace_back(key, std::move(value));
}

namespace {

class Parser {
 public:
  Parser(const std::string& text, const std::string& source) : text_(text), source_(source) {}

  Value parse_document() {
    Value value = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) fail("unexpected text after the JSON value");
    return value;
  }

 private:
  // Deep enough for any tensor; bounded so hostile input cannot overflow the stack.
  static constexpr int kMaxDepth = 256;

  [[noreturn]] void fail(const std::string& message) const {
    int line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw Error(source_ + ":" + std::to_string(line) + ":" + std::to_string(col) + ": JSON: " + message);
  }

  void skip_space() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' || text_[pos_] == '\t'))
      ++pos_;
  }

  bool consume(const char* word) {
    const size_t n = std::char_traits<char>::length(word);
    if (text_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  void expect(char c) {
    skip_space();
    if (pos_ >= text_.size() || text_[pos_] != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  Value parse_value(int depth) {
    if (depth > kMaxDepth) fail("nesting too deep");
    skip_space();
    if (pos_ >= text_.size()) fail("unexpected end of input");
    Value v;
    const char c = text_[pos_];
    if (c == '{') {
      ++pos_;
      v.kind = Value::Kind::Object;
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        return v;
      }
      for (;;) {
        skip_space();
        if (pos_ >= text_.size() || text_[pos_] != '"') fail("expected a string key");
        std::string key = parse_string();
        if (v.find(key)) fail("duplicate key \"" + key + "\"");
        expect(':');
        v.members.emplace_back(std::move(key), parse_value(depth + 1));
        skip_space();
        if (pos_ < text_.size() && text_[pos_] == ',') {
          ++pos_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      ++pos_;
      v.kind = Value::Kind::Array;
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        return v;
      }
      for (;;) {
        v.items.push_back(parse_value(depth + 1));
        skip_space();
        if (pos_ < text_.size() && text_[pos_] == ',') {
          ++pos_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Value::Kind::String;
      v.text = parse_string();
      return v;
    }
    if (consume("null")) return v;
    if (consume("true") || consume("false")) {
      v.kind = Value::Kind::Bool;
      v.boolean = c == 't';
      return v;
    }
    if (consume("NaN")) {
      v.kind = Value::Kind::Float;
      v.real = std::nan("");
      return v;
    }
    if (consume("Infinity")) {
      v.kind = Value::Kind::Float;
      v.real = HUGE_VAL;
      return v;
    }
    if (consume("-Infinity")) {
      v.kind = Value::Kind::Float;
      v.real = -HUGE_VAL;
      return v;
    }
    return parse_number();
  }

  Value parse_number() {
    const size_t start = pos_;
    bool is_float = false;
    if (text_[pos_] == '-') ++pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
      return pos_ - from;
    };
    if (pos_ < text_.size() && text_[pos_] == '0') {
      ++pos_;
    } else if (digits() == 0) {
      pos_ = start;
      fail("invalid value");
    }
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      is_float = true;
      if (digits() == 0) fail("digits expected after '.'");
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      is_float = true;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (digits() == 0) fail("digits expected in the exponent");
    }
    const std::string token = text_.substr(start, pos_ - start);
    Value v;
    errno = 0;
    if (!is_float) {
      v.kind = Value::Kind::Int;
      v.integer = std::strtoll(token.c_str(), nullptr, 10);
      if (errno == ERANGE) fail("integer out of range: " + token);
    } else {
      v.kind = Value::Kind::Float;
      v.real = std::strtod(token.c_str(), nullptr);
    }
    return v;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    try {
      return decode_string(text_.data(), text_.size(), pos_);
    } catch (const StringSyntaxError& e) {
      fail(e.what());
    }
  }

  const std::string& text_;
  const std::string& source_;
  size_t pos_ = 0;
};

uint32_t parse_hex4(const char* text, size_t size, size_t& pos) {
  if (size - pos < 4) throw StringSyntaxError("truncated \\u escape");
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    const char h = text[pos++];
    value <<= 4;
    if (h >= '0' && h <= '9') value |= uint32_t(h - '0');
    else if (h >= 'a' && h <= 'f') value |= uint32_t(h - 'a' + 10);
    else if (h >= 'A' && h <= 'F') value |= uint32_t(h - 'A' + 10);
    else throw StringSyntaxError("invalid \\u escape");
  }
  return value;
}

uint32_t parse_code_point(const char* text, size_t size, size_t& pos) {
  const uint32_t first = parse_hex4(text, size, pos);
  if (first >= 0xDC00 && first <= 0xDFFF) throw StringSyntaxError("unpaired low surrogate in \\u escape");
  if (first < 0xD800 || first > 0xDBFF) return first;
  if (size - pos < 2 || text[pos] != '\\' || text[pos + 1] != 'u')
    throw StringSyntaxError("unpaired high surrogate in \\u escape");
  pos += 2;
  const uint32_t second = parse_hex4(text, size, pos);
  if (second < 0xDC00 || second > 0xDFFF) throw StringSyntaxError("unpaired high surrogate in \\u escape");
  return 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

void write_string(std::ostream& out, const std::string& s) {
  out << '"';
  for (const char c : s) {
    switch (c) {
      case '"': out << "\\\""; break;
      case '\\': out << "\\\\"; break;
      case '\n': out << "\\n"; break;
      case '\r': out << "\\r"; break;
      case '\t': out << "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out << buf;
        } else {
          out << c;
        }
    }
  }
  out << '"';
}

void write_double(std::ostream& out, double x) {
  if (std::isnan(x)) {
    out << "NaN";
  } else if (std::isinf(x)) {
    out << (x > 0 ? "Infinity" : "-Infinity");
  } else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", x);
    std::string s(buf);
    // Keep floats recognisable as floats when read back ("1" would come back as an int).
    if (s.find_first_of(".eE") == std::string::npos) s += ".0";
    out << s;
  }
}

// Tensors are written with their innermost dimension on one line: large arrays stay readable.
void write_value(std::ostream& out, const Value& v, int indent, int level, bool compact) {
  auto newline = [&](int lvl) {
    if (compact || indent <= 0) return;
    out << '\n' << std::string(static_cast<size_t>(indent * lvl), ' ');
  };
  switch (v.kind) {
    case Value::Kind::Null: out << "null"; break;
    case Value::Kind::Bool: out << (v.boolean ? "true" : "false"); break;
    case Value::Kind::Int: out << v.integer; break;
    case Value::Kind::Float: write_double(out, v.real); break;
    case Value::Kind::String: write_string(out, v.text); break;
    case Value::Kind::Array: {
      bool scalars_only = true;
      for (const Value& item : v.items)
        scalars_only = scalars_only && item.kind != Value::Kind::Array && item.kind != Value::Kind::Object;
      const bool inner_compact = compact || scalars_only;
      out << '[';
      for (size_t i = 0; i < v.items.size(); ++i) {
        if (i) out << (inner_compact ? ", " : ",");
        if (!inner_compact) newline(level + 1);
        write_value(out, v.items[i], indent, level + 1, inner_compact);
      }
      if (!inner_compact && !v.items.empty()) newline(level);
      out << ']';
      break;
    }
    case Value::Kind::Object: {
      out << '{';
      for (size_t i = 0; i < v.members.size(); ++i) {
        if (i) out << (compact ? ", " : ",");
        newline(level + 1);
        write_string(out, v.members[i].first);
        out << ": ";
        write_value(out, v.members[i].second, indent, level + 1, compact);
      }
      if (!v.members.empty()) newline(level);
      out << '}';
      break;
    }
  }
}

struct DtypeName {
  const char* name;
  at::ScalarType type;
};
constexpr DtypeName kDtypes[] = {{"float64", at::kDouble}, {"float32", at::kFloat}, {"int64", at::kLong},
                                 {"int32", at::kInt},      {"bool", at::kBool}};

void flatten(const Value& v, const std::vector<int64_t>& shape, size_t dim, std::vector<const Value*>& out,
             const std::string& what) {
  if (dim == shape.size()) {
    if (!v.is_number() && v.kind != Value::Kind::Bool)
      throw Error(what + ": data holds a non-number where the shape expects an element");
    out.push_back(&v);
    return;
  }
  if (v.kind != Value::Kind::Array || static_cast<int64_t>(v.items.size()) != shape[dim])
    throw Error(what + ": data does not match the shape at dimension " + std::to_string(dim));
  for (const Value& item : v.items) flatten(item, shape, dim + 1, out, what);
}

Value nest(const at::Tensor& t, const std::vector<int64_t>& index_prefix) {
  const int64_t dim = static_cast<int64_t>(index_prefix.size());
  if (dim == t.dim()) {
    Value v;
    at::Tensor element = t;
    for (int64_t i : index_prefix) element = element.select(0, i);
    if (t.scalar_type() == at::kBool) {
      v.kind = Value::Kind::Bool;
      v.boolean = element.item<bool>();
    } else if (at::isFloatingType(t.scalar_type())) {
      v.kind = Value::Kind::Float;
      v.real = element.item<double>();
    } else {
      v.kind = Value::Kind::Int;
      v.integer = element.item<int64_t>();
    }
    return v;
  }
  Value array = Value::make_array();
  std::vector<int64_t> index = index_prefix;
  index.push_back(0);
  for (int64_t i = 0; i < t.size(dim); ++i) {
    index.back() = i;
    array.items.push_back(nest(t, index));
  }
  return array;
}

}  // namespace

std::string decode_string(const char* text, size_t size, size_t& pos) {
  std::string out;
  for (;;) {
    if (pos >= size) throw StringSyntaxError("unterminated string");
    const unsigned char c = static_cast<unsigned char>(text[pos++]);
    if (c == '"') return out;
    if (c < 0x20) throw StringSyntaxError("control character in string");
    if (c != '\\') {
      out += char(c);
      continue;
    }
    if (pos >= size) throw StringSyntaxError("unterminated escape");
    const char e = text[pos++];
    switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': append_utf8(out, parse_code_point(text, size, pos)); break;
      default: throw StringSyntaxError(std::string("invalid escape '\\") + e + "'");
    }
  }
}

Value parse(const std::string& text, const std::string& source) { return Parser(text, source).parse_document(); }

Value parse_file(const std::string& path) {
  return parse(read_whole_file(path, "JSON file"), path);
}

void write(std::ostream& out, const Value& value, int indent) {
  write_value(out, value, indent, 0, false);
  out << '\n';
}

at::Tensor to_tensor(const Value& value, const std::string& what) {
  const Value* dtype = value.find("dtype");
  const Value* shape = value.find("shape");
  const Value* data = value.find("data");
  if (!dtype || dtype->kind != Value::Kind::String || !shape || shape->kind != Value::Kind::Array || !data)
    throw Error(what + ": expected an object with \"dtype\" (string), \"shape\" (list) and \"data\"");
  const DtypeName* entry = nullptr;
  for (const DtypeName& d : kDtypes)
    if (dtype->text == d.name) entry = &d;
  if (!entry) throw Error(what + ": unsupported dtype \"" + dtype->text + "\"");
  std::vector<int64_t> sizes;
  for (const Value& s : shape->items) {
    if (s.kind != Value::Kind::Int || s.integer < 0) throw Error(what + ": shape entries must be integers >= 0");
    sizes.push_back(s.integer);
  }
  std::vector<const Value*> elements;
  flatten(*data, sizes, 0, elements, what);
  at::Tensor flat = at::empty({static_cast<int64_t>(elements.size())}, at::TensorOptions().dtype(at::kDouble));
  at::Tensor flat_int = at::empty({static_cast<int64_t>(elements.size())}, at::TensorOptions().dtype(at::kLong));
  const bool floating = at::isFloatingType(entry->type);
  auto* real = flat.data_ptr<double>();
  auto* integer = flat_int.data_ptr<int64_t>();
  for (size_t i = 0; i < elements.size(); ++i) {
    const Value& e = *elements[i];
    if (!floating && e.kind == Value::Kind::Float)
      throw Error(what + ": dtype " + dtype->text + " but data holds a float");
    real[i] = e.kind == Value::Kind::Bool ? (e.boolean ? 1.0 : 0.0) : e.as_double();
    integer[i] = e.kind == Value::Kind::Bool ? e.boolean : e.integer;
  }
  // Integers go through int64 so values beyond 2^53 stay exact.
  return (floating ? flat : flat_int).to(entry->type).reshape(sizes);
}

Value from_tensor(const at::Tensor& tensor) {
  const at::Tensor t = tensor.detach().cpu().contiguous();
  const char* dtype_name = nullptr;
  for (const DtypeName& d : kDtypes)
    if (d.type == t.scalar_type()) dtype_name = d.name;
  if (!dtype_name) throw Error(std::string("cannot write a tensor of dtype ") + c10::toString(t.scalar_type()));
  Value v = Value::make_object();
  v.set("dtype", Value::make_string(dtype_name));
  Value shape = Value::make_array();
  for (int64_t s : t.sizes()) {
    Value n;
    n.kind = Value::Kind::Int;
    n.integer = s;
    shape.items.push_back(n);
  }
  v.set("shape", shape);
  v.set("data", nest(t.to(at::isFloatingType(t.scalar_type()) ? at::kDouble : t.scalar_type()), {}));
  return v;
}

}  // namespace klay::json
