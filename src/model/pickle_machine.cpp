#include "model/pickle_machine.hpp"

#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>

#include "core/error.hpp"
#include "model/numpy_pickle.hpp"

namespace adaptdiff::model::pickle {
namespace {

// ---- pickle values ------------------------------------------------------------------------------------------

/// torch.<X>Storage global -> element type. Ref: torch/storage.py (typed legacy storage classes).
std::optional<torch::ScalarType> storage_dtype(const std::string& global) {
  static const std::map<std::string, torch::ScalarType> table = {
      {"torch.FloatStorage", torch::kFloat},     {"torch.DoubleStorage", torch::kDouble},
      {"torch.HalfStorage", torch::kHalf},       {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kLong},       {"torch.IntStorage", torch::kInt},
      {"torch.ShortStorage", torch::kShort},     {"torch.CharStorage", torch::kChar},
      {"torch.ByteStorage", torch::kByte},       {"torch.BoolStorage", torch::kBool},
  };
  auto it = table.find(global);
  if (it == table.end()) return std::nullopt;
  return it->second;
}

// ---- the pickle machine -------------------------------------------------------------------------------------

/// Runs the supported pickle subset over `data.pkl`; storages are fetched from `reader` lazily, one record per
/// tensor, so the peak memory is the tensors plus one record.
class Unpickler {
 public:
  /// `record_bytes`: the archive's data (sum of its records' sizes) bounds the bytes of the rebuilt tensors.
  Unpickler(const std::string& path, const std::string& pkl, caffe2::serialize::PyTorchStreamReader& reader,
            uint64_t record_bytes)
      : path_(path), data_(pkl), reader_(reader), bytes_left_(kViewBudget * record_bytes + (uint64_t{1} << 20)) {}
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;
  /// Values may reference each other in cycles (a list appended to itself through the memo) and nest deeply:
  /// break them unless take_values() handed them on (see Unpickled).
  ~Unpickler() { Unpickled::break_links(all_); }

  /// Every value made so far (for Unpickled, which then owns breaking their links).
  std::vector<ValuePtr> take_values() { return std::move(all_); }

  ValuePtr run() {
    while (true) {
      if (pos_ >= data_.size()) fail("truncated pickle: no STOP opcode before the end of data.pkl");
      op_pos_ = pos_;
      const uint8_t op = static_cast<uint8_t>(data_[pos_++]);
      if (op == '.') {                                               // STOP
        if (stack_.size() != 1) fail("STOP with " + std::to_string(stack_.size()) + " values on the stack");
        return stack_.back();
      }
      if (scalar_op(op) || container_op(op) || object_op(op)) continue;
      std::ostringstream os;
      os << "unsupported pickle opcode 0x" << std::hex << static_cast<int>(op);
      if (op >= 0x20 && op < 0x7f) os << " ('" << static_cast<char>(op) << "')";
      fail(os.str());
    }
  }

 private:
  /// Framing, memo, strings, bytes, numbers, booleans and None. Returns false for any other opcode.
  bool scalar_op(uint8_t op) {
    switch (op) {
      case 0x80: read_bytes(1); return true;                             // PROTO
      case 0x95: read_bytes(8); return true;                             // FRAME (framing is only a hint)
      case 'X': push_string(read_uint(4)); return true;                  // BINUNICODE
      case 0x8c: push_string(read_uint(1)); return true;                 // SHORT_BINUNICODE
      case 0x8d: push_string(read_uint(8)); return true;                 // BINUNICODE8
      case 'q': memo_put(read_uint(1)); return true;                     // BINPUT
      case 'r': memo_put(read_uint(4)); return true;                     // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); return true;                    // MEMOIZE
      case 'h': push(memo_get(read_uint(1))); return true;               // BINGET
      case 'j': push(memo_get(read_uint(4))); return true;               // LONG_BINGET
      case 'J': push_int(static_cast<int32_t>(read_uint(4))); return true;   // BININT (signed 32 bit)
      case 'K': push_int(static_cast<int64_t>(read_uint(1))); return true;   // BININT1
      case 'M': push_int(static_cast<int64_t>(read_uint(2))); return true;   // BININT2
      case 0x8a: push_int(read_long1()); return true;                    // LONG1
      case 'G': {                                                  // BINFLOAT (big-endian double)
        const std::string b = read_bytes(8);
        uint64_t bits = 0;
        for (char c : b) bits = (bits << 8) | static_cast<uint8_t>(c);
        auto v = Value::make(Kind::kFloat);
        std::memcpy(&v->f, &bits, sizeof bits);
        push(v);
        return true;
      }
      case 0x88: case 0x89: {                                      // NEWTRUE / NEWFALSE
        auto v = Value::make(Kind::kBool);
        v->b = op == 0x88;
        push(v);
        return true;
      }
      case 'N': push(Value::make(Kind::kNone)); return true;             // NONE
      case 'C': push_bytes(read_uint(1)); return true;                   // SHORT_BINBYTES
      case 'B': push_bytes(read_uint(4)); return true;                   // BINBYTES
      case 0x8e: push_bytes(read_uint(8)); return true;                  // BINBYTES8
      default:
        return false;
    }
  }

  /// Marks, tuples, lists and dicts. Returns false for any other opcode.
  bool container_op(uint8_t op) {
    switch (op) {
      case '}': push(Value::make(Kind::kDict)); return true;             // EMPTY_DICT
      case ']': push(Value::make(Kind::kList)); return true;             // EMPTY_LIST
      case ')': push(Value::make(Kind::kTuple)); return true;            // EMPTY_TUPLE
      case '(': marks_.push_back(stack_.size()); return true;            // MARK
      case 't': {                                                  // TUPLE
        auto v = Value::make(Kind::kTuple);
        v->items = pop_to_mark();
        push(v);
        return true;
      }
      case 0x85: case 0x86: case 0x87: {                           // TUPLE1/2/3
        const size_t n = op - 0x84;
        need_stack(n);
        auto v = Value::make(Kind::kTuple);
        v->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
        stack_.resize(stack_.size() - n);
        push(v);
        return true;
      }
      case 's': {                                                  // SETITEM
        ValuePtr value = pop();
        ValuePtr key = pop();
        dict_top()->dict.emplace_back(key, value);
        return true;
      }
      case 'u': {                                                  // SETITEMS
        std::vector<ValuePtr> kv = pop_to_mark();
        if (kv.size() % 2 != 0) fail("SETITEMS with an odd number of items");
        Value* d = dict_top();
        for (size_t k = 0; k < kv.size(); k += 2) d->dict.emplace_back(kv[k], kv[k + 1]);
        return true;
      }
      case 'a': {                                                  // APPEND
        ValuePtr value = pop();
        list_top()->items.push_back(value);
        return true;
      }
      case 'e': {                                                  // APPENDS
        std::vector<ValuePtr> vs = pop_to_mark();
        Value* l = list_top();
        l->items.insert(l->items.end(), vs.begin(), vs.end());
        return true;
      }
      default:
        return false;
    }
  }

  /// Globals, persistent ids (storages), REDUCE and BUILD. Returns false for any other opcode.
  bool object_op(uint8_t op) {
    switch (op) {
      case 'c': {                                                  // GLOBAL "module\nname\n"
        const std::string module = read_line();
        const std::string name = read_line();
        push(make_global(module, name));
        return true;
      }
      case 0x93: {                                                 // STACK_GLOBAL
        ValuePtr name = pop();
        ValuePtr module = pop();
        if (module->kind != Kind::kString || name->kind != Kind::kString)
          fail("STACK_GLOBAL expects two strings");
        push(make_global(module->s, name->s));
        return true;
      }
      case 'Q': push(persistent_load(pop())); return true;               // BINPERSID
      case 'R': {                                                  // REDUCE
        ValuePtr args = pop();
        ValuePtr callable = pop();
        push(reduce(*callable, *args));
        return true;
      }
      case 'b': {                                                  // BUILD
        ValuePtr state = pop();
        need_stack(1);
        build(*stack_.back(), *state);
        return true;
      }
      default:
        return false;
    }
  }

  std::string where() const { return "pickle of '" + path_ + "': data.pkl offset " + std::to_string(op_pos_); }

  [[noreturn]] void fail(const std::string& what) const { throw ModelError(where() + ": " + what); }

  std::string read_bytes(uint64_t n) {
    if (n > data_.size() - pos_) fail("truncated pickle (needs " + std::to_string(n) + " more bytes)");
    std::string out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }

  /// Little-endian unsigned integer of `n` bytes.
  uint64_t read_uint(int n) {
    const std::string b = read_bytes(static_cast<uint64_t>(n));
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = (v << 8) | static_cast<uint8_t>(b[static_cast<size_t>(k)]);
    return v;
  }

  /// LONG1: length byte + little-endian two's complement; only values that fit int64 are accepted.
  int64_t read_long1() {
    const uint64_t n = read_uint(1);
    if (n > 8) fail("LONG1 integer of " + std::to_string(n) + " bytes does not fit int64");
    if (n == 0) return 0;
    const std::string b = read_bytes(n);
    uint64_t v = 0;
    for (int k = static_cast<int>(n) - 1; k >= 0; --k) v = (v << 8) | static_cast<uint8_t>(b[static_cast<size_t>(k)]);
    if (n < 8 && (static_cast<uint8_t>(b[n - 1]) & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<int64_t>(v);
  }

  std::string read_line() {
    const size_t end = data_.find('\n', pos_);
    if (end == std::string::npos) fail("truncated pickle (GLOBAL without newline)");
    std::string out = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }

  void push(ValuePtr v) {
    if (all_.empty() || all_.back() != v) all_.push_back(v);
    stack_.push_back(std::move(v));
  }

  void push_int(int64_t i) {
    auto v = Value::make(Kind::kInt);
    v->i = i;
    push(v);
  }

  void push_string(uint64_t n) {
    auto v = Value::make(Kind::kString);
    v->s = read_bytes(n);
    push(v);
  }

  void need_stack(size_t n) {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() < floor + n) fail("stack underflow");
  }

  ValuePtr pop() {
    need_stack(1);
    ValuePtr v = stack_.back();
    stack_.pop_back();
    return v;
  }

  std::vector<ValuePtr> pop_to_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> out(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return out;
  }

  Value* dict_top() {
    need_stack(1);
    if (stack_.back()->kind != Kind::kDict)
      fail(std::string("SETITEM(S) on a ") + kind_name(stack_.back()->kind) + ", expected a dict");
    return stack_.back().get();
  }

  Value* list_top() {
    need_stack(1);
    if (stack_.back()->kind != Kind::kList)
      fail(std::string("APPEND(S) on a ") + kind_name(stack_.back()->kind) + ", expected a list");
    return stack_.back().get();
  }

  void memo_put(uint64_t idx) {
    need_stack(1);
    memo_[idx] = stack_.back();
  }

  ValuePtr memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo key " + std::to_string(idx) + " not defined");
    return it->second;
  }

  ValuePtr make_global(const std::string& module, const std::string& name) {
    static const std::set<std::string> known = {
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
        "torch.jit._pickle.restore_type_tag", "_codecs.encode", "__builtin__.bytes", "builtins.bytes",
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype"};
    const std::string full = module + "." + name;
    if (!known.count(full) && !storage_dtype(full)) {
      fail("unsupported global '" + full +
           "' (only OrderedDict, _rebuild_tensor_v2, _rebuild_parameter, restore_type_tag, torch.*Storage, bytes "
           "and NumPy arrays are understood)");
    }
    auto v = Value::make(Kind::kGlobal);
    v->s = full;
    return v;
  }

  /// Counts `bytes` of rebuilt tensor or array data against the budget of kViewBudget x the archive's data.
  void charge(uint64_t bytes) {
    if (bytes > bytes_left_)
      fail("the tensors rebuilt so far and this one (" + std::to_string(bytes) + " bytes) exceed " +
           std::to_string(kViewBudget) + " x the archive's data (shared storages rebuilt over and over?)");
    bytes_left_ -= bytes;
  }

  void push_bytes(uint64_t n) {
    auto v = Value::make(Kind::kBytes);
    v->s = read_bytes(n);
    push(v);
  }

  /// BUILD: an OrderedDict's `_metadata` (not needed), a numpy.dtype's (version, byteorder, ...) or a
  /// numpy.ndarray's (version, shape, dtype, fortran_order, data).
  void build(Value& target, const Value& state) {
    if (target.kind == Kind::kDict) return;
    if (target.kind == Kind::kDtype) {
      if (state.kind != Kind::kTuple || state.items.size() < 2 || state.items[1]->kind != Kind::kString ||
          state.items[1]->s.size() != 1)
        fail("numpy.dtype state is not (version, byteorder, ...)");
      target.byteorder = state.items[1]->s[0];
      return;
    }
    if (target.kind != Kind::kNdarray) fail(std::string("BUILD on a ") + kind_name(target.kind) + " is not supported");
    const auto& a = state.items;
    if (state.kind != Kind::kTuple || a.size() != 5 || a[2]->kind != Kind::kDtype || a[3]->kind != Kind::kBool ||
        (a[4]->kind != Kind::kBytes && a[4]->kind != Kind::kString))
      fail("numpy.ndarray state is not (version, shape, dtype, fortran_order, bytes)");
    charge(a[4]->s.size());
    target.tensor = pickle::numpy_array(int_tuple(*a[1], "shape"), a[2]->s, a[2]->byteorder, a[3]->b, a[4]->s,
                                        where());
    target.kind = Kind::kTensor;
  }

  /// ('storage', torch.<T>Storage, key, location, numel) -> lazy storage reference.
  ValuePtr persistent_load(const ValuePtr& pid) {
    const auto& it = pid->items;
    if (pid->kind != Kind::kTuple || it.size() != 5 || it[0]->kind != Kind::kString || it[0]->s != "storage" ||
        it[1]->kind != Kind::kGlobal || it[2]->kind != Kind::kString || it[4]->kind != Kind::kInt) {
      fail("unsupported persistent id (expected ('storage', torch.<T>Storage, key, location, numel))");
    }
    auto dtype = storage_dtype(it[1]->s);
    if (!dtype) fail("persistent id names '" + it[1]->s + "', not a torch.<T>Storage class");
    auto v = Value::make(Kind::kStorage);
    v->dtype = *dtype;
    v->s = it[2]->s;
    v->numel = it[4]->i;
    if (v->numel < 0 || v->numel > (int64_t{1} << 58)) fail("storage size " + std::to_string(v->numel) + " out of range");
    return v;
  }

  std::vector<int64_t> int_tuple(const Value& v, const char* what) {
    if (v.kind != Kind::kTuple) fail(std::string("_rebuild_tensor_v2: ") + what + " is a " + kind_name(v.kind));
    std::vector<int64_t> out;
    for (const auto& e : v.items) {
      if (e->kind != Kind::kInt) fail(std::string("_rebuild_tensor_v2: non-integer entry in ") + what);
      out.push_back(e->i);
    }
    return out;
  }

  /// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]).
  /// Ref: torch/_utils.py. The result is copied out of the record into its own contiguous buffer.
  torch::Tensor rebuild_tensor(const Value& args) {
    const auto& a = args.items;
    if (a.size() < 6 || a.size() > 7 || a[0]->kind != Kind::kStorage || a[1]->kind != Kind::kInt)
      fail("_rebuild_tensor_v2: unexpected arguments (expected storage, offset, size, stride, ...)");
    const Value& st = *a[0];
    const int64_t offset = a[1]->i;
    const std::vector<int64_t> size = int_tuple(*a[2], "size");
    const std::vector<int64_t> stride = int_tuple(*a[3], "stride");
    if (size.size() != stride.size()) fail("_rebuild_tensor_v2: size and stride differ in length");

    // Checked arithmetic: sizes and strides come from the file. A view touches elements up to `last` and holds
    // `count` elements; both must fit the storage (an expand()-style view with more elements than its storage is
    // refused: state dicts hold none, and it would let a few bytes of pickle allocate without bound).
    if (offset < 0) fail("_rebuild_tensor_v2: negative storage offset");
    int64_t last = offset;  // highest element index touched
    int64_t count = 1;
    for (size_t d = 0; d < size.size(); ++d) {
      if (size[d] < 0 || stride[d] < 0) fail("_rebuild_tensor_v2: negative size or stride");
      if (size[d] == 0) return torch::empty(size, torch::TensorOptions().dtype(st.dtype));
    }
    for (size_t d = 0; d < size.size(); ++d) {
      int64_t reach = 0;
      if (__builtin_mul_overflow(size[d] - 1, stride[d], &reach) || __builtin_add_overflow(last, reach, &last) ||
          __builtin_mul_overflow(count, size[d], &count)) {
        fail("_rebuild_tensor_v2: size and stride overflow 64-bit indices");
      }
    }
    if (last >= st.numel)
      fail("tensor view (offset " + std::to_string(offset) + ", last element " + std::to_string(last) +
           ") exceeds its storage of " + std::to_string(st.numel) + " elements");
    if (count > st.numel)
      fail("tensor view of " + std::to_string(count) + " elements is larger than its storage of " +
           std::to_string(st.numel) + " elements (overlapping views are not supported; save t.contiguous())");

    const std::string record = "data/" + st.s;
    if (!reader_.hasRecord(record)) fail("storage record '" + record + "' is missing from the archive");
    const size_t elem = c10::elementSize(st.dtype);
    const uint64_t storage_bytes = static_cast<uint64_t>(st.numel) * elem;  // numel < 2^63 / 16: no overflow
    const uint64_t view_bytes = static_cast<uint64_t>(count) * elem;
    charge(view_bytes);
    at::DataPtr ptr;
    size_t nbytes = 0;
    std::tie(ptr, nbytes) = reader_.getRecord(record);
    if (nbytes < storage_bytes)
      fail("storage record '" + record + "' holds " + std::to_string(nbytes) + " bytes, expected " +
           std::to_string(storage_bytes));
    torch::Tensor storage = torch::from_blob(ptr.get(), {st.numel}, torch::TensorOptions().dtype(st.dtype));
    return storage.as_strided(size, stride, offset).clone(at::MemoryFormat::Contiguous);
  }

  ValuePtr reduce(const Value& callable, const Value& args) {
    if (callable.kind != Kind::kGlobal) fail(std::string("REDUCE on a ") + kind_name(callable.kind));
    if (args.kind != Kind::kTuple) fail("REDUCE arguments are not a tuple");
    if (callable.s == "collections.OrderedDict") {
      if (!args.items.empty()) fail("OrderedDict(...) with constructor arguments is not supported");
      return Value::make(Kind::kDict);
    }
    if (callable.s == "torch._utils._rebuild_tensor_v2") {
      auto v = Value::make(Kind::kTensor);
      v->tensor = rebuild_tensor(args);
      return v;
    }
    if (callable.s == "torch._utils._rebuild_parameter") {  // Parameter(data, requires_grad, hooks)
      if (args.items.empty() || args.items[0]->kind != Kind::kTensor) fail("_rebuild_parameter without a tensor");
      return args.items[0];
    }
    if (callable.s == "_codecs.encode") {  // protocol 2's bytes: encode(latin-1 text, 'latin1')
      if (args.items.size() != 2 || args.items[0]->kind != Kind::kString || args.items[1]->kind != Kind::kString ||
          args.items[1]->s != "latin1")
        fail("_codecs.encode expects (str, 'latin1')");
      auto v = Value::make(Kind::kBytes);
      v->s = pickle::latin1_bytes(args.items[0]->s, where());
      return v;
    }
    if (callable.s == "__builtin__.bytes" || callable.s == "builtins.bytes") {
      if (!args.items.empty()) fail("bytes(...) with arguments is not supported");
      return Value::make(Kind::kBytes);
    }
    if (callable.s == "numpy.core.multiarray._reconstruct" || callable.s == "numpy._core.multiarray._reconstruct") {
      if (args.items.size() != 3 || args.items[0]->kind != Kind::kGlobal || args.items[0]->s != "numpy.ndarray")
        fail("_reconstruct expects (numpy.ndarray, shape, typecode)");
      return Value::make(Kind::kNdarray);
    }
    if (callable.s == "numpy.dtype") {  // dtype(code, align, copy); the byte order comes with BUILD
      if (args.items.empty() || args.items[0]->kind != Kind::kString) fail("numpy.dtype expects a type code");
      auto v = Value::make(Kind::kDtype);
      v->s = args.items[0]->s;
      return v;
    }
    if (callable.s == "torch.jit._pickle.restore_type_tag") {  // (value, "Dict[str, Tensor]") from LibTorch
      if (args.items.size() != 2) fail("restore_type_tag expects (value, type string)");
      return args.items[0];
    }
    fail("cannot call '" + callable.s + "'");
  }

  std::string path_;
  const std::string& data_;
  caffe2::serialize::PyTorchStreamReader& reader_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValuePtr> memo_;
  std::vector<ValuePtr> all_;  // every value made, see ~Unpickler
  static constexpr uint64_t kViewBudget = 4;
  uint64_t bytes_left_;
};


}  // namespace

Unpickled unpickle(const std::string& path, const std::string& pkl, caffe2::serialize::PyTorchStreamReader& reader,
                   uint64_t record_bytes) {
  Unpickler machine(path, pkl, reader, record_bytes);
  Unpickled out;
  out.root = machine.run();
  out.values = machine.take_values();
  return out;
}

}  // namespace adaptdiff::model::pickle
