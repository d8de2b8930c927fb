// torch.save archives. The pickle in `<record>/data.pkl` is interpreted by a small stack machine
// that knows only the opcodes torch.save emits and only a whitelist of globals, so a weights
// file can never make us run code. What torch 1.13 writes for a state_dict (protocol 2):
//   collections.OrderedDict() filled by SETITEMS with name -> tensor, then BUILD with
//   {"_metadata": ...}; each tensor is torch._utils._rebuild_tensor_v2(storage, offset, size,
//   stride, requires_grad, backward_hooks) where storage is a persistent id
//   ("storage", torch.<T>Storage, key, location, numel) naming the raw bytes `<record>/data/<key>`.
#include <ATen/ATen.h>

#include <cstring>
#include <map>
#include <memory>
#include <unordered_map>

#include "base/error.hpp"
#include "weights/readers.hpp"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "torch.save storages are little-endian; a big-endian host would need byte swapping here"
#endif

namespace klay {
namespace {

enum class PyKind { None, Bool, Int, Float, String, Tuple, List, Dict, Global, Storage, Tensor };

// The callables and classes a state_dict pickle may name; any other GLOBAL is refused.
enum class PyGlobal { OrderedDict, RebuildTensorV2, RebuildParameter, StorageClass };

struct PyObject;
using PyRef = std::shared_ptr<PyObject>;

struct PyObject {
  PyKind kind = PyKind::None;
  int64_t integer = 0;                        // Int, Bool
  double real = 0;                            // Float
  std::string text;                           // String; Global: "module.name"
  std::vector<PyRef> items;                   // Tuple, List
  std::vector<std::pair<PyRef, PyRef>> dict;  // Dict (an OrderedDict is a Dict here)
  PyGlobal global = PyGlobal::OrderedDict;    // Global
  at::ScalarType storage_dtype = at::kFloat;  // Global StorageClass
  at::Tensor tensor;                          // Storage (1-D, the whole storage), Tensor
};

const char* kind_name(PyKind kind) {
  switch (kind) {
    case PyKind::None: return "None";
    case PyKind::Bool: return "bool";
    case PyKind::Int: return "int";
    case PyKind::Float: return "float";
    case PyKind::String: return "str";
    case PyKind::Tuple: return "tuple";
    case PyKind::List: return "list";
    case PyKind::Dict: return "dict";
    case PyKind::Global: return "global";
    case PyKind::Storage: return "storage";
    case PyKind::Tensor: return "tensor";
  }
  return "?";
}

PyRef make(PyKind kind) {
  auto object = std::make_shared<PyObject>();
  object->kind = kind;
  return object;
}

PyRef make_int(int64_t value) {
  PyRef object = make(PyKind::Int);
  object->integer = value;
  return object;
}

// torch.<Name>Storage -> element type.
const std::map<std::string, at::ScalarType>& storage_classes() {
  static const std::map<std::string, at::ScalarType> classes = {
      {"DoubleStorage", at::kDouble}, {"FloatStorage", at::kFloat},   {"HalfStorage", at::kHalf},
      {"BFloat16Storage", at::kBFloat16}, {"LongStorage", at::kLong}, {"IntStorage", at::kInt},
      {"ShortStorage", at::kShort},   {"CharStorage", at::kChar},     {"ByteStorage", at::kByte},
      {"BoolStorage", at::kBool}};
  return classes;
}

class Unpickler {
 public:
  Unpickler(ByteView pickle, const ZipArchive& zip, std::string record, std::string path)
      : pickle_(pickle), zip_(zip), record_(std::move(record)), path_(std::move(path)) {}

  PyRef run();
  int protocol() const { return protocol_; }

 private:
  [[noreturn]] void fail(const std::string& message) const {
    throw Error(path_ + ": " + record_ + "/data.pkl at byte " + std::to_string(opcode_offset_) + ": " + message);
  }
  ByteView take(size_t count);
  uint8_t take_u8() { return take(1).data[0]; }
  uint32_t take_u32();
  std::string take_line();
  void push(PyRef object) { stack_.push_back(std::move(object)); }
  PyRef pop();
  PyRef& top();
  std::vector<PyRef> pop_to_mark();
  PyRef tuple_of(std::vector<PyRef> items);
  void memo_put(uint32_t index) { memo_[index] = top(); }
  PyRef memo_get(uint32_t index) const;
  void set_items(PyRef& dict, std::vector<PyRef>& flat);

  PyRef make_global(const std::string& module, const std::string& name);
  PyRef persistent_load(const PyRef& pid);
  PyRef reduce(const PyRef& callable, const PyRef& args);
  PyRef rebuild_tensor(const std::vector<PyRef>& args);
  std::vector<int64_t> int_tuple(const PyRef& object, const char* what) const;

  ByteView pickle_;
  const ZipArchive& zip_;
  std::string record_;
  std::string path_;
  size_t position_ = 0;
  size_t opcode_offset_ = 0;
  int protocol_ = 0;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, PyRef> memo_;
  std::map<std::string, at::Tensor> storages_;  // by key: views of one storage share it
};

ByteView Unpickler::take(size_t count) {
  if (pickle_.size - position_ < count) fail("pickle ends unexpectedly (truncated data.pkl)");
  const ByteView view{pickle_.data + position_, count};
  position_ += count;
  return view;
}

uint32_t Unpickler::take_u32() {
  const uint8_t* p = take(4).data;
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

std::string Unpickler::take_line() {
  const size_t start = position_;
  while (position_ < pickle_.size && pickle_.data[position_] != '\n') ++position_;
  if (position_ == pickle_.size) fail("pickle ends inside a GLOBAL name (truncated data.pkl)");
  return std::string(reinterpret_cast<const char*>(pickle_.data + start), position_++ - start);
}

PyRef Unpickler::pop() {
  if (stack_.empty() || (!marks_.empty() && marks_.back() == stack_.size())) fail("pickle stack underflow");
  PyRef object = std::move(stack_.back());
  stack_.pop_back();
  return object;
}

PyRef& Unpickler::top() {
  if (stack_.empty() || (!marks_.empty() && marks_.back() == stack_.size())) fail("pickle stack underflow");
  return stack_.back();
}

std::vector<PyRef> Unpickler::pop_to_mark() {
  if (marks_.empty()) fail("pickle uses a MARK that was never set");
  const size_t mark = marks_.back();
  marks_.pop_back();
  std::vector<PyRef> items(std::make_move_iterator(stack_.begin() + mark), std::make_move_iterator(stack_.end()));
  stack_.resize(mark);
  return items;
}

PyRef Unpickler::tuple_of(std::vector<PyRef> items) {
  PyRef tuple = make(PyKind::Tuple);
  tuple->items = std::move(items);
  return tuple;
}

PyRef Unpickler::memo_get(uint32_t index) const {
  const auto found = memo_.find(index);
  if (found == memo_.end()) fail("pickle reads memo slot " + std::to_string(index) + " that was never written");
  return found->second;
}

void Unpickler::set_items(PyRef& dict, std::vector<PyRef>& flat) {
  if (dict->kind != PyKind::Dict) fail(std::string("SETITEM(S) on a ") + kind_name(dict->kind) + ", expected a dict");
  if (flat.size() % 2 != 0) fail("SETITEMS with an odd number of keys and values");
  for (size_t i = 0; i < flat.size(); i += 2) dict->dict.emplace_back(std::move(flat[i]), std::move(flat[i + 1]));
}

PyRef Unpickler::make_global(const std::string& module, const std::string& name) {
  PyRef global = make(PyKind::Global);
  global->text = module + "." + name;
  if (module == "collections" && name == "OrderedDict") {
    global->global = PyGlobal::OrderedDict;
  } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
    global->global = PyGlobal::RebuildTensorV2;
  } else if (module == "torch._utils" && name == "_rebuild_parameter") {
    global->global = PyGlobal::RebuildParameter;
  } else if (module == "torch" && storage_classes().count(name)) {
    global->global = PyGlobal::StorageClass;
    global->storage_dtype = storage_classes().at(name);
  } else {
    fail("refusing pickle global '" + global->text +
         "': a state_dict file may only reference collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
         "torch._utils._rebuild_parameter and torch.<Type>Storage");
  }
  return global;
}

// ("storage", torch.<T>Storage, key, location, numel) -> the whole storage as a 1-D tensor.
PyRef Unpickler::persistent_load(const PyRef& pid) {
  const auto& f = pid->items;
  if (pid->kind != PyKind::Tuple || f.size() != 5 || f[0]->kind != PyKind::String || f[0]->text != "storage" ||
      f[1]->kind != PyKind::Global || f[1]->global != PyGlobal::StorageClass || f[2]->kind != PyKind::String ||
      f[3]->kind != PyKind::String || f[4]->kind != PyKind::Int)
    fail("unsupported persistent id (expected ('storage', torch.<Type>Storage, key, location, numel))");
  const at::ScalarType dtype = f[1]->storage_dtype;
  const std::string& key = f[2]->text;
  const int64_t numel = f[4]->integer;

  PyRef storage = make(PyKind::Storage);
  const auto cached = storages_.find(key);
  if (cached != storages_.end()) {
    if (cached->second.scalar_type() != dtype || cached->second.numel() != numel)
      fail("storage '" + key + "' is referenced with two different types or sizes");
    storage->tensor = cached->second;
    return storage;
  }
  const std::string entry_name = record_ + "/data/" + key;
  const ZipArchive::Entry* entry = zip_.find(entry_name);
  if (!entry) fail("storage '" + key + "' is missing from the archive (no entry '" + entry_name + "')");
  const ByteView bytes = zip_.read(*entry);
  const size_t element_size = c10::elementSize(dtype);
  if (numel < 0 || bytes.size / element_size != uint64_t(numel) || bytes.size % element_size != 0)
    fail("storage '" + key + "' holds " + std::to_string(bytes.size) + " bytes, expected " + std::to_string(numel) +
         " elements of " + std::to_string(element_size) + " bytes");
  at::Tensor tensor = at::empty({numel}, at::TensorOptions().dtype(dtype));
  if (bytes.size > 0) std::memcpy(tensor.data_ptr(), bytes.data, bytes.size);
  storages_.emplace(key, tensor);
  storage->tensor = tensor;
  return storage;
}

std::vector<int64_t> Unpickler::int_tuple(const PyRef& object, const char* what) const {
  if (object->kind != PyKind::Tuple) fail(std::string("tensor ") + what + " is a " + kind_name(object->kind) + ", expected a tuple");
  std::vector<int64_t> values;
  for (const PyRef& item : object->items) {
    if (item->kind != PyKind::Int || item->integer < 0) fail(std::string("tensor ") + what + " holds a non-integer or negative entry");
    values.push_back(item->integer);
  }
  return values;
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
PyRef Unpickler::rebuild_tensor(const std::vector<PyRef>& args) {
  if ((args.size() != 6 && args.size() != 7) || args[0]->kind != PyKind::Storage || args[1]->kind != PyKind::Int)
    fail("_rebuild_tensor_v2 called with unexpected arguments");
  const at::Tensor& storage = args[0]->tensor;
  const int64_t offset = args[1]->integer;
  const std::vector<int64_t> size = int_tuple(args[2], "size");
  const std::vector<int64_t> stride = int_tuple(args[3], "stride");
  if (size.size() != stride.size()) fail("tensor size and stride have different lengths");

  // The view must stay inside its storage: offset + sum((size_i - 1) * stride_i) < storage size.
  int64_t numel = 1, last = offset;
  bool overflow = offset < 0;
  for (size_t d = 0; d < size.size(); ++d) {
    overflow |= __builtin_mul_overflow(numel, size[d], &numel);
    if (size[d] > 0) {
      int64_t reach = 0;
      overflow |= __builtin_mul_overflow(size[d] - 1, stride[d], &reach);
      overflow |= __builtin_add_overflow(last, reach, &last);
    }
  }
  PyRef tensor = make(PyKind::Tensor);
  if (overflow || (numel > 0 && last >= storage.numel()) || (numel == 0 && offset > storage.numel()))
    fail("tensor view (offset " + std::to_string(offset) + ") reaches outside its storage of " +
         std::to_string(storage.numel()) + " elements");
  if (numel == 0) {
    tensor->tensor = at::empty(size, storage.options());
  } else {
    tensor->tensor = storage.as_strided(size, stride, offset).clone(at::MemoryFormat::Contiguous);
  }
  return tensor;
}

PyRef Unpickler::reduce(const PyRef& callable, const PyRef& args) {
  if (callable->kind != PyKind::Global) fail(std::string("REDUCE on a ") + kind_name(callable->kind) + ", expected a callable");
  if (args->kind != PyKind::Tuple) fail("REDUCE arguments are not a tuple");
  switch (callable->global) {
    case PyGlobal::OrderedDict:
      if (!args->items.empty()) fail("collections.OrderedDict called with arguments");
      return make(PyKind::Dict);
    case PyGlobal::RebuildTensorV2:
      return rebuild_tensor(args->items);
    case PyGlobal::RebuildParameter:  // (data, requires_grad, backward_hooks): the data is what we keep
      if (args->items.size() != 3 || args->items[0]->kind != PyKind::Tensor) fail("_rebuild_parameter called with unexpected arguments");
      return args->items[0];
    case PyGlobal::StorageClass:
      break;
  }
  fail("pickle calls '" + callable->text + "', which is not callable in a state_dict");
}

PyRef Unpickler::run() {
  while (true) {
    opcode_offset_ = position_;
    const uint8_t opcode = take_u8();
    switch (opcode) {
      case 0x80:  // PROTO
        protocol_ = take_u8();
        if (protocol_ > 5) fail("unsupported pickle protocol " + std::to_string(protocol_));
        break;
      case 0x95:  // FRAME (protocol 4): a size hint only
        take(8);
        break;
      case '.': {  // STOP
        PyRef result = pop();
        if (!stack_.empty() || !marks_.empty()) fail("pickle stops with leftover stack items");
        return result;
      }
      case '(':  // MARK
        marks_.push_back(stack_.size());
        break;
      case '}':  // EMPTY_DICT
        push(make(PyKind::Dict));
        break;
      case ']':  // EMPTY_LIST
        push(make(PyKind::List));
        break;
      case ')':  // EMPTY_TUPLE
        push(tuple_of({}));
        break;
      case 't':  // TUPLE
        push(tuple_of(pop_to_mark()));
        break;
      case 0x85:  // TUPLE1
      case 0x86:  // TUPLE2
      case 0x87: {  // TUPLE3
        std::vector<PyRef> items(opcode - 0x84);
        for (size_t i = items.size(); i-- > 0;) items[i] = pop();
        push(tuple_of(std::move(items)));
        break;
      }
      case 'X':    // BINUNICODE
      case 0x8c:   // SHORT_BINUNICODE
      case 0x8d: {  // BINUNICODE8
        uint64_t length = 0;
        if (opcode == 0x8c) {
          length = take_u8();
        } else if (opcode == 'X') {
          length = take_u32();
        } else {
          length = take_u32();
          length |= uint64_t(take_u32()) << 32;
        }
        if (length > pickle_.size) fail("string length runs past the end of data.pkl");
        const ByteView text = take(size_t(length));
        PyRef string = make(PyKind::String);
        string->text.assign(reinterpret_cast<const char*>(text.data), text.size);
        push(std::move(string));
        break;
      }
      case 'c': {  // GLOBAL "module\nname\n"
        const std::string module = take_line();
        const std::string name = take_line();
        push(make_global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        const PyRef name = pop(), module = pop();
        if (name->kind != PyKind::String || module->kind != PyKind::String) fail("STACK_GLOBAL needs two strings");
        push(make_global(module->text, name->text));
        break;
      }
      case 'Q':  // BINPERSID
        push(persistent_load(pop()));
        break;
      case 'R': {  // REDUCE
        const PyRef args = pop(), callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 'b': {  // BUILD: only the OrderedDict's attributes ({"_metadata": ...}), which we drop
        const PyRef state = pop();
        if (top()->kind != PyKind::Dict || state->kind != PyKind::Dict)
          fail(std::string("BUILD on a ") + kind_name(top()->kind) + " is not supported in a state_dict");
        break;
      }
      case 's': {  // SETITEM
        std::vector<PyRef> pair(2);
        pair[1] = pop();
        pair[0] = pop();
        set_items(top(), pair);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<PyRef> flat = pop_to_mark();
        set_items(top(), flat);
        break;
      }
      case 'a': {  // APPEND
        PyRef item = pop();
        if (top()->kind != PyKind::List) fail("APPEND to a non-list");
        top()->items.push_back(std::move(item));
        break;
      }
      case 'e': {  // APPENDS
        std::vector<PyRef> items = pop_to_mark();
        if (top()->kind != PyKind::List) fail("APPENDS to a non-list");
        for (PyRef& item : items) top()->items.push_back(std::move(item));
        break;
      }
      case 'J':  // BININT
        push(make_int(int32_t(take_u32())));
        break;
      case 'K':  // BININT1
        push(make_int(take_u8()));
        break;
      case 'M': {  // BININT2
        const uint8_t* p = take(2).data;
        push(make_int(p[0] | (p[1] << 8)));
        break;
      }
      case 0x8a: {  // LONG1: little-endian two's complement of n bytes
        const size_t length = take_u8();
        if (length > 8) fail("integer wider than 64 bits");
        const ByteView bytes = take(length);
        uint64_t value = 0;
        for (size_t i = 0; i < length; ++i) value |= uint64_t(bytes.data[i]) << (8 * i);
        if (length > 0 && length < 8 && (bytes.data[length - 1] & 0x80)) value |= ~uint64_t(0) << (8 * length);
        push(make_int(int64_t(value)));
        break;
      }
      case 0x88:  // NEWTRUE
      case 0x89: {  // NEWFALSE
        PyRef boolean = make(PyKind::Bool);
        boolean->integer = opcode == 0x88;
        push(std::move(boolean));
        break;
      }
      case 'N':  // NONE
        push(make(PyKind::None));
        break;
      case 'G': {  // BINFLOAT: big-endian IEEE double
        const uint8_t* p = take(8).data;
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
        PyRef real = make(PyKind::Float);
        std::memcpy(&real->real, &bits, sizeof bits);
        push(std::move(real));
        break;
      }
      case 'q':  // BINPUT
        memo_put(take_u8());
        break;
      case 'r':  // LONG_BINPUT
        memo_put(take_u32());
        break;
      case 0x94:  // MEMOIZE
        memo_put(uint32_t(memo_.size()));
        break;
      case 'h':  // BINGET
        push(memo_get(take_u8()));
        break;
      case 'j':  // LONG_BINGET
        push(memo_get(take_u32()));
        break;
      default: {
        char text[8];
        std::snprintf(text, sizeof text, "0x%02x", opcode);
        fail(std::string("unsupported pickle opcode ") + text + " (not something torch.save writes for a state_dict)");
      }
    }
  }
}

}  // namespace

StateDict read_torch_save(const ZipArchive& zip, const std::string& record, const std::string& path) {
  const ZipArchive::Entry* entry = zip.find(record + "/data.pkl");
  if (!entry) throw Error(path + ": torch.save archive without '" + record + "/data.pkl'");
  // torch >= 2.1 records the byte order of the storages; older archives are little-endian.
  if (const ZipArchive::Entry* byteorder = zip.find(record + "/byteorder")) {
    const ByteView order = zip.read(*byteorder);
    if (std::string(reinterpret_cast<const char*>(order.data), order.size) != "little")
      throw Error(path + ": storages are not little-endian ('" + record + "/byteorder'); re-save on a little-endian machine");
  }
  Unpickler unpickler(zip.read(*entry), zip, record, path);
  const PyRef root = unpickler.run();
  if (root->kind != PyKind::Dict)
    throw Error(path + ": the pickled object is a " + kind_name(root->kind) + ", expected a state_dict (OrderedDict of tensors)");

  StateDict result;
  result.format = "torch.save (zip, pickle protocol " + std::to_string(unpickler.protocol()) + ")";
  std::unordered_map<std::string, size_t> index_of;
  for (const auto& [key, value] : root->dict) {
    if (key->kind != PyKind::String) throw Error(path + ": state_dict has a " + std::string(kind_name(key->kind)) + " key");
    if (value->kind != PyKind::Tensor)
      throw Error(path + ": state_dict entry '" + key->text + "' is a " + kind_name(value->kind) + ", not a tensor");
    // A repeated key replaces the earlier value in place, as in Python.
    const auto [slot, inserted] = index_of.emplace(key->text, result.entries.size());
    if (inserted) {
      result.entries.emplace_back(key->text, value->tensor);
    } else {
      result.entries[slot->second].second = value->tensor;
    }
  }
  return result;
}

}  // namespace klay
