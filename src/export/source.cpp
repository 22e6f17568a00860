#include "export/source.hpp"

#include <torch/torch.h>

#include <cstring>
#include <filesystem>

#include "core/error.hpp"
#include "io/sha256.hpp"

namespace adaptdiff::exporter {

namespace {
void check_labels(const io::StoreReader& reader, const Source& s) {
  const torch::Tensor identity = reader.read_int64(io::store_dataset::kIdentity).contiguous();
  const torch::Tensor sample = reader.read_int64(io::store_dataset::kSampleIndex).contiguous();
  const int64_t* id = identity.data_ptr<int64_t>();
  const int64_t* k = sample.data_ptr<int64_t>();
  const int64_t per = s.per_identity();
  for (int64_t r = 0; r < s.rows(); ++r) {
    if (s.done[static_cast<size_t>(r)] == 0 || (id[r] == r / per && k[r] == r % per)) continue;
    throw InputError("export: '" + s.path + "' row " + std::to_string(r) + " has identity " + std::to_string(id[r]) +
                     " and sample_index " + std::to_string(k[r]) + "; expected " + std::to_string(r / per) + " and " +
                     std::to_string(r % per) + " (adaptdiff's row order s = i*K + k)");
  }
}

std::string fingerprint_of(const io::StoreReader& reader) {
  std::string text;
  for (const auto& [key, value] : reader.string_attributes()) {
    if (key.rfind("fingerprint.", 0) == 0) text += key + "=" + value + "\n";
  }
  return text.empty() ? "none" : io::sha256_bytes(text);
}
}  // namespace

Source open_source(const std::string& path, std::optional<io::StoreReader>& reader_out) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw InputError("export: the input file '" + path + "' does not exist or is not a regular file");
  }
  Source s;
  s.path = path;
  try {
    io::StoreReader reader(path);
    s.layout = reader.layout();
    const torch::Tensor record = reader.read_int64(io::store_dataset::kSampleChecksum).contiguous();
    const int64_t* c = record.data_ptr<int64_t>();
    s.done.resize(static_cast<size_t>(s.rows()));
    s.done_before.assign(static_cast<size_t>(s.identities()) + 1, 0);
    for (int64_t r = 0; r < s.rows(); ++r) {
      s.done[static_cast<size_t>(r)] = c[r] != 0 ? 1 : 0;
      s.done_before[static_cast<size_t>(r / s.per_identity()) + 1] += c[r] != 0 ? 1 : 0;
    }
    for (size_t i = 1; i < s.done_before.size(); ++i) s.done_before[i] += s.done_before[i - 1];
    check_labels(reader, s);
    s.fingerprint = fingerprint_of(reader);
    reader_out.emplace(std::move(reader));
  } catch (const InputError&) {
    throw;
  } catch (const Error& e) {
    // Whatever keeps the file from being read as an adaptdiff output is bad input (exit code 2).
    throw InputError(std::string("export: cannot use '") + path + "' as input: " + e.what());
  }
  if (s.done_total() == 0) {
    throw InputError("export: '" + path + "' holds no done sample (every sample_checksum is 0): nothing to export");
  }
  return s;
}

std::vector<Image> read_rows(const io::StoreReader& reader, int64_t row_begin, int64_t row_end) {
  const torch::Tensor t = reader.read_images(row_begin, row_end).contiguous();
  const auto& l = reader.layout();
  std::vector<Image> out;
  const size_t bytes = static_cast<size_t>(l.height * l.width * 3);
  for (int64_t r = 0; r < row_end - row_begin; ++r) {
    Image img(static_cast<int>(l.width), static_cast<int>(l.height));
    std::memcpy(img.rgb.data(), t.data_ptr<uint8_t>() + static_cast<size_t>(r) * bytes, bytes);
    out.push_back(std::move(img));
  }
  return out;
}

}  // namespace adaptdiff::exporter
