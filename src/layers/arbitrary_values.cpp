// ArbitraryModule: config values as Python objects and as ATen schema arguments
// (docs/layers.md#arbitrary-module).
#include "layers/arbitrary_values.hpp"

#include <map>

#include "base/error.hpp"

namespace klay::arbitrary {

using Kind = ConfigValue::Kind;

std::string describe(const ConfigValue& value) {
  switch (value.kind) {
    case Kind::Null: return "null";
    case Kind::Bool: return value.boolean ? "true" : "false";
    case Kind::Int: return std::to_string(value.integer);
    case Kind::Float: return value.text.empty() ? std::to_string(value.real) : value.text;
    case Kind::String: return "'" + value.text + "'";
    case Kind::List: return "a list";
    case Kind::Map: return "a mapping";
  }
  return "?";
}

std::string key_name(const ConfigValue& key) {
  return key.kind == Kind::Int ? std::to_string(key.integer) : key.text;
}

c10::IValue python_value(const ConfigValue& value) {
  switch (value.kind) {
    case Kind::Null: return c10::IValue();
    case Kind::Bool: return c10::IValue(value.boolean);
    case Kind::Int: return c10::IValue(value.integer);
    case Kind::Float: return c10::IValue(value.real);
    case Kind::String: return c10::IValue(value.text);
    case Kind::List: {
      bool all_int = true, all_number = true;
      for (const ConfigValue& item : value.items) {
        all_int = all_int && item.kind == Kind::Int;
        all_number = all_number && (item.kind == Kind::Int || item.kind == Kind::Float);
      }
      if (all_int) {
        c10::List<int64_t> list;
        for (const ConfigValue& item : value.items) list.push_back(item.integer);
        return list;
      }
      if (all_number) {
        c10::List<double> list;
        for (const ConfigValue& item : value.items)
          list.push_back(item.kind == Kind::Int ? static_cast<double>(item.integer) : item.real);
        return list;
      }
      break;
    }
    case Kind::Map: break;
  }
  throw Error("cannot use " + describe(value) + " here");
}

namespace {

const std::map<std::string, at::ScalarType>& scalar_type_names() {
  static const std::map<std::string, at::ScalarType> names = {
      {"float64", at::kDouble}, {"double", at::kDouble},   {"float32", at::kFloat},   {"float", at::kFloat},
      {"float16", at::kHalf},   {"half", at::kHalf},       {"bfloat16", at::kBFloat16}, {"int64", at::kLong},
      {"long", at::kLong},      {"int32", at::kInt},       {"int", at::kInt},         {"int16", at::kShort},
      {"short", at::kShort},    {"int8", at::kChar},       {"uint8", at::kByte},      {"bool", at::kBool},
      {"complex64", at::kComplexFloat}, {"cfloat", at::kComplexFloat},
      {"complex128", at::kComplexDouble}, {"cdouble", at::kComplexDouble}};
  return names;
}

std::string strip_torch_prefix(const std::string& s) { return s.rfind("torch.", 0) == 0 ? s.substr(6) : s; }

}  // namespace

bool convert_to_schema_type(const ConfigValue& n, const c10::TypePtr& type, c10::IValue& out, std::string& why) {
  using c10::TypeKind;
  const TypeKind kind = type->kind();
  if (kind == TypeKind::OptionalType) {
    if (n.kind == Kind::Null) {
      out = c10::IValue();
      return true;
    }
    return convert_to_schema_type(n, type->castRaw<c10::OptionalType>()->getElementType(), out, why);
  }
  auto reject = [&](const char* expected) {
    why = "expected " + std::string(expected) + ", got " + describe(n);
    return false;
  };
  switch (kind) {
    case TypeKind::IntType:
    case TypeKind::SymIntType:
      if (n.kind == Kind::Int) out = n.integer;
      else if (n.kind == Kind::Bool) out = static_cast<int64_t>(n.boolean);
      else return reject("an int");
      return true;
    case TypeKind::FloatType:
      if (n.kind == Kind::Int) out = static_cast<double>(n.integer);
      else if (n.kind == Kind::Float) out = n.real;
      else return reject("a float");
      return true;
    case TypeKind::BoolType:
      if (n.kind != Kind::Bool) return reject("a bool");
      out = n.boolean;
      return true;
    case TypeKind::NumberType:
      if (n.kind == Kind::Int) out = at::Scalar(n.integer);
      else if (n.kind == Kind::Float) out = at::Scalar(n.real);
      else if (n.kind == Kind::Bool) out = at::Scalar(n.boolean);
      else return reject("a number");
      return true;
    case TypeKind::StringType:
      if (n.kind != Kind::String) return reject("a string");
      out = n.text;
      return true;
    case TypeKind::ScalarTypeType: {
      if (n.kind != Kind::String) return reject("a dtype such as \"torch.float64\"");
      auto it = scalar_type_names().find(strip_torch_prefix(n.text));
      if (it == scalar_type_names().end()) return reject("a dtype such as \"torch.float64\"");
      out = static_cast<int64_t>(it->second);
      return true;
    }
    case TypeKind::LayoutType:
      if (n.kind != Kind::String || strip_torch_prefix(n.text) != "strided") return reject("torch.strided");
      out = static_cast<int64_t>(at::kStrided);
      return true;
    case TypeKind::MemoryFormatType: {
      static const std::map<std::string, at::MemoryFormat> formats = {
          {"contiguous_format", at::MemoryFormat::Contiguous},
          {"preserve_format", at::MemoryFormat::Preserve},
          {"channels_last", at::MemoryFormat::ChannelsLast}};
      auto it = n.kind == Kind::String ? formats.find(strip_torch_prefix(n.text)) : formats.end();
      if (it == formats.end()) return reject("a memory format such as \"torch.contiguous_format\"");
      out = static_cast<int64_t>(it->second);
      return true;
    }
    case TypeKind::DeviceObjType:
      if (n.kind != Kind::String) return reject("a device such as \"cpu\"");
      try {
        out = c10::Device(n.text);
      } catch (const c10::Error&) {
        return reject("a device such as \"cpu\"");
      }
      return true;
    case TypeKind::ListType: {
      const c10::TypePtr element = type->castRaw<c10::ListType>()->getElementType();
      const TypeKind ek = element->kind();
      // Python accepts one int where an int list is expected (e.g. dim=1 for int[1] dim).
      std::vector<const ConfigValue*> items;
      if (n.kind == Kind::List)
        for (const ConfigValue& item : n.items) items.push_back(&item);
      else if (n.kind == Kind::Int && (ek == TypeKind::IntType || ek == TypeKind::SymIntType)) items.push_back(&n);
      else return reject("a list");
      auto convert_items = [&](auto list, auto unwrap) {
        c10::IValue item;
        for (const ConfigValue* i : items) {
          if (!convert_to_schema_type(*i, element, item, why)) return false;
          list.push_back(unwrap(item));
        }
        out = list;
        return true;
      };
      if (ek == TypeKind::IntType || ek == TypeKind::SymIntType)
        return convert_items(c10::List<int64_t>(), [](const c10::IValue& v) { return v.toInt(); });
      if (ek == TypeKind::FloatType)
        return convert_items(c10::List<double>(), [](const c10::IValue& v) { return v.toDouble(); });
      if (ek == TypeKind::BoolType)
        return convert_items(c10::List<bool>(), [](const c10::IValue& v) { return v.toBool(); });
      return reject(("a " + type->annotation_str() + " (not expressible in YAML)").c_str());
    }
    default:
      return reject((type->annotation_str() + " (not expressible in YAML)").c_str());
  }
}

bool is_tensor_like(const c10::TypePtr& type) {
  c10::TypePtr t = type;
  if (t->kind() == c10::TypeKind::OptionalType) t = t->castRaw<c10::OptionalType>()->getElementType();
  if (t->kind() == c10::TypeKind::ListType) t = t->castRaw<c10::ListType>()->getElementType();
  if (t->kind() == c10::TypeKind::OptionalType) t = t->castRaw<c10::OptionalType>()->getElementType();
  return t->kind() == c10::TypeKind::TensorType;
}

at::Tensor as_tensor(const c10::IValue& v, const std::string& what) {
  if (!v.isTensor()) throw Error(what + " must be a tensor, got " + v.tagKind());
  return v.toTensor();
}

}  // namespace klay::arbitrary
