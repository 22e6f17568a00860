#pragma once
// Identity contexts (the 512-d face embeddings that condition the UNet): where they come from
// (synthetic, HDF5 dataset, .npy file), how many there are, reading a row range of them, and
// validating them (width, finite values, non-zero rows) before any sampling starts.
//
// All readers return float32 CPU tensors [rows, width]; float16 inputs are converted exactly, float64 inputs
// rounded to nearest even (numpy's astype(np.float32)).
// Row numbers in messages are GLOBAL (0-based row of the source), so a bad row can be found in the file.
#include <torch/types.h>

#include <cstdint>
#include <string>

namespace adaptdiff::io {

/// Width of the "synthetic_uniform" contexts when the caller does not ask for another width.
inline constexpr int64_t kDefaultContextWidth = 512;

/// Where identity contexts come from. Build it with parse_context_source().
struct ContextSource {
  /// Unscoped on purpose: the struct scopes it, and callers write ContextSource::kHdf5 (the API as
  /// agreed between modules); ContextSource::Kind::kHdf5 works too.
  enum Kind {
    kSyntheticUniform,  ///< generated: unit-norm standard-normal vectors from `seed` (see read_contexts)
    kHdf5,              ///< 2-D float dataset `dataset` in the HDF5 file `path`
    kNpy,               ///< 2-D float16/32/64 array (any byte order, C or Fortran order) in the .npy file `path`
  };
  Kind kind = Kind::kSyntheticUniform;
  std::string path;                 ///< absolute or base_dir-resolved file path; empty for synthetic
  std::string dataset = "contexts"; ///< HDF5 only: dataset path inside the file ("contexts", "/g/ds")
  uint64_t seed = 0;                ///< synthetic only: torch CPU generator seed (set by the caller)
  /// HDF5 only: false opens the file with HDF5 file locking disabled (needed on some NFS/Lustre
  /// mounts, where locking fails with errno 37 ENOLCK or 524). true keeps HDF5's default, which also
  /// honours HDF5_USE_FILE_LOCKING=FALSE in the environment.
  bool file_locking = true;
};

/// Parses a context-source spec:
///   "synthetic_uniform"            -> kSyntheticUniform (seed stays 0; the caller sets it)
///   "file.h5" / ".hdf5" / ".he5"    -> kHdf5, dataset "contexts"
///   "file.h5:/path/to/dataset"     -> kHdf5, dataset "/path/to/dataset" (the part after the first ':'
///                                     that follows the HDF5 file extension; a missing leading '/' is added)
///   "file.npy"                      -> kNpy
/// Relative file paths are resolved against `base_dir` (typically the run config's directory; "" means
/// the current directory). Does not touch the file system.
/// Throws InputError for an empty spec, an unknown extension or an empty dataset path.
ContextSource parse_context_source(const std::string& spec, const std::string& base_dir);

/// Human-readable name of a source for messages: "synthetic_uniform(seed=7)", "/d/ids.h5:/contexts",
/// "/d/ids.npy".
std::string describe(const ContextSource& source);

/// Number of rows the source holds, read from metadata only (HDF5 dataspace, .npy header).
/// Synthetic sources are unbounded: returns -1.
/// Throws IoError (file missing/unreadable, HDF5 failure) or InputError (dataset missing — the message
/// lists the root group's members —, not 2-D, not a float type, .npy dtype not float16/32/64 — the message
/// gives the dtype as written, e.g. "'<i8' (int64)" —, .npy data part shorter than the header says).
int64_t context_rows(const ContextSource& source);

/// Width (columns) of the source, from metadata only; same errors as context_rows().
/// Synthetic sources generate whatever width read_contexts() is asked for: returns -1.
int64_t context_width(const ContextSource& source);

/// Reads rows [row_begin, row_end) of the source as a float32 CPU tensor [row_end-row_begin,
/// width] (contiguous, owned by the caller), reading only those rows (HDF5 hyperslab; .npy: one seek for C
/// order, one seek per column for Fortran order; memory O(rows * W)).
/// Then calls validate_contexts(rows, row_begin, describe(source), expected_width).
///
/// Synthetic uniform (Ref: IDiff-Face "synthetic uniform" contexts): row i is row i of
///   torch.manual_seed(seed); F.normalize(torch.randn(N, W), dim=1)      (Python, any N > i, W = expected_width)
/// reproduced with a CPU generator at::detail::createCPUGenerator(seed). Row values never depend on
/// which rows are asked for: the generator stream is consumed from element 0 up to the 16-aligned
/// element range that covers the requested rows (torch's CPU normal sampler works on aligned
/// blocks of 16 values), so cost is O(row_end * W) time and O(chunk + rows * W) memory. The
/// equality with the Python expression holds exactly when N*W is a multiple of 16 (always for W = 512);
/// for other W the Python tensor's last block is redrawn by torch and only that block differs.
///
/// Throws InputError for row_begin < 0, row_end < row_begin, row_end beyond the source's rows (the
/// message says how many exist), wrong width, NaN/Inf, zero-norm rows, unsupported dtype, truncated .npy
/// data; IoError for missing/unreadable files and HDF5 failures. expected_width must be > 0.
torch::Tensor read_contexts(const ContextSource& source, int64_t row_begin, int64_t row_end,
                            int64_t expected_width = kDefaultContextWidth);

/// Checks contexts before use. `rows`: float32 or float64 CPU tensor [n, W] holding global rows
/// [row_offset, row_offset + n) of the source named `source_name` (used in messages).
/// Throws InputError with a "---> HINT:" line when:
///   * rows is not 2-D or not floating point;
///   * W != expected_width (says expected vs found and names the source);
///   * a value is NaN or +-Inf (names the first bad global row, its column and the value);
///   * a row has L2 norm < 1e-12, i.e. zero (names the first such global row) — such a row cannot
///     be normalised and is certainly not a face embedding.
void validate_contexts(const torch::Tensor& rows, int64_t row_offset, const std::string& source_name,
                       int64_t expected_width);

}  // namespace adaptdiff::io
