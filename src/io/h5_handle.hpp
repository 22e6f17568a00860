#pragma once
// Checked HDF5 C-API calls and RAII handles (internal to adaptdiff_io; the only place besides the
// io/*.cpp files that includes <hdf5.h>).
//
// Every HDF5 call in adaptdiff goes through ADAPTDIFF_H5(site, H5Xyz, args...), which checks the return
// code once and on failure throws IoError naming the operation, the call, the file, the object and
// the source line, plus the innermost description of HDF5's error stack. Identifiers are owned by
// h5::Handle, which closes them on every path (destructor: never throws, logs a failure; close():
// throws). HDF5's automatic error printing is switched off by silence_error_printing().
#include <hdf5.h>

#include <string>
#include <vector>

namespace adaptdiff::io::h5 {

/// Turns off HDF5's automatic printing of error stacks to stderr for the whole process (idempotent,
/// cheap after the first call). Errors are reported through IoError messages instead.
/// Throws IoError if H5Eset_auto2 itself fails.
void silence_error_printing();

/// Description of the innermost (first-pushed, most specific) entry of the default HDF5 error stack
/// of this thread, e.g. "unable to lock file, errno = 37, error message = 'No locks available'";
/// "" when the stack is empty or cannot be walked. Never throws.
std::string innermost_error();

/// True when any entry of the default HDF5 error stack mentions `needle` (case-insensitive) in its
/// description. Never throws.
bool error_stack_mentions(const std::string& needle);

/// Context of HDF5 calls: the adaptdiff operation ("store::create"), the file and, optionally, the
/// object (dataset/attribute/group) being worked on. Cheap to copy.
class Site {
 public:
  Site(std::string op, std::string file, std::string object = {});

  /// Same operation and file, another object.
  Site at(std::string object) const;

  /// Returns `rc` unchanged when it is >= 0; otherwise throws IoError (see fail()).
  /// T is herr_t, htri_t, hid_t or hssize_t (all signed; negative means failure).
  template <class T>
  T check(T rc, const char* call, const char* src_file, int src_line) const {
    if (rc < 0) fail(call, src_file, src_line);
    return rc;
  }

  /// Throws IoError "<op>: <call> failed (file '<file>', object '<object>'; <src>:<line>): <innermost
  /// HDF5 error>" followed by "\n---> HINT: <hint>" when `hint` is non-empty.
  [[noreturn]] void fail(const char* call, const char* src_file, int src_line,
                         const std::string& hint = {}) const;

  const std::string& op() const { return op_; }
  const std::string& file() const { return file_; }
  const std::string& object() const { return object_; }
  /// "file 'f'" or "file 'f', object 'o'" for messages.
  std::string where() const;

 private:
  std::string op_;
  std::string file_;
  std::string object_;
};

/// The hint given when HDF5 file locking fails (NFS/Lustre: errno 37 ENOLCK or 524).
inline constexpr const char* kFileLockingHint =
    "set HDF5_USE_FILE_LOCKING=FALSE (or output.file_locking = false in the run config)";

/// Hint for a failed H5Fcreate/H5Fopen, chosen from the current error stack (call it right after the
/// failure, before any other HDF5 call): the file-locking hint when the stack mentions locking,
/// otherwise a hint to check the path (existence, permissions) that also mentions file locking.
std::string file_open_hint(bool creating);

/// When `file_locking` is false, disables HDF5 file locking for files opened with `fapl`: through
/// H5Pset_file_locking(fapl, false, true) on HDF5 >= 1.10.7 / 1.12.1, else by setting the environment
/// variable HDF5_USE_FILE_LOCKING=FALSE (read by older HDF5 at every open). When true, nothing changes
/// (HDF5's default, which honours HDF5_USE_FILE_LOCKING from the environment). Throws IoError.
void apply_file_locking(hid_t fapl, bool file_locking, const Site& site);

/// Owning RAII wrapper of one HDF5 identifier (file, dataset, dataspace, datatype, property list,
/// group, attribute, object). Move-only. An empty handle holds H5I_INVALID_HID.
class Handle {
 public:
  using CloseFn = herr_t (*)(hid_t);

  Handle() = default;
  /// Takes ownership of `id` (must be valid, i.e. already checked); `close_fn` is H5Dclose, H5Fclose, ...
  /// and `close_name` its name (static string); `site` is used for messages when closing fails.
  Handle(hid_t id, CloseFn close_fn, const char* close_name, Site site);
  ~Handle();
  Handle(Handle&& other) noexcept;
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  /// The identifier (lent; stays owned by the handle). H5I_INVALID_HID when empty.
  hid_t get() const { return id_; }
  explicit operator bool() const { return id_ >= 0; }

  /// Closes now; throws IoError naming the close call on failure (the handle is empty afterwards
  /// either way). No-op on an empty handle.
  void close();

 private:
  void close_noexcept() noexcept;

  hid_t id_ = H5I_INVALID_HID;
  CloseFn close_fn_ = nullptr;
  const char* close_name_ = "";
  Site site_{"", ""};
};

/// Opens the existing HDF5 file `path` with the serial (sec2) driver, `flags` H5F_ACC_RDONLY or
/// H5F_ACC_RDWR, file locking per apply_file_locking(). Silences HDF5 error printing first.
/// Throws IoError "<op>: file '<path>' does not exist" for a missing file, and for any HDF5 failure
/// an IoError carrying the innermost HDF5 error and file_open_hint().
Handle open_file_serial(const std::string& path, unsigned flags, bool file_locking, const std::string& op);

/// Dimensions of the simple dataspace of dataset `dset` ({} for a scalar). Throws IoError.
std::vector<hsize_t> dataset_dims(hid_t dset, const Site& site);

/// One line per member of group `group_path` of `file`: "name (dataset [2, 512] float32)",
/// "name (group)", joined with ", "; "(empty)" when the group has no members. For messages about
/// missing datasets. Throws IoError.
std::string list_group(hid_t file, const std::string& group_path, const Site& site);

/// Checked wrappers of the HDF5 query functions whose failure value is not a negative integer.
/// Each throws IoError via site.fail() naming the call when HDF5 reports failure.
H5T_class_t type_class(hid_t type, const Site& site);    ///< H5Tget_class (H5T_NO_CLASS = failure)
size_t type_size(hid_t type, const Site& site);          ///< H5Tget_size (0 = failure)
H5T_sign_t type_sign(hid_t type, const Site& site);      ///< H5Tget_sign (H5T_SGN_ERROR = failure)
H5T_cset_t type_cset(hid_t type, const Site& site);      ///< H5Tget_cset (H5T_CSET_ERROR = failure)
H5T_str_t type_strpad(hid_t type, const Site& site);     ///< H5Tget_strpad (H5T_STR_ERROR = failure)
H5I_type_t object_kind(hid_t id, const Site& site);      ///< H5Iget_type (H5I_BADID = failure)

/// "float32", "float64", "int64", "uint8", "string", ... for datatype `type` (for messages). Throws IoError.
std::string type_name(hid_t type, const Site& site);

/// Checked call: `ADAPTDIFF_H5(site, H5Dwrite, dset, ...)` calls H5Dwrite(dset, ...) and returns its
/// result, or throws IoError via site.fail() when the result is negative.
#define ADAPTDIFF_H5(site, fn, ...) (site).check(fn(__VA_ARGS__), #fn, __FILE__, __LINE__)

/// Checked call returning a new identifier wrapped in an owning Handle closed with `close_fn`:
/// `h5::Handle d = ADAPTDIFF_H5_OPEN(site, H5Dclose, H5Dopen2, file, "images", H5P_DEFAULT);`
#define ADAPTDIFF_H5_OPEN(site, close_fn, fn, ...)                                              \
  ::adaptdiff::io::h5::Handle((site).check(fn(__VA_ARGS__), #fn, __FILE__, __LINE__), close_fn, \
                              #close_fn, (site))

}  // namespace adaptdiff::io::h5
