#pragma once
// Identity contexts from the original project's files, for `adaptdiff-contexts import`:
//   - a `torch.save`d dict {identity name: float32 [W]} (a zip archive, whatever its extension; IDiff-Face's
//     context files are named `.npy` although they are not), kept as stored, in the dict's insertion order;
//   - a plain `.npy` array [N, W] (UIFace style), each row divided by its L2 norm as upstream does; the names
//     are the row numbers. The norm is computed in float64 and the quotient rounded to float32.
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace adaptdiff::contexts {

/// Identity contexts with their names, in file order.
struct ImportedContexts {
  std::vector<std::string> names;  ///< [N] identity names (dict keys, or "0".."N-1" for an array)
  torch::Tensor contexts;          ///< [N, W] float32 CPU, contiguous
  std::string format;              ///< "torch.save dict" or ".npy array (rows normalised)"
};

/// Reads `path`, recognising the format by its first bytes (zip "PK\x03\x04" or NumPy "\x93NUMPY").
/// Every row must have `width` finite values and a non-zero norm.
/// Throws InputError naming the file and the key or row at fault: another format, a dict value that is not
/// a 1-D float array of `width` values (or [1, width]), NaN/Inf, a zero row, an empty file, a file that cannot
/// be opened; ModelError from the pickle reader (unsupported pickle content, truncated archive).
ImportedContexts import_contexts(const std::string& path, int64_t width = 512);

}  // namespace adaptdiff::contexts
