#pragma once
// Minimal reader of NumPy .npy headers (format versions 1.0, 2.0 and 3.0), enough to locate the rows
// of a C-ordered 2-D float array without reading the rest of the file.
// Ref: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
#include <cstdint>
#include <string>
#include <vector>

namespace adaptdiff::io {

/// Parsed header of a .npy file.
struct NpyHeader {
  int major_version = 0;         ///< 1, 2 or 3
  int minor_version = 0;         ///< 0
  std::string descr;             ///< dtype string as written, e.g. "<f4"
  bool fortran_order = false;    ///< true: column-major data
  std::vector<int64_t> shape;    ///< e.g. {N, W}; {} for a 0-d array
  int64_t data_offset = 0;       ///< byte offset of the first array element
  int64_t file_size = 0;         ///< size of the whole file in bytes
};

/// Reads and parses the header of the .npy file at `path` (reads only the header bytes).
/// Throws IoError when the file cannot be opened or read, InputError when it is not a .npy file (bad
/// magic, unknown version, malformed header dictionary, missing 'descr'/'fortran_order'/'shape',
/// negative dimensions). Does not check that the data part is complete; see NpyHeader::file_size.
NpyHeader read_npy_header(const std::string& path);

}  // namespace adaptdiff::io
