#pragma once
// Reader of NumPy .npy files (format versions 1.0, 2.0 and 3.0) holding 2-D float16/float32/float64 arrays
// in any byte order, C or Fortran order: the header, and any row range converted to float32 as numpy's
// `astype(np.float32)` does, without reading the rest of the file.
// The header reader accepts any bytes without crashing or hanging (it is fuzzed: fuzz/fuzz_npy.cpp).
// Ref: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace adaptdiff::io {

/// Parsed header of a .npy file.
struct NpyHeader {
  int major_version = 0;         ///< 1, 2 or 3
  int minor_version = 0;         ///< 0
  /// dtype as written: the string of a simple dtype ("<f4", ">i8", "|b1"), or the list text of a structured
  /// dtype ("[('x', '<f4'), ('y', '<f4')]").
  std::string descr;
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

/// Element type of a floating-point .npy array.
struct NpyFloatType {
  int item_size = 4;        ///< bytes per element: 2 (float16), 4 (float32) or 8 (float64)
  bool swap_bytes = false;  ///< stored in the byte order opposite to this host's
};

/// The float type of `descr` when it is float16/32/64 ('<f2', '>f4', '=f8', '|f4' or 'f8': '<' little endian,
/// '>' big endian, '=', '|' or nothing: this host's order), else nullopt (ints, complex, bool, objects,
/// strings, structured, ...).
std::optional<NpyFloatType> npy_float_type(const std::string& descr);

/// The dtype for messages: as written and numpy's name, e.g. "'<i8' (int64)", "'>c16' (complex128)",
/// "'|O' (object)", "[('x', '<f4')] (structured)".
std::string npy_dtype_text(const std::string& descr);

/// Reads rows [row_begin, row_end) of the 2-D float array [h.shape[0], h.shape[1]] of the .npy file at `path`
/// (header `h`, type `type`) into `out`: (row_end - row_begin) * width float32 values, row-major (lent, filled).
/// Values are converted as numpy's astype(np.float32): float16 exactly, float64 rounded to nearest even
/// (overflow gives +-inf).
/// C order: one seek and a sequential read of exactly those rows. Fortran order: one seek and read of
/// (row_end - row_begin) values per column. Buffers beyond `out`: at most 1 MiB.
/// Requires 0 <= row_begin <= row_end <= h.shape[0] (InputError otherwise).
/// Throws IoError when the file cannot be opened, InputError when its data part is shorter than the header says.
void read_npy_rows_f32(const std::string& path, const NpyHeader& h, NpyFloatType type, int64_t row_begin,
                       int64_t row_end, float* out);

}  // namespace adaptdiff::io
