#pragma once
// NumPy arrays inside pickles (internal to src/model): what `numpy.ndarray.__reduce__` writes — a
// `numpy.dtype(code, False, True)` with its byte order as BUILD state, and the array's raw bytes — turned
// into a CPU tensor. Ref: numpy/core/src/multiarray/methods.c (array_reduce, array_setstate),
// numpy/core/src/multiarray/descriptor.c (arraydescr_reduce); Python's pickle protocol 2 writes `bytes` as
// `_codecs.encode(<latin-1 text>, 'latin1')`.
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace adaptdiff::model::pickle {

/// The bytes of `_codecs.encode(text, 'latin1')`: `utf8` is the pickled (UTF-8) text whose code points must
/// all be below 256. Throws ModelError (prefixed `where`) for invalid UTF-8 or a code point >= 256.
std::string latin1_bytes(const std::string& utf8, const std::string& where);

/// A tensor holding the NumPy array of `shape` (C or Fortran order) with dtype `code` ("f2", "f4", "f8",
/// "i1".."i8", "u1", "b1"; byte order '<', '>', '|' or '=') whose raw bytes are `data`; CPU, contiguous
/// (C order), in the same element type (byte-swapped to this machine's order when needed).
/// Throws ModelError (prefixed `where`) for another dtype, a negative dimension, or a data size other than
/// numel × item size.
torch::Tensor numpy_array(const std::vector<int64_t>& shape, const std::string& code, char byteorder,
                          bool fortran_order, const std::string& data, const std::string& where);

}  // namespace adaptdiff::model::pickle
