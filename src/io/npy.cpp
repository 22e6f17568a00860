#include "io/npy.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/error.hpp"

namespace adaptdiff::io {
namespace {

// At most `max_chars` of `s` for a message, bytes outside printable ASCII written as \xHH.
std::string printable(const std::string& s, size_t max_chars) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < s.size() && i < max_chars; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > max_chars) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

// Recursive-descent parser for the Python literal dict of a .npy header, restricted to what numpy
// writes: {'key': 'str' | True | False | (int, ...), ...}
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    for (;;) {
      skip_ws();
      if (peek() == '}') {
        ++pos_;
        break;
      }
      const std::string key = parse_string();
      expect(':');
      skip_ws();
      if (key == "descr") {
        h.descr = peek() == '[' ? parse_list_text() : parse_string();
        have_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = parse_bool();
        have_order = true;
      } else if (key == "shape") {
        h.shape = parse_shape();
        have_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() != '}') {
        fail("expected ',' or '}'");
      }
    }
    if (!have_descr || !have_order || !have_shape) fail("missing 'descr', 'fortran_order' or 'shape'");
    return h;
  }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string parse_string() {
    skip_ws();
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    const size_t end = s_.find(q, pos_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return out;
  }
  // The text of a list literal (a structured dtype's descr), brackets and quoted strings balanced.
  std::string parse_list_text() {
    const size_t begin = pos_;
    int depth = 0;
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == '\'' || c == '"') {
        const size_t end = s_.find(c, pos_ + 1);
        if (end == std::string::npos) fail("unterminated string");
        pos_ = end + 1;
        continue;
      }
      ++pos_;
      if (c == '[' || c == '(') ++depth;
      if (c == ']' || c == ')') --depth;
      if (depth == 0) return s_.substr(begin, pos_ - begin);
    }
    fail("unterminated list in 'descr'");
  }
  bool parse_bool() {
    if (s_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (s_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    fail("expected True or False");
  }
  std::vector<int64_t> parse_shape() {
    std::vector<int64_t> shape;
    expect('(');
    for (;;) {
      skip_ws();
      if (peek() == ')') {
        ++pos_;
        return shape;
      }
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a non-negative integer in 'shape'");
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        const int d = peek() - '0';
        if (v > (std::numeric_limits<int64_t>::max() - d) / 10) fail("dimension too large in 'shape'");
        v = v * 10 + d;
        ++pos_;
      }
      if (peek() == 'L') ++pos_;  // Python 2 long literal
      shape.push_back(v);
      skip_ws();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() != ')') {
        fail("expected ',' or ')' in 'shape'");
      }
    }
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw InputError("read_npy_header('" + path_ + "'): malformed header dictionary at character " +
                     std::to_string(pos_) + ": " + what + " (header: " + printable(s_, 200) + ")");
  }

  const std::string& s_;
  const std::string& path_;
  size_t pos_ = 0;
};

uint32_t little_endian(const unsigned char* p, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

NpyHeader read_npy_header(const std::string& path) {
  const std::string op = "read_npy_header('" + path + "')";
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(op + ": cannot open for reading: " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff file_size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (!in || file_size < 0) throw IoError(op + ": cannot determine the file size");

  unsigned char pre[12] = {};
  const bool short_file = file_size < 10;
  if (!short_file) in.read(reinterpret_cast<char*>(pre), 10);
  if (short_file || !in || std::memcmp(pre, "\x93NUMPY", 6) != 0) {
    throw InputError(op + ": not a .npy file (missing the \\x93NUMPY magic)");
  }
  NpyHeader h;
  h.major_version = pre[6];
  h.minor_version = pre[7];
  if (h.major_version < 1 || h.major_version > 3) {
    throw InputError(op + ": unsupported .npy format version " + std::to_string(h.major_version) + "." +
                     std::to_string(h.minor_version) + " (supported: 1.0, 2.0, 3.0)");
  }
  int64_t header_len = 0;
  int64_t prefix = 10;
  if (h.major_version == 1) {
    header_len = little_endian(pre + 8, 2);
  } else {
    if (file_size < 12 || !in.read(reinterpret_cast<char*>(pre + 10), 2)) {
      throw InputError(op + ": truncated .npy preamble");
    }
    header_len = little_endian(pre + 8, 4);
    prefix = 12;
  }
  if (prefix + header_len > file_size) {
    throw InputError(op + ": header length " + std::to_string(header_len) + " runs past the end of the file (" +
                     std::to_string(file_size) + " bytes)");
  }
  std::string text(static_cast<size_t>(header_len), '\0');
  if (!in.read(text.data(), header_len)) throw IoError(op + ": read error in the header");

  const NpyHeader parsed = HeaderParser(text, path).parse();
  h.descr = parsed.descr;
  h.fortran_order = parsed.fortran_order;
  h.shape = parsed.shape;
  h.data_offset = prefix + header_len;
  h.file_size = static_cast<int64_t>(file_size);
  return h;
}

namespace {

bool host_is_little_endian() {
  const uint16_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

// numpy's name of a simple dtype string without its byte-order character ("i8" -> "int64").
std::string numpy_name(const std::string& code) {
  if (code.empty()) return "unknown dtype";
  const char kind = code[0];
  const std::string digits = code.substr(1);
  int bytes = -1;
  if (!digits.empty() && digits.size() <= 4 &&
      std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    bytes = std::stoi(digits);
  }
  const std::string bits = bytes > 0 ? std::to_string(8 * bytes) : "?";
  switch (kind) {
    case 'f': return "float" + bits;
    case 'i': return "int" + bits;
    case 'u': return "uint" + bits;
    case 'c': return "complex" + bits;
    case 'b': return "bool";
    case '?': return "bool";
    case 'O': return "object";
    case 'U': return "unicode string";
    case 'S': case 'a': return "bytes";
    case 'V': return "void (raw bytes)";
    case 'M': return "datetime64";
    case 'm': return "timedelta64";
    default: return "unknown dtype";
  }
}

// IEEE binary16 bits -> float32, exact (every half value is a float32 value). Ref: IEEE 754-2008 3.6.
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  uint32_t bits = 0;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf, NaN (payload kept, as numpy does)
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);  // rebias 15 -> 127
  } else {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal: m * 2^-24
    std::memcpy(&bits, &magnitude, sizeof bits);
    bits |= sign;
  }
  float out = 0.0f;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

// One element of `type` at `p` (file bytes) as float32.
float to_float32(const unsigned char* p, const NpyFloatType& type) {
  unsigned char b[8];
  const int n = type.item_size;
  for (int k = 0; k < n; ++k) b[k] = type.swap_bytes ? p[n - 1 - k] : p[k];
  if (n == 2) {
    uint16_t h = 0;
    std::memcpy(&h, b, 2);
    return half_to_float(h);
  }
  if (n == 4) {
    float f = 0.0f;
    std::memcpy(&f, b, 4);
    return f;
  }
  double d = 0.0;
  std::memcpy(&d, b, 8);
  return static_cast<float>(d);  // IEEE round to nearest even, as numpy's astype(np.float32)
}

// Reads `count` elements starting at byte `offset` of `in` into out[0], out[stride], ... (converted).
void read_run(std::ifstream& in, int64_t offset, int64_t count, const NpyFloatType& type, float* out,
              int64_t stride, const std::string& op) {
  constexpr int64_t kBufferBytes = int64_t{1} << 20;
  std::vector<unsigned char> buffer(static_cast<size_t>(std::min(kBufferBytes, count * type.item_size)));
  const int64_t per_chunk = static_cast<int64_t>(buffer.size()) / type.item_size;
  in.seekg(offset, std::ios::beg);
  for (int64_t done = 0; done < count;) {
    const int64_t n = std::min(per_chunk, count - done);
    in.read(reinterpret_cast<char*>(buffer.data()), n * type.item_size);
    if (!in || in.gcount() != n * type.item_size) {
      throw InputError(op + ": the data part is truncated (short read at byte " +
                       std::to_string(offset + done * type.item_size) + ")");
    }
    for (int64_t k = 0; k < n; ++k) out[(done + k) * stride] = to_float32(buffer.data() + k * type.item_size, type);
    done += n;
  }
}

}  // namespace

std::optional<NpyFloatType> npy_float_type(const std::string& descr) {
  std::string code = descr;
  char order = '=';
  if (!code.empty() && std::strchr("<>=|", code[0]) != nullptr) {
    order = code[0];
    code = code.substr(1);
  }
  NpyFloatType t;
  if (code == "f2") {
    t.item_size = 2;
  } else if (code == "f4") {
    t.item_size = 4;
  } else if (code == "f8") {
    t.item_size = 8;
  } else {
    return std::nullopt;
  }
  const bool little = order == '<' || (order != '>' && host_is_little_endian());
  t.swap_bytes = little != host_is_little_endian();
  return t;
}

std::string npy_dtype_text(const std::string& descr) {
  if (!descr.empty() && descr[0] == '[') return printable(descr, 200) + " (structured)";
  std::string code = descr;
  if (!code.empty() && std::strchr("<>=|", code[0]) != nullptr) code = code.substr(1);
  return "'" + printable(descr, 40) + "' (" + numpy_name(code) + ")";
}

void read_npy_rows_f32(const std::string& path, const NpyHeader& h, NpyFloatType type, int64_t row_begin,
                       int64_t row_end, float* out) {
  const std::string op = "read_npy_rows_f32('" + path + "')";
  if (h.shape.size() != 2) throw InputError(op + ": expected a 2-D array, got " + std::to_string(h.shape.size()) + "-D");
  if (type.item_size != 2 && type.item_size != 4 && type.item_size != 8) {
    throw InputError(op + ": item size " + std::to_string(type.item_size) + " is not 2, 4 or 8");
  }
  const int64_t rows = h.shape[0], width = h.shape[1];
  if (row_begin < 0 || row_end < row_begin || row_end > rows) {
    throw InputError(op + ": rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) +
                     ") requested of an array of " + std::to_string(rows) + " rows");
  }
  const int64_t n = row_end - row_begin;
  if (n == 0 || width == 0) return;
  const int64_t max_elems = std::numeric_limits<int64_t>::max() / 16;
  if (width > max_elems / std::max<int64_t>(rows, 1)) throw InputError(op + ": shape too large");
  const int64_t data_bytes = rows * width * type.item_size;
  if (h.data_offset < 0 || h.file_size - h.data_offset < data_bytes) {
    throw InputError(op + ": the data part is truncated: the header announces " + std::to_string(data_bytes) +
                     " bytes but " + std::to_string(std::max<int64_t>(0, h.file_size - h.data_offset)) + " follow");
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(op + ": cannot open for reading: " + std::strerror(errno));
  if (!h.fortran_order) {
    read_run(in, h.data_offset + row_begin * width * type.item_size, n * width, type, out, 1, op);
    return;
  }
  // Column-major: element (r, c) is at index c * rows + r; each column's rows are one contiguous run.
  for (int64_t c = 0; c < width; ++c) {
    read_run(in, h.data_offset + (c * rows + row_begin) * type.item_size, n, type, out + c, width, op);
  }
}

}  // namespace adaptdiff::io
