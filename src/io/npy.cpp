#include "io/npy.hpp"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/error.hpp"

namespace adaptdiff::io {
namespace {

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
        h.descr = parse_string();
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
                     std::to_string(pos_) + ": " + what + " (header: " + s_ + ")");
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

}  // namespace adaptdiff::io
