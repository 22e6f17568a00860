#include "io/h5_handle.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/log.hpp"

namespace adaptdiff::io::h5 {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Collects the descriptions of the default error stack, innermost first.
herr_t collect_description(unsigned /*n*/, const H5E_error2_t* err, void* client) {
  auto* out = static_cast<std::vector<std::string>*>(client);
  if (err != nullptr) {
    std::string d = err->desc != nullptr ? err->desc : "";
    if (d.empty() && err->func_name != nullptr) d = std::string("error in ") + err->func_name;
    out->push_back(std::move(d));
  }
  return 0;
}

std::vector<std::string> error_stack() {
  std::vector<std::string> out;
  // H5E_WALK_UPWARD starts at the innermost function, where the error was first detected. A failing
  // walk leaves what was collected so far; these helpers only enrich messages and must not throw.
  if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_description, &out) < 0) return out;
  return out;
}

std::string basename_of(const char* path) {
  std::string p = path != nullptr ? path : "";
  const auto slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

}  // namespace

void silence_error_printing() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) < 0) {
      throw IoError("io: H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) failed; cannot silence HDF5 error printing");
    }
  });
}

std::string innermost_error() {
  const auto stack = error_stack();
  for (const auto& d : stack) {
    if (!d.empty()) return d;
  }
  return {};
}

bool error_stack_mentions(const std::string& needle) {
  const std::string n = lower(needle);
  for (const auto& d : error_stack()) {
    if (lower(d).find(n) != std::string::npos) return true;
  }
  return false;
}

std::string file_open_hint(bool creating) {
  // Not just "lock": that also matches "superblock". HDF5 says "unable to lock file, errno = 37, ...".
  for (const char* needle : {"unable to lock", "file lock", "locking", "no locks available", "errno = 37,",
                             "errno = 524,"}) {
    if (error_stack_mentions(needle)) return kFileLockingHint;
  }
  return std::string(creating ? "check that the directory exists and is writable"
                              : "check that the file exists, is readable and is an HDF5 file") +
         "; on NFS/Lustre file systems, where file locking fails, " + kFileLockingHint;
}

void apply_file_locking(hid_t fapl, bool file_locking, const Site& site) {
  if (file_locking) return;
#if H5_VERSION_GE(1, 12, 1) || (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7)
  ADAPTDIFF_H5(site, H5Pset_file_locking, fapl, false, true);
#else
  // Older HDF5 reads the variable at every H5Fopen/H5Fcreate; there is no per-file property.
  if (setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1) != 0) {
    throw IoError(site.op() + ": setenv(HDF5_USE_FILE_LOCKING=FALSE) failed");
  }
#endif
}

// ---- Site ----------------------------------------------------------------------------------------

Site::Site(std::string op, std::string file, std::string object)
    : op_(std::move(op)), file_(std::move(file)), object_(std::move(object)) {}

Site Site::at(std::string object) const { return Site(op_, file_, std::move(object)); }

std::string Site::where() const {
  std::string w = "file '" + file_ + "'";
  if (!object_.empty()) w += ", object '" + object_ + "'";
  return w;
}

void Site::fail(const char* call, const char* src_file, int src_line, const std::string& hint) const {
  std::string msg = op_ + ": " + call + " failed (" + where() + "; " + basename_of(src_file) + ":" +
                    std::to_string(src_line) + ")";
  const std::string inner = innermost_error();
  msg += inner.empty() ? ": no HDF5 error description available" : ": " + inner;
  if (!hint.empty()) msg += "\n---> HINT: " + hint;
  throw IoError(msg);
}

// ---- Handle --------------------------------------------------------------------------------------

Handle::Handle(hid_t id, CloseFn close_fn, const char* close_name, Site site)
    : id_(id), close_fn_(close_fn), close_name_(close_name), site_(std::move(site)) {}

Handle::~Handle() { close_noexcept(); }

Handle::Handle(Handle&& other) noexcept
    : id_(std::exchange(other.id_, H5I_INVALID_HID)),
      close_fn_(other.close_fn_),
      close_name_(other.close_name_),
      site_(std::move(other.site_)) {}

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    close_noexcept();
    id_ = std::exchange(other.id_, H5I_INVALID_HID);
    close_fn_ = other.close_fn_;
    close_name_ = other.close_name_;
    site_ = std::move(other.site_);
  }
  return *this;
}

void Handle::close() {
  if (id_ < 0 || close_fn_ == nullptr) return;
  const hid_t id = std::exchange(id_, H5I_INVALID_HID);
  site_.check(close_fn_(id), close_name_, __FILE__, __LINE__);
}

void Handle::close_noexcept() noexcept {
  if (id_ < 0 || close_fn_ == nullptr) return;
  const hid_t id = std::exchange(id_, H5I_INVALID_HID);
  if (close_fn_(id) < 0) {
    // Destructors must not throw: report and go on (the identifier is released by HDF5 at exit).
    try {
      log::warn("{}: {} failed ({}): {}", site_.op(), close_name_, site_.where(), innermost_error());
    } catch (...) {
    }
  }
}


// ---- helpers ---------------------------------------------------------------------------------------

Handle open_file_serial(const std::string& path, unsigned flags, bool file_locking, const std::string& op) {
  silence_error_printing();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw IoError(op + ": file '" + path + "' does not exist" + (ec ? " (" + ec.message() + ")" : ""));
  }
  const Site site(op, path);
  Handle fapl = ADAPTDIFF_H5_OPEN(site, H5Pclose, H5Pcreate, H5P_FILE_ACCESS);
  apply_file_locking(fapl.get(), file_locking, site);
  const hid_t id = H5Fopen(path.c_str(), flags, fapl.get());
  if (id < 0) site.fail("H5Fopen", __FILE__, __LINE__, file_open_hint(false));
  return Handle(id, H5Fclose, "H5Fclose", site);
}

std::vector<hsize_t> dataset_dims(hid_t dset, const Site& site) {
  Handle space = ADAPTDIFF_H5_OPEN(site, H5Sclose, H5Dget_space, dset);
  const int ndims = ADAPTDIFF_H5(site, H5Sget_simple_extent_ndims, space.get());
  std::vector<hsize_t> dims(static_cast<size_t>(ndims));
  if (ndims > 0) ADAPTDIFF_H5(site, H5Sget_simple_extent_dims, space.get(), dims.data(), nullptr);
  return dims;
}

namespace {
// A query whose failure is a sentinel value rather than a negative integer: returns the value, or fails
// through `site` naming the call.
template <typename T>
T checked_query(T value, T failure, const char* call, const Site& site, int line) {
  if (value == failure) site.fail(call, __FILE__, line);
  return value;
}
}  // namespace

H5T_class_t type_class(hid_t type, const Site& site) {
  return checked_query(H5Tget_class(type), H5T_NO_CLASS, "H5Tget_class", site, __LINE__);
}
size_t type_size(hid_t type, const Site& site) {
  return checked_query(H5Tget_size(type), size_t{0}, "H5Tget_size", site, __LINE__);
}
H5T_sign_t type_sign(hid_t type, const Site& site) {
  return checked_query(H5Tget_sign(type), H5T_SGN_ERROR, "H5Tget_sign", site, __LINE__);
}
H5T_cset_t type_cset(hid_t type, const Site& site) {
  return checked_query(H5Tget_cset(type), H5T_CSET_ERROR, "H5Tget_cset", site, __LINE__);
}
H5T_str_t type_strpad(hid_t type, const Site& site) {
  return checked_query(H5Tget_strpad(type), H5T_STR_ERROR, "H5Tget_strpad", site, __LINE__);
}
H5I_type_t object_kind(hid_t id, const Site& site) {
  return checked_query(H5Iget_type(id), H5I_BADID, "H5Iget_type", site, __LINE__);
}

std::string type_name(hid_t type, const Site& site) {
  const H5T_class_t cls = type_class(type, site);
  const size_t size = type_size(type, site);
  const std::string bits = std::to_string(8 * size);
  switch (cls) {
    case H5T_FLOAT:
      return "float" + bits;
    case H5T_INTEGER: {
      return (type_sign(type, site) == H5T_SGN_NONE ? "uint" : "int") + bits;
    }
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    default:
      return "other type (class " + std::to_string(static_cast<int>(cls)) + ")";
  }
}

namespace {
herr_t collect_link_name(hid_t /*group*/, const char* name, const H5L_info_t* /*info*/, void* client) {
  static_cast<std::vector<std::string>*>(client)->emplace_back(name);
  return 0;
}
}  // namespace

std::string list_group(hid_t file, const std::string& group_path, const Site& site) {
  Handle group = ADAPTDIFF_H5_OPEN(site, H5Gclose, H5Gopen2, file, group_path.c_str(), H5P_DEFAULT);
  std::vector<std::string> names;
  ADAPTDIFF_H5(site, H5Literate, group.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_link_name, &names);
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
    const Site at = site.at(name);
    Handle obj = ADAPTDIFF_H5_OPEN(at, H5Oclose, H5Oopen, group.get(), name.c_str(), H5P_DEFAULT);
    const H5I_type_t kind = object_kind(obj.get(), at);
    if (kind == H5I_GROUP) {
      out += " (group)";
    } else if (kind == H5I_DATASET) {
      out += " (dataset [";
      const auto dims = dataset_dims(obj.get(), at);
      for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
      Handle type = ADAPTDIFF_H5_OPEN(at, H5Tclose, H5Dget_type, obj.get());
      out += "] " + type_name(type.get(), at) + ")";
    } else {
      out += " (named datatype)";
    }
  }
  return out.empty() ? "(empty)" : out;
}

}  // namespace adaptdiff::io::h5
