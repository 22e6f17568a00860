#include "io/identities.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.hpp"
#include "io/h5_handle.hpp"
#include "io/npy.hpp"

namespace adaptdiff::io {
namespace {

namespace fs = std::filesystem;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string range_text(int64_t a, int64_t b) { return "[" + std::to_string(a) + ", " + std::to_string(b) + ")"; }

// ---- HDF5 -------------------------------------------------------------------------------------------

struct H5Contexts {
  h5::Handle file;
  h5::Handle dataset;
  int64_t rows = 0;
  int64_t width = 0;
  bool is_double = false;
};

std::string dataset_path(const ContextSource& s) {
  return s.dataset.empty() || s.dataset[0] == '/' ? s.dataset : "/" + s.dataset;
}

// Opens the file and the contexts dataset and checks that it is a 2-D float32/float64 dataset.
H5Contexts open_h5(const ContextSource& src, const std::string& op) {
  H5Contexts c;
  c.file = h5::open_file_serial(src.path, H5F_ACC_RDONLY, src.file_locking, op);
  const std::string ds = dataset_path(src);
  const h5::Site site(op, src.path, ds);

  // Walk the path so that a missing group reads as "not found" instead of an HDF5 error.
  std::string prefix;
  std::stringstream parts(ds);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part.empty()) continue;
    prefix += "/" + part;
    if (ADAPTDIFF_H5(site, H5Lexists, c.file.get(), prefix.c_str(), H5P_DEFAULT) == 0) {
      throw InputError(op + ": dataset '" + ds + "' not found in '" + src.path + "' ('" + prefix +
                       "' does not exist); the root group holds: " + h5::list_group(c.file.get(), "/", site) +
                       "\n---> HINT: name the dataset as '<file>.h5:/path/to/dataset' in the context source");
    }
  }
  if (prefix.empty()) throw InputError(op + ": empty dataset path for '" + src.path + "'");
  {
    h5::Handle obj = ADAPTDIFF_H5_OPEN(site, H5Oclose, H5Oopen, c.file.get(), ds.c_str(), H5P_DEFAULT);
    const H5I_type_t kind = h5::object_kind(obj.get(), site);
    if (kind != H5I_DATASET) {
      throw InputError(op + ": '" + ds + "' in '" + src.path + "' is not a dataset; it holds: " +
                       h5::list_group(c.file.get(), ds, site));
    }
  }
  c.dataset = ADAPTDIFF_H5_OPEN(site, H5Dclose, H5Dopen2, c.file.get(), ds.c_str(), H5P_DEFAULT);

  const auto dims = h5::dataset_dims(c.dataset.get(), site);
  if (dims.size() != 2) {
    std::string shape;
    for (size_t i = 0; i < dims.size(); ++i) shape += (i ? ", " : "") + std::to_string(dims[i]);
    throw InputError(op + ": dataset '" + ds + "' in '" + src.path + "' is " + std::to_string(dims.size()) +
                     "-D [" + shape + "]; expected a 2-D [identities, width] array");
  }
  h5::Handle type = ADAPTDIFF_H5_OPEN(site, H5Tclose, H5Dget_type, c.dataset.get());
  const H5T_class_t cls = h5::type_class(type.get(), site);
  const size_t size = h5::type_size(type.get(), site);
  if (cls != H5T_FLOAT || (size != 4 && size != 8)) {
    throw InputError(op + ": dataset '" + ds + "' in '" + src.path + "' has type " +
                     h5::type_name(type.get(), site) + "; expected float32 or float64");
  }
  c.rows = static_cast<int64_t>(dims[0]);
  c.width = static_cast<int64_t>(dims[1]);
  c.is_double = size == 8;
  return c;
}

torch::Tensor read_h5_rows(const ContextSource& src, int64_t begin, int64_t end, const std::string& op) {
  H5Contexts c = open_h5(src, op);
  if (end > c.rows) {
    throw InputError(op + ": rows " + range_text(begin, end) + " requested but '" + describe(src) + "' has only " +
                     std::to_string(c.rows) + " rows");
  }
  const int64_t n = end - begin;
  torch::Tensor out = torch::empty({n, c.width}, c.is_double ? torch::kFloat64 : torch::kFloat32);
  if (n == 0 || c.width == 0) return out.to(torch::kFloat32);

  const h5::Site site(op, src.path, dataset_path(src));
  h5::Handle fspace = ADAPTDIFF_H5_OPEN(site, H5Sclose, H5Dget_space, c.dataset.get());
  const hsize_t start[2] = {static_cast<hsize_t>(begin), 0};
  const hsize_t count[2] = {static_cast<hsize_t>(n), static_cast<hsize_t>(c.width)};
  ADAPTDIFF_H5(site, H5Sselect_hyperslab, fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
  h5::Handle mspace = ADAPTDIFF_H5_OPEN(site, H5Sclose, H5Screate_simple, 2, count, nullptr);
  ADAPTDIFF_H5(site, H5Dread, c.dataset.get(), c.is_double ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, mspace.get(),
               fspace.get(), H5P_DEFAULT, out.data_ptr());
  return c.is_double ? out.to(torch::kFloat32) : out;
}

// ---- .npy ---------------------------------------------------------------------------------------------

struct NpyContexts {
  NpyHeader header;
  NpyFloatType type;
  int64_t rows = 0;
  int64_t width = 0;
};

// Opens the header and checks: a 2-D float16/32/64 array (any byte order, C or Fortran order) whose data part
// is complete.
NpyContexts open_npy(const ContextSource& src, const std::string& op) {
  std::error_code ec;
  if (!fs::exists(src.path, ec)) throw IoError(op + ": file '" + src.path + "' does not exist");
  NpyContexts c;
  c.header = read_npy_header(src.path);
  const NpyHeader& h = c.header;
  const auto type = npy_float_type(h.descr);
  if (!type) {
    throw InputError(op + ": '" + src.path + "' has dtype " + npy_dtype_text(h.descr) +
                     "; expected float16, float32 or float64 ('<f2', '<f4', '<f8', any byte order)" +
                     "\n---> HINT: save with np.save(path, x.astype(np.float32))");
  }
  c.type = *type;
  if (h.shape.size() != 2) {
    std::string shape;
    for (size_t i = 0; i < h.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(h.shape[i]);
    throw InputError(op + ": '" + src.path + "' holds a " + std::to_string(h.shape.size()) + "-D array (" + shape +
                     "); expected a 2-D [identities, width] array");
  }
  c.rows = h.shape[0];
  c.width = h.shape[1];
  const int64_t max_elems = std::numeric_limits<int64_t>::max() / 16;
  if (c.width > 0 && c.rows > max_elems / c.width) throw InputError(op + ": '" + src.path + "' shape too large");
  const int64_t data_bytes = c.rows * c.width * c.type.item_size;
  if (h.file_size - h.data_offset < data_bytes) {
    const int64_t have = h.file_size - h.data_offset;
    const int64_t complete_rows = c.width > 0 ? have / (c.width * c.type.item_size) : c.rows;
    throw InputError(op + ": '" + src.path + "' is truncated: the header announces " + std::to_string(c.rows) +
                     " x " + std::to_string(c.width) + " " + npy_dtype_text(h.descr) + " values (" +
                     std::to_string(data_bytes) + " bytes) but only " + std::to_string(have) +
                     " data bytes follow" + (h.fortran_order ? std::string()
                                                             : " (rows from " + std::to_string(complete_rows) +
                                                                   " on are missing)") +
                     "\n---> HINT: the file was cut short (an interrupted copy or np.save?); write it again");
  }
  return c;
}

torch::Tensor read_npy_rows(const ContextSource& src, int64_t begin, int64_t end, const std::string& op) {
  const NpyContexts c = open_npy(src, op);
  if (end > c.rows) {
    throw InputError(op + ": rows " + range_text(begin, end) + " requested but '" + src.path + "' has only " +
                     std::to_string(c.rows) + " rows");
  }
  torch::Tensor out = torch::empty({end - begin, c.width}, torch::kFloat32);
  read_npy_rows_f32(src.path, c.header, c.type, begin, end, out.data_ptr<float>());
  return out;
}

// ---- synthetic ----------------------------------------------------------------------------------------

// Ref: IDiff-Face sample.py "synthetic_uniform": torch.manual_seed(seed); F.normalize(torch.randn(N, 512), dim=1).
torch::Tensor synthetic_rows(uint64_t seed, int64_t begin, int64_t end, int64_t width) {
  const int64_t n = end - begin;
  if (n == 0) return torch::empty({0, width}, torch::kFloat32);
  constexpr int64_t kBlock = 16;  // torch's CPU normal_fill transforms aligned blocks of 16 uniforms
  const int64_t first = begin * width, last = end * width;  // flat element range [first, last)
  const int64_t aligned_first = first / kBlock * kBlock;
  const int64_t aligned_last = (last + kBlock - 1) / kBlock * kBlock;

  at::Generator gen = at::detail::createCPUGenerator(seed);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  // Consume the stream up to aligned_first in bounded chunks (multiples of 16 values each, so each
  // call draws exactly as many uniforms as values and keeps the block alignment of one big call).
  constexpr int64_t kSkipChunk = int64_t{1} << 20;
  for (int64_t done = 0; done < aligned_first;) {
    const int64_t chunk = std::min(kSkipChunk, aligned_first - done);
    (void)torch::randn({chunk}, gen, f32);
    done += chunk;
  }
  const torch::Tensor flat = torch::randn({aligned_last - aligned_first}, gen, f32);
  const torch::Tensor x = flat.slice(0, first - aligned_first, last - aligned_first).view({n, width});
  // F.normalize(x, p=2, dim=1, eps=1e-12) = x / x.norm(2, 1, keepdim=True).clamp_min(1e-12).expand_as(x)
  const torch::Tensor denom = x.norm(2, 1, /*keepdim=*/true).clamp_min(1e-12).expand_as(x);
  return (x / denom).contiguous();
}

}  // namespace

ContextSource parse_context_source(const std::string& spec, const std::string& base_dir) {
  const std::string op = "parse_context_source('" + spec + "')";
  ContextSource src;
  if (spec.empty()) {
    throw InputError(op + ": empty context source\n---> HINT: use 'synthetic_uniform', '<file>.h5[:/dataset]' or "
                          "'<file>.npy'");
  }
  if (spec == "synthetic_uniform") {
    src.kind = ContextSource::Kind::kSyntheticUniform;
    return src;
  }
  const std::string low = lower(spec);
  std::string file;
  bool is_h5 = false;
  for (const char* ext : {".h5", ".hdf5", ".he5"}) {
    const std::string e = ext;
    for (size_t p = low.find(e); p != std::string::npos; p = low.find(e, p + 1)) {
      const size_t after = p + e.size();
      if (after == low.size() || low[after] == ':') {
        if (!is_h5 || after < file.size()) {  // the earliest match wins
          file = spec.substr(0, after);
          is_h5 = true;
        }
        break;
      }
    }
  }
  if (is_h5) {
    src.kind = ContextSource::Kind::kHdf5;
    if (file.size() < spec.size()) {
      std::string ds = spec.substr(file.size() + 1);
      if (ds.empty() || ds == "/") {
        throw InputError(op + ": empty dataset path after ':'\n---> HINT: write '<file>.h5:/path/to/dataset'");
      }
      src.dataset = ds[0] == '/' ? ds : "/" + ds;
    }
  } else if (ends_with(low, ".npy")) {
    src.kind = ContextSource::Kind::kNpy;
    file = spec;
  } else {
    throw InputError(op + ": unknown context source; expected 'synthetic_uniform', '<file>.h5' (also .hdf5, .he5), "
                          "'<file>.h5:/path/to/dataset' or '<file>.npy'");
  }
  fs::path p(file);
  if (p.is_relative() && !base_dir.empty()) p = fs::path(base_dir) / p;
  src.path = p.lexically_normal().string();
  return src;
}

std::string describe(const ContextSource& source) {
  switch (source.kind) {
    case ContextSource::Kind::kSyntheticUniform:
      return "synthetic_uniform(seed=" + std::to_string(source.seed) + ")";
    case ContextSource::Kind::kHdf5:
      return source.path + ":" + dataset_path(source);
    case ContextSource::Kind::kNpy:
      return source.path;
  }
  return "?";
}

int64_t context_rows(const ContextSource& source) {
  const std::string op = "context_rows(" + describe(source) + ")";
  switch (source.kind) {
    case ContextSource::Kind::kSyntheticUniform:
      return -1;
    case ContextSource::Kind::kHdf5:
      return open_h5(source, op).rows;
    case ContextSource::Kind::kNpy:
      return open_npy(source, op).rows;
  }
  return -1;
}

int64_t context_width(const ContextSource& source) {
  const std::string op = "context_width(" + describe(source) + ")";
  switch (source.kind) {
    case ContextSource::Kind::kSyntheticUniform:
      return -1;
    case ContextSource::Kind::kHdf5:
      return open_h5(source, op).width;
    case ContextSource::Kind::kNpy:
      return open_npy(source, op).width;
  }
  return -1;
}

torch::Tensor read_contexts(const ContextSource& source, int64_t row_begin, int64_t row_end,
                            int64_t expected_width) {
  const std::string name = describe(source);
  const std::string op = "read_contexts(" + name + ")";
  if (row_begin < 0 || row_end < row_begin) {
    throw InputError(op + ": invalid row range " + range_text(row_begin, row_end));
  }
  if (expected_width <= 0) throw InputError(op + ": expected_width must be > 0, got " + std::to_string(expected_width));
  torch::Tensor rows;
  switch (source.kind) {
    case ContextSource::Kind::kSyntheticUniform:
      rows = synthetic_rows(source.seed, row_begin, row_end, expected_width);
      break;
    case ContextSource::Kind::kHdf5:
      rows = read_h5_rows(source, row_begin, row_end, op);
      break;
    case ContextSource::Kind::kNpy:
      rows = read_npy_rows(source, row_begin, row_end, op);
      break;
  }
  validate_contexts(rows, row_begin, name, expected_width);
  return rows;
}

void validate_contexts(const torch::Tensor& rows, int64_t row_offset, const std::string& source_name,
                       int64_t expected_width) {
  const std::string op = "validate_contexts(" + source_name + ")";
  if (!rows.defined() || rows.dim() != 2) {
    throw InputError(op + ": expected a 2-D [identities, width] tensor, got " +
                     (rows.defined() ? std::to_string(rows.dim()) + "-D" : std::string("an undefined tensor")));
  }
  if (!rows.is_floating_point()) {
    throw InputError(op + ": expected floating-point contexts, got dtype " + std::string(rows.dtype().name()));
  }
  if (rows.size(1) != expected_width) {
    throw InputError(op + ": contexts in '" + source_name + "' have width " + std::to_string(rows.size(1)) +
                     ", expected " + std::to_string(expected_width) +
                     "\n---> HINT: the model's context input width (context_input_channels) must match the "
                     "embedding size of the face-recognition network that produced the contexts");
  }
  if (rows.numel() == 0) return;
  const torch::Tensor bad = torch::isfinite(rows).logical_not();
  if (bad.any().item<bool>()) {
    const torch::Tensor where = bad.nonzero();  // row-major order: the first entry is the first bad row
    const int64_t r = where[0][0].item<int64_t>(), c = where[0][1].item<int64_t>();
    const double v = rows[r][c].item<double>();
    throw InputError(op + ": global row " + std::to_string(row_offset + r) + ", column " + std::to_string(c) +
                     " of '" + source_name + "' is " + (std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf")) +
                     "\n---> HINT: contexts must be finite; recompute or remove that identity's embedding");
  }
  const std::vector<int64_t> row_dim{1};
  const torch::Tensor norms = at::linalg_vector_norm(rows, 2, row_dim, /*keepdim=*/false, torch::kFloat64);
  const torch::Tensor zero = norms < 1e-12;
  if (zero.any().item<bool>()) {
    const int64_t r = zero.nonzero()[0][0].item<int64_t>();
    char norm_text[32];
    std::snprintf(norm_text, sizeof(norm_text), "%.3g", norms[r].item<double>());
    throw InputError(op + ": global row " + std::to_string(row_offset + r) + " of '" + source_name +
                     "' has zero L2 norm (" + norm_text + " < 1e-12)" +
                     "\n---> HINT: an all-zero row is not an identity (NegFaceDiff's 'empty' negative is chosen in "
                     "the run config, not stored in the context file); remove or recompute that row");
  }
}

}  // namespace adaptdiff::io
