#pragma once
// The pickle machine behind the checkpoint and context-file readers (internal to src/model): the subset of
// Python's pickle protocol (0-5 opcodes used by protocol 2-4 files) that `torch.save` writes for a dict of
// tensors or NumPy arrays. Anything outside it is reported as a ModelError, never guessed at.
// Ref: Python's Lib/pickletools.py (opcodes), torch/_utils.py (_rebuild_tensor_v2), numpy's array __reduce__.
#include <caffe2/serialize/inline_container.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace adaptdiff::model::pickle {

/// Python objects the supported subset of pickle can produce.
enum class Kind {
  kNone, kBool, kInt, kFloat, kString, kBytes, kTuple, kList, kDict, kGlobal, kStorage, kTensor,
  kDtype,    ///< numpy.dtype: `s` = type code ("f4"), `byteorder` from its BUILD state
  kNdarray,  ///< numpy.ndarray before its BUILD state arrives (becomes kTensor then)
};

/// "None", "int", "str", "tensor", ...
const char* kind_name(Kind k);

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  Kind kind = Kind::kNone;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;          ///< str / bytes; "module.name" for a global; storage record key; dtype code
  char byteorder = '=';   ///< dtype only: '<', '>', '|' or '=' (native)
  std::vector<ValuePtr> items;                       ///< tuple / list
  std::vector<std::pair<ValuePtr, ValuePtr>> dict;   ///< dict entries in insertion order
  torch::ScalarType dtype = torch::kFloat;           ///< storage element type
  int64_t numel = 0;                                 ///< storage element count (from the persistent id)
  torch::Tensor tensor;                              ///< rebuilt tensor or NumPy array (CPU, contiguous)

  static ValuePtr make(Kind k) {
    auto v = std::make_shared<Value>();
    v->kind = k;
    return v;
  }
};

/// Short description for messages: the kind, plus the text of a str or the name of a global.
std::string describe(const Value& v);

/// The root object of a pickle, and every value made while running it. Values may reference each other in
/// cycles (a list appended to itself through the memo) or nest deeply: the destructor empties every container
/// first, so that no destructor recurses and no cycle leaks. Copy what you need (tensors) before it goes.
struct Unpickled {
  ValuePtr root;
  std::vector<ValuePtr> values;
  Unpickled() = default;
  Unpickled(Unpickled&&) = default;
  Unpickled& operator=(Unpickled&&) = delete;
  Unpickled(const Unpickled&) = delete;
  Unpickled& operator=(const Unpickled&) = delete;
  ~Unpickled() { break_links(values); }
  /// Empties the items and dict of every value in `values`, then `values` itself.
  static void break_links(std::vector<ValuePtr>& values);
};

/// Runs the pickle `pkl` (the `data.pkl` record of the archive `path`) and returns its root object.
/// Tensor storages are fetched from `reader` lazily, one record per tensor; the bytes of all rebuilt tensors and
/// NumPy arrays together may not exceed 4 x `record_bytes` (the archive's data) + 1 MiB, so that shared storages
/// cannot be rebuilt without bound. Throws ModelError naming `path` and the byte offset for anything outside the
/// supported subset, malformed, or over that budget.
Unpickled unpickle(const std::string& path, const std::string& pkl, caffe2::serialize::PyTorchStreamReader& reader,
                   uint64_t record_bytes);

}  // namespace adaptdiff::model::pickle
