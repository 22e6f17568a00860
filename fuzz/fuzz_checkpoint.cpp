// Fuzz target: model::read_array_dict, the zip + pickle reader of checkpoints and context dicts
// (src/model/checkpoint.cpp, pickle_machine.cpp, numpy_pickle.cpp); read_state_dict is the same machine.
// Two modes, chosen by the first byte of the input:
//   'P' + bytes  the bytes become `archive/data.pkl` of a well-formed zip (written with LibTorch's
//                PyTorchStreamWriter, so CRCs are right) that also holds eight 256-byte storage records
//                data/0 ... data/7: this reaches the pickle machine with every mutation;
//   otherwise    the whole input is the checkpoint file (zip structure, records, sizes claimed by headers).
// Expected: ModelError for bad files, never a crash, a hang or an allocation beyond what the file holds.
#include <caffe2/serialize/inline_container.h>

#include <cstdint>
#include <string>

#include "core/error.hpp"
#include "fuzz_support.hpp"
#include "model/checkpoint.hpp"

namespace {

void write_pickle_archive(const std::string& path, const uint8_t* pkl, size_t size) {
  caffe2::serialize::PyTorchStreamWriter w(path);
  w.writeRecord("data.pkl", pkl, size);
  w.writeRecord("byteorder", "little", 6);
  std::string storage(256, '\0');
  for (size_t i = 0; i < storage.size(); ++i) storage[i] = static_cast<char>(i * 37 + 11);
  for (int k = 0; k < 8; ++k) w.writeRecord("data/" + std::to_string(k), storage.data(), storage.size());
  w.writeEndOfFile();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = adaptdiff::fuzz::temp_path("input.pt");
  if (size > 0 && data[0] == 'P') {
    write_pickle_archive(path, data + 1, size - 1);
  } else {
    adaptdiff::fuzz::write_file(path, data, size);
  }
  try {
    const adaptdiff::model::StateDict sd = adaptdiff::model::read_array_dict(path);
    for (const auto& [name, t] : sd) (void)t.sum();  // touch every element
  } catch (const adaptdiff::Error&) {
  }
  return 0;
}
