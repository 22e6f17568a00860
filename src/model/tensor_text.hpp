#pragma once
// Small text helpers for model-layer error messages: "[2, 3, 16, 16]" shapes and "float32" dtype names.
// Internal to src/model (not part of the public API).
#include <torch/torch.h>

#include <sstream>
#include <string>

namespace adaptdiff::model::detail {

/// Shape as "[d0, d1, ...]".
inline std::string shape_str(at::IntArrayRef sizes) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < sizes.size(); ++i) os << (i ? ", " : "") << sizes[i];
  os << ']';
  return os.str();
}

/// dtype in numpy/PyTorch spelling ("float32", "int64", "float16", ...).
inline std::string dtype_str(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return "float32";
    case torch::kDouble: return "float64";
    case torch::kHalf: return "float16";
    case torch::kBFloat16: return "bfloat16";
    case torch::kLong: return "int64";
    case torch::kInt: return "int32";
    case torch::kShort: return "int16";
    case torch::kChar: return "int8";
    case torch::kByte: return "uint8";
    case torch::kBool: return "bool";
    default: return c10::toString(t);
  }
}

}  // namespace adaptdiff::model::detail
