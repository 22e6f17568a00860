#include "model/checkpoint.hpp"

#include <caffe2/serialize/inline_container.h>

#include <filesystem>
#include <unordered_map>

#include "core/error.hpp"
#include "model/pickle_machine.hpp"
#include "model/zip_check.hpp"

namespace adaptdiff::model {
namespace {

using pickle::describe;
using pickle::Kind;
using pickle::ValuePtr;

/// The pickled root dict of a torch.save archive as (name, tensor) pairs in file order; `int_keys` also accepts
/// integer keys (as decimal text). NumPy array values are converted like tensors.
StateDict read_dict(const std::string& path, bool int_keys) {
  const std::string where = std::string(int_keys ? "read_array_dict" : "read_state_dict") + ": '" + path + "'";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw ModelError(where + ": no such file (or not a regular file)");
  try {
    // miniz allocates what the zip's directory claims: check every claim against the file first.
    const uint64_t record_bytes = check_zip_sizes(path, std::filesystem::file_size(path));
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (reader.hasRecord("byteorder")) {
      at::DataPtr bo;
      size_t n = 0;
      std::tie(bo, n) = reader.getRecord("byteorder");
      const std::string order(static_cast<const char*>(bo.get()), n);
      if (order != "little") throw ModelError(where + ": byteorder '" + order + "' is not supported (need little)");
    }
    if (!reader.hasRecord("data.pkl"))
      throw ModelError(where + ": the archive has no data.pkl record (not a torch.save checkpoint?)");
    at::DataPtr pkl_ptr;
    size_t pkl_size = 0;
    std::tie(pkl_ptr, pkl_size) = reader.getRecord("data.pkl");
    const std::string pkl(static_cast<const char*>(pkl_ptr.get()), pkl_size);
    pkl_ptr.clear();

    const pickle::Unpickled unpickled = pickle::unpickle(path, pkl, reader, record_bytes);  // owns every value
    const ValuePtr& root = unpickled.root;
    if (root->kind != Kind::kDict)
      throw ModelError(where + ": the pickle root is a " + describe(*root) + ", expected a dict of name -> tensor");

    StateDict out;
    out.reserve(root->dict.size());
    std::unordered_map<std::string, size_t> index;
    for (const auto& [k, v] : root->dict) {
      if (k->kind != Kind::kString && !(int_keys && k->kind == Kind::kInt))
        throw ModelError(where + ": the root dict has a key of type " + describe(*k) + ", expected str" +
                         (int_keys ? " or int" : ""));
      const std::string key = k->kind == Kind::kInt ? std::to_string(k->i) : k->s;
      if (v->kind != Kind::kTensor)
        throw ModelError(where + ": entry '" + key + "' is a " + describe(*v) + ", expected a tensor or array");
      auto it = index.find(key);
      if (it != index.end()) {  // Python dict semantics: a later SETITEM replaces the value in place
        out[it->second].second = v->tensor;
      } else {
        index.emplace(key, out.size());
        out.emplace_back(key, v->tensor);
      }
    }
    return out;
  } catch (const ModelError&) {
    throw;
  } catch (const c10::Error& e) {
    throw ModelError(where + ": not a readable PyTorch zip checkpoint (" + e.what_without_backtrace() + ")");
  } catch (const std::exception& e) {
    throw ModelError(where + ": not a readable PyTorch zip checkpoint (" + e.what() + ")");
  }
}

}  // namespace

StateDict read_state_dict(const std::string& path) { return read_dict(path, /*int_keys=*/false); }

StateDict read_array_dict(const std::string& path) { return read_dict(path, /*int_keys=*/true); }

}  // namespace adaptdiff::model
