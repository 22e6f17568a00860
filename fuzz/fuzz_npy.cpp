// Fuzz target: any bytes as a .npy identity file. Covers the header parser (read_npy_header), the dtype
// helpers, the row reader (read_npy_rows_f32: C and Fortran order, every float type and byte order) and the
// identity reader's .npy path (context_rows, context_width, read_contexts with its validation).
// Expected: InputError/IoError for bad files, never a crash, a hang or an allocation beyond the file's size.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/error.hpp"
#include "fuzz_support.hpp"
#include "io/identities.hpp"
#include "io/npy.hpp"

namespace io = adaptdiff::io;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = adaptdiff::fuzz::temp_path("input.npy");
  adaptdiff::fuzz::write_file(path, data, size);
  try {
    const io::NpyHeader h = io::read_npy_header(path);
    (void)io::npy_dtype_text(h.descr);
    const auto type = io::npy_float_type(h.descr);
    if (type && h.shape.size() == 2 && h.shape[0] > 0) {
      // Rows [r, r + 2) from the middle; the harness's buffer is bounded by the file size (each element of the
      // data part takes >= 2 bytes), the reader must refuse a shape the file cannot hold.
      const int64_t rows = h.shape[0], width = h.shape[1];
      const int64_t r = rows / 2, n = std::min<int64_t>(2, rows - r);
      if (width <= static_cast<int64_t>(size) / 2 / n) {
        std::vector<float> out(static_cast<size_t>(n * width));
        io::read_npy_rows_f32(path, h, *type, r, r + n, out.data());
      }
    }
  } catch (const adaptdiff::Error&) {
  }
  try {
    io::ContextSource src;
    src.kind = io::ContextSource::kNpy;
    src.path = path;
    const int64_t rows = io::context_rows(src);
    const int64_t width = io::context_width(src);
    if (rows > 0 && width > 0) (void)io::read_contexts(src, rows / 2, std::min<int64_t>(rows, rows / 2 + 3), width);
  } catch (const adaptdiff::Error&) {
  }
  return 0;
}
