// .npy identity files in every layout numpy writes: byte orders '<' '>' '=' '|', C and Fortran order,
// float16/32/64, header versions 1.0/2.0/3.0. Files are built here byte by byte; expected float32 values are
// written as literals (hex floats and IEEE bit patterns), worked out by hand from the IEEE 754 formats and
// round-to-nearest-even, not by the code under test. Also: refusals name the dtype as written, and malformed or
// truncated files of every length are refused with InputError (never a crash).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "io/identities.hpp"
#include "io/npy.hpp"
#include "support/expect_error.hpp"

namespace fs = std::filesystem;
using adaptdiff::InputError;
using adaptdiff::test::expect_error;
namespace io = adaptdiff::io;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/adaptdiff_npy_test_XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

using Bytes = std::string;

// Unsigned integer `v` as `n` bytes, little (le) or big endian.
Bytes int_bytes(uint64_t v, int n, bool big) {
  Bytes out(static_cast<size_t>(n), '\0');
  for (int k = 0; k < n; ++k) out[static_cast<size_t>(big ? n - 1 - k : k)] = static_cast<char>((v >> (8 * k)) & 0xff);
  return out;
}

// A whole .npy file: magic, version, header length (2 bytes for 1.0, 4 for 2.0/3.0, little endian), the
// dictionary padded with spaces and ended by '\n' so that the data starts at a multiple of 64, then `data`.
Bytes npy_file(const std::string& dict, const Bytes& data, int major = 1) {
  const size_t prefix = major == 1 ? 10 : 12;
  std::string header = dict;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  Bytes out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  out += int_bytes(header.size(), major == 1 ? 2 : 4, /*big=*/false);
  return out + header + data;
}

std::string dict(const std::string& descr, const std::string& shape, bool fortran = false) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': " + shape +
         ", }";
}

void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good());
}

uint32_t bits_of(float f) {
  uint32_t b = 0;
  std::memcpy(&b, &f, 4);
  return b;
}

// Reads rows [a, b) through the low-level reader (no validation: inf and NaN pass) as bit patterns.
std::vector<uint32_t> read_bits(const std::string& path, int64_t a, int64_t b) {
  const io::NpyHeader h = io::read_npy_header(path);
  const auto type = io::npy_float_type(h.descr);
  EXPECT_TRUE(type.has_value()) << h.descr;
  std::vector<float> out(static_cast<size_t>((b - a) * h.shape.at(1)), -7.0f);
  io::read_npy_rows_f32(path, h, *type, a, b, out.data());
  std::vector<uint32_t> bits;
  for (float f : out) bits.push_back(bits_of(f));
  return bits;
}

std::vector<uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<uint32_t> out;
  for (float f : v) out.push_back(bits_of(f));
  return out;
}

io::ContextSource npy_source(const std::string& path) {
  io::ContextSource s;
  s.kind = io::ContextSource::Kind::kNpy;
  s.path = path;
  return s;
}

TEST(Npy, Float32EveryByteOrderGivesTheSameBits) {
  TempDir dir;
  // 1.0, -pi (rounded), the smallest subnormal, FLT_MAX, 1/3 (rounded), -0.0: as IEEE binary32 patterns.
  const std::vector<uint32_t> bits = {0x3F800000u, 0xC0490FDBu, 0x00000001u, 0x7F7FFFFFu, 0x3EAAAAABu, 0x80000000u};
  for (const std::string order : {"<", ">", "=", "|", ""}) {
    const bool big = order == ">";
    Bytes data;
    for (uint32_t b : bits) data += int_bytes(b, 4, big);
    const std::string path = dir.file("f4" + std::to_string(order.empty() ? 0 : order[0]) + ".npy");
    write_file(path, npy_file(dict(order + "f4", "(2, 3)"), data));
    EXPECT_EQ(read_bits(path, 0, 2), bits) << "byte order '" << order << "'";
    EXPECT_EQ(read_bits(path, 1, 2), std::vector<uint32_t>(bits.begin() + 3, bits.end())) << order;
    // Through the identity reader (row 0 is finite and non-zero: it validates).
    const torch::Tensor row0 = io::read_contexts(npy_source(path), 0, 1, 3);
    EXPECT_EQ(row0[0][1].item<float>(), -0x1.921fb6p+1f) << order;
  }
}

TEST(Npy, Float16IsConvertedExactlyInBothByteOrders) {
  TempDir dir;
  // binary16 pattern -> the float32 value it denotes (sign, 5-bit exponent with bias 15, 10-bit fraction).
  const std::vector<uint16_t> halves = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x3555, 0x8000, 0x7C00, 0xFC00};
  const std::vector<float> expect = {1.0f,       -2.0f,       65504.0f, 0x1p-24f,  0x1.ff8p-15f,
                                     0x1.554p-2f, -0.0f,       INFINITY, -INFINITY};
  for (const bool big : {false, true}) {
    Bytes data;
    for (uint16_t h : halves) data += int_bytes(h, 2, big);
    const std::string path = dir.file(big ? "f2_big.npy" : "f2_little.npy");
    write_file(path, npy_file(dict(big ? ">f2" : "<f2", "(3, 3)"), data));
    EXPECT_EQ(read_bits(path, 0, 3), bits_of(expect)) << (big ? ">f2" : "<f2");
  }
  // A NaN half keeps its payload in the top fraction bits: 0x7E01 -> 0x7FC02000.
  const std::string nan_path = dir.file("f2_nan.npy");
  write_file(nan_path, npy_file(dict("<f2", "(1, 1)"), int_bytes(0x7E01, 2, false)));
  EXPECT_EQ(read_bits(nan_path, 0, 1), std::vector<uint32_t>{0x7FC02000u});
}

TEST(Npy, Float64RoundsToNearestEvenAndOverflowsToInf) {
  TempDir dir;
  const std::vector<double> in = {
      1.0 + 0x1p-24,               // halfway between 1 and 1 + 2^-23: ties to even -> 1
      1.0 + 3 * 0x1p-24,           // halfway between 1 + 2^-23 and 1 + 2^-22: ties to even -> 1 + 2^-22
      1.0 + 0x1p-24 + 0x1p-40,     // just above halfway -> 1 + 2^-23
      0.1,                         // -> 0x1.99999ap-4 (the float nearest 0.1)
      0x1.fffffefffffffp+127,      // below the midpoint FLT_MAX + half an ulp -> FLT_MAX
      0x1.ffffffp+127,             // exactly that midpoint: ties to even (FLT_MAX is odd) -> +inf
      -1e39,                       // -> -inf
      1.5 * 0x1p-149,              // halfway between the two smallest subnormals -> 2^-148 (even)
      1e-50,                       // -> +0
  };
  const std::vector<float> expect = {1.0f,     0x1.000004p+0f, 0x1.000002p+0f, 0x1.99999ap-4f, 0x1.fffffep+127f,
                                     INFINITY, -INFINITY,      0x1p-148f,      0.0f};
  for (const bool big : {false, true}) {
    Bytes data;
    for (double d : in) {
      uint64_t b = 0;
      std::memcpy(&b, &d, 8);
      data += int_bytes(b, 8, big);
    }
    const std::string path = dir.file(big ? "f8_big.npy" : "f8_little.npy");
    write_file(path, npy_file(dict(big ? ">f8" : "<f8", "(3, 3)"), data));
    EXPECT_EQ(read_bits(path, 0, 3), bits_of(expect)) << (big ? ">f8" : "<f8");
    // Through the identity reader: row 0 is fine, row 1 holds +-inf and fails validation naming it.
    EXPECT_EQ(io::read_contexts(npy_source(path), 0, 1, 3)[0][1].item<float>(), 0x1.000004p+0f);
    expect_error<InputError>([&] { io::read_contexts(npy_source(path), 0, 3, 3); },
                             {"global row 1", "column 2", "+Inf", path});
  }
}

TEST(Npy, FortranOrderRowsAreGatheredFromEveryColumn) {
  TempDir dir;
  const int64_t rows = 3, cols = 4;
  auto value = [](int64_t r, int64_t c) { return static_cast<float>(10 * r + c) + 0.5f; };
  Bytes f4, f8;
  for (int64_t c = 0; c < cols; ++c) {    // column-major: element (r, c) at index c * rows + r
    for (int64_t r = 0; r < rows; ++r) {
      f4 += int_bytes(bits_of(value(r, c)), 4, false);
      const double d = value(r, c);
      uint64_t b = 0;
      std::memcpy(&b, &d, 8);
      f8 += int_bytes(b, 8, true);
    }
  }
  const std::string p4 = dir.file("fortran_f4.npy"), p8 = dir.file("fortran_f8_big.npy");
  write_file(p4, npy_file(dict("<f4", "(3, 4)", true), f4));
  write_file(p8, npy_file(dict(">f8", "(3, 4)", true), f8));
  for (const std::string& path : {p4, p8}) {
    const torch::Tensor t = io::read_contexts(npy_source(path), 1, 3, cols);
    ASSERT_EQ(t.sizes(), (std::vector<int64_t>{2, cols}));
    for (int64_t r = 1; r < 3; ++r)
      for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(t[r - 1][c].item<float>(), value(r, c)) << path << " " << r << "," << c;
    EXPECT_EQ(io::context_rows(npy_source(path)), rows);
    EXPECT_EQ(io::context_width(npy_source(path)), cols);
  }
}

TEST(Npy, HeaderVersionsTwoAndThreeUseAFourByteLength) {
  TempDir dir;
  Bytes data;
  for (uint32_t b : {0x40000000u, 0xBF000000u}) data += int_bytes(b, 4, false);  // 2.0, -0.5
  for (int major : {2, 3}) {
    const std::string path = dir.file("v" + std::to_string(major) + ".npy");
    const Bytes file = npy_file(dict("<f4", "(1, 2)"), data, major);
    ASSERT_EQ(static_cast<unsigned char>(file[6]), major);
    ASSERT_EQ(file.size() % 64, 8u);  // 64-aligned data start, 8 bytes of data
    write_file(path, file);
    const io::NpyHeader h = io::read_npy_header(path);
    EXPECT_EQ(h.data_offset, 128);  // 12-byte preamble + 59-byte dictionary + newline, padded to 64
    EXPECT_EQ(read_bits(path, 0, 1), (std::vector<uint32_t>{0x40000000u, 0xBF000000u}));
  }
  // 3.0 allows UTF-8 in the header (field names of a structured dtype): refused as structured, bytes escaped.
  const std::string utf8 = dir.file("v3_structured.npy");
  write_file(utf8, npy_file("{'descr': [('\xc3\xa9', '<f4')], 'fortran_order': False, 'shape': (1, 2), }", data, 3));
  expect_error<InputError>([&] { io::context_rows(npy_source(utf8)); },
                           {"v3_structured.npy", "[('\\xc3\\xa9', '<f4')] (structured)", "float16, float32 or float64"});
}

TEST(Npy, RefusalsNameTheDtypeAsWritten) {
  TempDir dir;
  const Bytes data(64, '\x01');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"<i8", "'<i8' (int64)"},   {"|u1", "'|u1' (uint8)"},    {"|b1", "'|b1' (bool)"},
      {"<c8", "'<c8' (complex64)"}, {">c16", "'>c16' (complex128)"}, {"|O", "'|O' (object)"},
      {"<U4", "'<U4' (unicode string)"}, {"<f16", "'<f16' (float128)"}, {"<M8[ns]", "'<M8[ns]' (datetime64)"},
      {"xyz", "'xyz' (unknown dtype)"}};
  for (const auto& [descr, text] : cases) {
    const std::string path = dir.file("bad_dtype.npy");
    write_file(path, npy_file(dict(descr, "(2, 2)"), data));
    expect_error<InputError>([&] { io::read_contexts(npy_source(path), 0, 1, 2); }, {"bad_dtype.npy", text});
  }
  const std::string structured = dir.file("structured.npy");
  write_file(structured,
             npy_file("{'descr': [('x', '<f4'), ('y', '<f4')], 'fortran_order': False, 'shape': (2,), }", data));
  expect_error<InputError>([&] { io::context_rows(npy_source(structured)); },
                           {"structured.npy", "[('x', '<f4'), ('y', '<f4')] (structured)"});
  for (const auto& [shape, text] : std::vector<std::pair<std::string, std::string>>{
           {"()", "0-D"}, {"(8,)", "1-D"}, {"(2, 2, 2)", "3-D"}}) {
    const std::string path = dir.file("rank.npy");
    write_file(path, npy_file(dict("<f4", shape), Bytes(32, '\0')));
    expect_error<InputError>([&] { io::context_width(npy_source(path)); }, {"rank.npy", text, "2-D"});
  }
}

TEST(Npy, TruncatedDataIsAnInputErrorNamingTheMissingRows) {
  TempDir dir;
  const std::string path = dir.file("short.npy");
  write_file(path, npy_file(dict(">f4", "(5, 3)"), Bytes(3 * 3 * 4 + 5, '\x3f')));  // 3 rows and a bit
  expect_error<InputError>([&] { io::context_rows(npy_source(path)); },
                           {"short.npy", "truncated", "60 bytes", "41 data bytes", "rows from 3 on"});
  expect_error<InputError>([&] { io::read_contexts(npy_source(path), 0, 1, 3); }, {"short.npy", "truncated"});
}

// Every prefix of a valid file, and a set of malformed headers: InputError or a correct read, never anything else.
TEST(Npy, MalformedAndCutHeadersAreRefusedCleanly) {
  TempDir dir;
  Bytes data;
  for (uint32_t b : {0x3F800000u, 0x40000000u}) data += int_bytes(b, 4, true);
  const Bytes full = npy_file(dict(">f4", "(1, 2)"), data, 2);
  const std::string path = dir.file("cut.npy");
  for (size_t n = 0; n <= full.size(); ++n) {
    write_file(path, full.substr(0, n));
    if (n == full.size()) {
      EXPECT_EQ(read_bits(path, 0, 1), (std::vector<uint32_t>{0x3F800000u, 0x40000000u}));
    } else {
      expect_error<InputError>([&] { io::read_contexts(npy_source(path), 0, 1, 2); }, {"cut.npy"});
    }
  }
  const std::vector<std::string> dicts = {
      "",
      "{",
      "{'descr': '<f4",
      "{'descr': [('x', '<f4')",
      "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1, 2)}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1, -2)}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 2)}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1 2)}",
      "{'descr': '<f4', 'fortran_order': False}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), 'extra': 1}",
      "{'descr': '<f4' 'fortran_order': False, 'shape': (1, 2)}",
      std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2)\0}", 56),
      "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904)}",
  };
  for (const std::string& d : dicts) {
    write_file(path, npy_file(d, data));
    expect_error<InputError>([&] { io::read_contexts(npy_source(path), 0, 1, 2); }, {"cut.npy"});
  }
  // A header length that runs past the end of the file.
  write_file(path, Bytes("\x93NUMPY\x03\x00\xff\xff\xff\xff{}", 14));
  expect_error<InputError>([&] { io::read_npy_header(path); }, {"runs past the end"});
  write_file(path, Bytes("\x93NUMPY\x04\x00\x10\x00", 10));
  expect_error<InputError>([&] { io::read_npy_header(path); }, {"version 4.0"});
}

}  // namespace
