#include "model/numpy_pickle.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>

#include "core/error.hpp"

namespace adaptdiff::model::pickle {
namespace {

bool host_is_little_endian() {
  const uint16_t one = 1;
  uint8_t first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

}  // namespace

std::string latin1_bytes(const std::string& utf8, const std::string& where) {
  std::string out;
  out.reserve(utf8.size());
  for (size_t k = 0; k < utf8.size();) {
    const auto c = static_cast<uint8_t>(utf8[k]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      k += 1;
    } else if ((c & 0xE0) == 0xC0 && k + 1 < utf8.size() && (static_cast<uint8_t>(utf8[k + 1]) & 0xC0) == 0x80) {
      const unsigned cp = ((c & 0x1Fu) << 6) | (static_cast<uint8_t>(utf8[k + 1]) & 0x3Fu);
      if (cp > 0xFF) throw ModelError(where + ": latin-1 text holds the code point " + std::to_string(cp));
      out.push_back(static_cast<char>(cp));
      k += 2;
    } else {
      throw ModelError(where + ": latin-1 text is not valid UTF-8 or holds a code point above 255 (byte " +
                       std::to_string(k) + ")");
    }
  }
  return out;
}

torch::Tensor numpy_array(const std::vector<int64_t>& shape, const std::string& code, char byteorder,
                          bool fortran_order, const std::string& data, const std::string& where) {
  static const std::map<std::string, torch::ScalarType> types = {
      {"f2", torch::kHalf}, {"f4", torch::kFloat},  {"f8", torch::kDouble}, {"i1", torch::kChar},
      {"i2", torch::kShort}, {"i4", torch::kInt},   {"i8", torch::kLong},   {"u1", torch::kByte},
      {"b1", torch::kBool},
  };
  const auto it = types.find(code);
  if (it == types.end())
    throw ModelError(where + ": NumPy dtype '" + std::string(1, byteorder) + code +
                     "' is not supported (float16/32/64, int8-64, uint8, bool are)");
  const torch::ScalarType type = it->second;
  const size_t item = c10::elementSize(type);
  uint64_t numel = 1;
  for (const int64_t d : shape) {
    if (d < 0) throw ModelError(where + ": NumPy array with a negative dimension");
    if (d > 0 && numel > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d) / item)
      throw ModelError(where + ": NumPy array shape overflows");
    numel *= static_cast<uint64_t>(d);
  }
  if (numel * item != data.size())
    throw ModelError(where + ": NumPy array of " + std::to_string(numel) + " elements of " + std::to_string(item) +
                     " bytes carries " + std::to_string(data.size()) + " bytes of data");
  std::vector<int64_t> stored = shape;  // Fortran order: the bytes are the C-order array of the reversed shape
  if (fortran_order) std::reverse(stored.begin(), stored.end());
  torch::Tensor t = torch::empty(stored, torch::TensorOptions().dtype(type));
  if (numel > 0) std::memcpy(t.data_ptr(), data.data(), data.size());
  const bool big = byteorder == '>' || (byteorder == '=' && !host_is_little_endian());
  if (item > 1 && big == host_is_little_endian()) {  // stored in the other byte order: swap every element
    auto* bytes = static_cast<uint8_t*>(t.data_ptr());
    for (uint64_t e = 0; e < numel; ++e) std::reverse(bytes + e * item, bytes + (e + 1) * item);
  }
  if (fortran_order) {
    std::vector<int64_t> order(stored.size());
    for (size_t d = 0; d < order.size(); ++d) order[d] = static_cast<int64_t>(order.size() - 1 - d);
    t = t.permute(order).contiguous();
  }
  return t;
}

}  // namespace adaptdiff::model::pickle
