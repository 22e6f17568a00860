#include "contexts/import.hpp"

#include <cmath>
#include <fstream>

#include "core/error.hpp"
#include "io/identities.hpp"
#include "model/checkpoint.hpp"

namespace adaptdiff::contexts {
namespace {

std::string first_bytes(const std::string& path, size_t n) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError("adaptdiff-contexts import: cannot open '" + path + "' (does it exist and is it readable?)");
  std::string head(n, '\0');
  f.read(head.data(), static_cast<std::streamsize>(n));
  head.resize(static_cast<size_t>(f.gcount()));
  return head;
}

/// Checks one dict value and returns it as float32 [width].
torch::Tensor context_row(const std::string& path, const std::string& key, const torch::Tensor& value, int64_t width) {
  const std::string where = "adaptdiff-contexts import: '" + path + "': identity '" + key + "'";
  if (!value.is_floating_point())
    throw InputError(where + " holds " + std::string(c10::toString(value.scalar_type())) +
                     " values; expected a float array of " + std::to_string(width));
  const bool row_shape = value.dim() == 1 || (value.dim() == 2 && value.size(0) == 1);
  if (!row_shape || value.size(-1) != width) {
    std::string shape;
    for (const int64_t d : value.sizes()) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
    throw InputError(where + " has shape [" + shape + "]; expected [" + std::to_string(width) + "]");
  }
  const torch::Tensor row = value.reshape({width}).to(torch::kFloat);
  if (!torch::isfinite(row).all().item<bool>()) throw InputError(where + " holds NaN or Inf values");
  if (row.to(torch::kDouble).norm().item<double>() == 0.0) throw InputError(where + " is all zeros (no direction)");
  return row;
}

ImportedContexts import_dict(const std::string& path, int64_t width) {
  const model::StateDict dict = model::read_array_dict(path);
  if (dict.empty()) throw InputError("adaptdiff-contexts import: '" + path + "' holds an empty dict");
  ImportedContexts out;
  out.format = "torch.save dict";
  out.contexts = torch::empty({static_cast<int64_t>(dict.size()), width}, torch::kFloat);
  for (size_t i = 0; i < dict.size(); ++i) {
    out.names.push_back(dict[i].first);
    out.contexts[static_cast<int64_t>(i)].copy_(context_row(path, dict[i].first, dict[i].second, width));
  }
  return out;
}

ImportedContexts import_npy(const std::string& path, int64_t width) {
  io::ContextSource source;
  source.kind = io::ContextSource::kNpy;
  source.path = path;
  const int64_t rows = io::context_rows(source);
  if (rows < 1) throw InputError("adaptdiff-contexts import: '" + path + "' holds no rows");
  // Validated (width, finite, non-zero rows, naming the row) by the job's own reader.
  const torch::Tensor raw = io::read_contexts(source, 0, rows, width);
  ImportedContexts out;
  out.format = ".npy array (rows normalised)";
  const torch::Tensor x = raw.to(torch::kDouble);
  out.contexts = (x / x.norm(2, {1}, /*keepdim=*/true)).to(torch::kFloat).contiguous();
  for (int64_t i = 0; i < rows; ++i) out.names.push_back(std::to_string(i));
  return out;
}

}  // namespace

ImportedContexts import_contexts(const std::string& path, int64_t width) {
  const std::string head = first_bytes(path, 6);
  if (head.rfind("PK\x03\x04", 0) == 0) return import_dict(path, width);
  if (head == "\x93NUMPY") return import_npy(path, width);
  throw InputError("adaptdiff-contexts import: '" + path +
                   "' is neither a torch.save archive (zip) nor a NumPy .npy array; expected one of the original "
                   "project's context files");
}

}  // namespace adaptdiff::contexts
