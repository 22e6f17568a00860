// Serial tests of adaptdiff::io: SHA-256, context-source parsing, .npy/HDF5/synthetic context readers
// and their validation errors. Test inputs are written here with independent writers (raw .npy bytes,
// the HDF5 C API); expected values are computed from row/column indices.
#include <gtest/gtest.h>

#include "support/expect_error.hpp"
#include <hdf5.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "io/identities.hpp"
#include "io/sha256.hpp"

namespace fs = std::filesystem;
using adaptdiff::InputError;
using adaptdiff::IoError;
namespace io = adaptdiff::io;

namespace {

// ---- helpers ---------------------------------------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/adaptdiff_io_unit_XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

using adaptdiff::test::expect_error;

// Independent .npy writer: magic, version, little-endian header length, dict padded with spaces to a
// multiple of 64 bytes and terminated by '\n', then the raw bytes.
void write_npy(const std::string& path, const std::string& descr, const std::vector<int64_t>& shape,
               const void* data, size_t bytes, int major = 1, bool fortran = false) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) dict += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? ", " : "");
  dict += "), }";
  const size_t prefix = major == 1 ? 10 : 12;
  size_t total = prefix + dict.size() + 1;
  const size_t padded = (total + 63) / 64 * 64;
  dict += std::string(padded - total, ' ') + "\n";
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY", 6);
  out.put(static_cast<char>(major));
  out.put(0);
  const uint32_t len = static_cast<uint32_t>(dict.size());
  for (size_t i = 0; i < (major == 1 ? 2u : 4u); ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xFF));
  out << dict;
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  ASSERT_TRUE(out.good());
}

// Value at (row, col) used by the file-based tests; exactly representable in float32.
double value_at(int64_t r, int64_t c) { return 0.5 + r * 10.0 + c * 0.25; }
// A value that float32 cannot represent exactly, to test float64 -> float32 conversion.
double value64_at(int64_t r, int64_t c) { return 0.1 * (r + 1) + 1.0 / (3.0 + c); }

std::vector<float> make_f32(int64_t rows, int64_t cols) {
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) v[static_cast<size_t>(r * cols + c)] = static_cast<float>(value_at(r, c));
  return v;
}
std::vector<double> make_f64(int64_t rows, int64_t cols) {
  std::vector<double> v(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) v[static_cast<size_t>(r * cols + c)] = value64_at(r, c);
  return v;
}

// Expected float32 tensor of rows [a, b) built element by element from `f`.
torch::Tensor expected_rows(int64_t a, int64_t b, int64_t cols, double (*f)(int64_t, int64_t)) {
  torch::Tensor t = torch::empty({b - a, cols}, torch::kFloat32);
  auto acc = t.accessor<float, 2>();
  for (int64_t r = a; r < b; ++r)
    for (int64_t c = 0; c < cols; ++c) acc[r - a][c] = static_cast<float>(f(r, c));
  return t;
}

#define H5OK(call) ASSERT_GE((call), 0) << #call

// Writes `data` (rows x cols) as dataset `name` (intermediate groups created) of type `file_type`,
// from memory type `mem_type`. Appends to the file when it exists.
void write_h5(const std::string& path, const std::string& name, hid_t file_type, hid_t mem_type,
              const std::vector<hsize_t>& dims, const void* data) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  hid_t file = fs::exists(path) ? H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)
                                : H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
  H5OK(file);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5OK(lcpl);
  H5OK(H5Pset_create_intermediate_group(lcpl, 1));
  hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  H5OK(space);
  hid_t dset = H5Dcreate2(file, name.c_str(), file_type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5OK(dset);
  H5OK(H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
  H5OK(H5Dclose(dset));
  H5OK(H5Sclose(space));
  H5OK(H5Pclose(lcpl));
  H5OK(H5Fclose(file));
}

void make_group(const std::string& path, const std::string& name) {
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  H5OK(file);
  hid_t g = H5Gcreate2(file, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5OK(g);
  H5OK(H5Gclose(g));
  H5OK(H5Fclose(file));
}

io::ContextSource npy_source(const std::string& path) {
  io::ContextSource s;
  s.kind = io::ContextSource::Kind::kNpy;
  s.path = path;
  return s;
}
io::ContextSource h5_source(const std::string& path, const std::string& dataset = "contexts") {
  io::ContextSource s;
  s.kind = io::ContextSource::Kind::kHdf5;
  s.path = path;
  s.dataset = dataset;
  return s;
}
io::ContextSource synthetic(uint64_t seed) {
  io::ContextSource s;
  s.kind = io::ContextSource::Kind::kSyntheticUniform;
  s.seed = seed;
  return s;
}

// ---- SHA-256 ----------------------------------------------------------------------------------------

TEST(Sha256, KnownDigestsOfStrings) {
  EXPECT_EQ(io::sha256_bytes("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(io::sha256_bytes(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(io::sha256_bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, KnownDigestsOfFiles) {
  TempDir dir;
  {
    std::ofstream(dir.file("abc.txt"), std::ios::binary) << "abc";
    std::ofstream(dir.file("empty.txt"), std::ios::binary);
    // NIST vector: one million 'a' (spans several 256 KiB read chunks).
    std::ofstream(dir.file("million_a.txt"), std::ios::binary) << std::string(1000000, 'a');
  }
  EXPECT_EQ(io::sha256_file(dir.file("abc.txt")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(io::sha256_file(dir.file("empty.txt")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(io::sha256_file(dir.file("million_a.txt")),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, UnreadableFilesThrowIoError) {
  TempDir dir;
  expect_error<IoError>([&] { io::sha256_file(dir.file("missing.bin")); }, {"missing.bin", "cannot open"});
  expect_error<IoError>([&] { io::sha256_file(dir.path()); }, {dir.path()});  // a directory
}

// ---- parse_context_source ----------------------------------------------------------------------------

TEST(ContextSource, ParsesAllForms) {
  const auto syn = io::parse_context_source("synthetic_uniform", "/base");
  EXPECT_EQ(syn.kind, io::ContextSource::Kind::kSyntheticUniform);
  EXPECT_TRUE(syn.path.empty());

  const auto h5 = io::parse_context_source("data/ids.h5", "/base/run");
  EXPECT_EQ(h5.kind, io::ContextSource::Kind::kHdf5);
  EXPECT_EQ(h5.path, "/base/run/data/ids.h5");
  EXPECT_EQ(h5.dataset, "contexts");

  const auto h5ds = io::parse_context_source("ids.hdf5:/emb/elastic", "/base");
  EXPECT_EQ(h5ds.kind, io::ContextSource::Kind::kHdf5);
  EXPECT_EQ(h5ds.path, "/base/ids.hdf5");
  EXPECT_EQ(h5ds.dataset, "/emb/elastic");

  const auto abs = io::parse_context_source("/abs/x.H5:grp/ds", "/base");
  EXPECT_EQ(abs.path, "/abs/x.H5");
  EXPECT_EQ(abs.dataset, "/grp/ds");

  const auto dir_with_ext = io::parse_context_source("/d/run.h5dir/x.h5", "");
  EXPECT_EQ(dir_with_ext.path, "/d/run.h5dir/x.h5");
  EXPECT_EQ(dir_with_ext.dataset, "contexts");

  const auto npy = io::parse_context_source("../ids.npy", "/base/run");
  EXPECT_EQ(npy.kind, io::ContextSource::Kind::kNpy);
  EXPECT_EQ(npy.path, "/base/ids.npy");

  const auto rel = io::parse_context_source("ids.npy", "");
  EXPECT_EQ(rel.path, "ids.npy");
}

TEST(ContextSource, RejectsBadSpecs) {
  expect_error<InputError>([] { io::parse_context_source("", "/b"); }, {"empty"});
  expect_error<InputError>([] { io::parse_context_source("ids.txt", "/b"); }, {"ids.txt", "synthetic_uniform"});
  expect_error<InputError>([] { io::parse_context_source("ids.h5:", "/b"); }, {"empty dataset path"});
  expect_error<InputError>([] { io::parse_context_source("synthetic", "/b"); }, {"synthetic"});
}

// ---- .npy ----------------------------------------------------------------------------------------------

TEST(NpyContexts, Float32RoundTripAndRowSlicing) {
  TempDir dir;
  const int64_t n = 6, w = 5;
  const auto data = make_f32(n, w);
  write_npy(dir.file("f32.npy"), "<f4", {n, w}, data.data(), data.size() * sizeof(float));
  const auto src = npy_source(dir.file("f32.npy"));
  EXPECT_EQ(io::context_rows(src), n);
  EXPECT_EQ(io::context_width(src), w);

  const torch::Tensor all = io::read_contexts(src, 0, n, w);
  EXPECT_EQ(all.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(all, expected_rows(0, n, w, value_at)));
  const torch::Tensor mid = io::read_contexts(src, 2, 5, w);
  EXPECT_EQ(mid.sizes(), (std::vector<int64_t>{3, w}));
  EXPECT_TRUE(torch::equal(mid, expected_rows(2, 5, w, value_at)));
  const torch::Tensor last = io::read_contexts(src, 5, 6, w);
  EXPECT_TRUE(torch::equal(last, expected_rows(5, 6, w, value_at)));
  EXPECT_EQ(io::read_contexts(src, 3, 3, w).sizes(), (std::vector<int64_t>{0, w}));
}

TEST(NpyContexts, Float64ConvertedToFloat32AllHeaderVersions) {
  TempDir dir;
  const int64_t n = 4, w = 7;
  const auto data = make_f64(n, w);
  for (int major : {1, 2, 3}) {
    const std::string path = dir.file("f64_v" + std::to_string(major) + ".npy");
    write_npy(path, "<f8", {n, w}, data.data(), data.size() * sizeof(double), major);
    const auto src = npy_source(path);
    EXPECT_EQ(io::context_rows(src), n) << "version " << major;
    const torch::Tensor got = io::read_contexts(src, 1, 4, w);
    EXPECT_EQ(got.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(got, expected_rows(1, 4, w, value64_at))) << "version " << major;
  }
}

TEST(NpyContexts, RejectsUnsupportedFiles) {
  // More layouts and refusals (byte orders, Fortran order, float16, every dtype kind): npy_test.cpp.
  TempDir dir;
  const auto data = make_f32(4, 3);
  const size_t bytes = data.size() * sizeof(float);
  write_npy(dir.file("int.npy"), "<i4", {4, 3}, data.data(), bytes);
  expect_error<InputError>([&] { io::read_contexts(npy_source(dir.file("int.npy")), 0, 1, 3); },
                           {"int.npy", "'<i4' (int32)"});
  write_npy(dir.file("three_d.npy"), "<f4", {2, 2, 3}, data.data(), bytes);
  expect_error<InputError>([&] { io::context_width(npy_source(dir.file("three_d.npy"))); }, {"3-D"});
  write_npy(dir.file("one_d.npy"), "<f4", {12}, data.data(), bytes);
  expect_error<InputError>([&] { io::context_width(npy_source(dir.file("one_d.npy"))); }, {"1-D"});
  write_npy(dir.file("truncated.npy"), "<f4", {5, 3}, data.data(), bytes);  // 4 rows of data for 5
  expect_error<InputError>([&] { io::context_rows(npy_source(dir.file("truncated.npy"))); },
                           {"truncated", "rows from 4 on"});
  std::ofstream(dir.file("not_npy.npy"), std::ios::binary) << "just some text, not an array";
  expect_error<InputError>([&] { io::context_rows(npy_source(dir.file("not_npy.npy"))); }, {"not a .npy file"});
  expect_error<IoError>([&] { io::read_contexts(npy_source(dir.file("missing.npy")), 0, 1, 3); },
                        {"missing.npy", "does not exist"});
}

TEST(NpyContexts, TooFewRowsSaysHowManyExist) {
  TempDir dir;
  const auto data = make_f32(6, 5);
  write_npy(dir.file("six.npy"), "<f4", {6, 5}, data.data(), data.size() * sizeof(float));
  expect_error<InputError>([&] { io::read_contexts(npy_source(dir.file("six.npy")), 4, 9, 5); },
                           {"six.npy", "[4, 9)", "only 6 rows"});
  expect_error<InputError>([&] { io::read_contexts(npy_source(dir.file("six.npy")), 3, 2, 5); }, {"invalid row range"});
}

// ---- HDF5 ---------------------------------------------------------------------------------------------

TEST(Hdf5Contexts, DefaultDatasetNameFloat32) {
  TempDir dir;
  const std::string path = dir.file("ids.h5");
  const int64_t n = 7, w = 4;
  const auto data = make_f32(n, w);
  write_h5(path, "contexts", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {n, w}, data.data());
  const auto src = io::parse_context_source("ids.h5", dir.path());
  EXPECT_EQ(io::context_rows(src), n);
  EXPECT_EQ(io::context_width(src), w);
  EXPECT_TRUE(torch::equal(io::read_contexts(src, 0, n, w), expected_rows(0, n, w, value_at)));
  EXPECT_TRUE(torch::equal(io::read_contexts(src, 1, 4, w), expected_rows(1, 4, w, value_at)));
  EXPECT_TRUE(torch::equal(io::read_contexts(src, 6, 7, w), expected_rows(6, 7, w, value_at)));
}

TEST(Hdf5Contexts, ExplicitNestedDatasetFloat64BigEndian) {
  TempDir dir;
  const std::string path = dir.file("nested.h5");
  const int64_t n = 5, w = 3;
  const auto data = make_f64(n, w);
  write_h5(path, "/group/sub/embeddings", H5T_IEEE_F64BE, H5T_NATIVE_DOUBLE, {n, w}, data.data());
  const auto src = io::parse_context_source(path + ":/group/sub/embeddings", "/ignored");
  EXPECT_EQ(src.dataset, "/group/sub/embeddings");
  EXPECT_EQ(io::context_rows(src), n);
  const torch::Tensor got = io::read_contexts(src, 2, 5, w);
  EXPECT_EQ(got.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(got, expected_rows(2, 5, w, value64_at)));
}

TEST(Hdf5Contexts, ErrorsNameTheFileAndWhatIsThere) {
  TempDir dir;
  const std::string path = dir.file("other.h5");
  const auto data = make_f32(6, 4);
  write_h5(path, "contexts_elastic", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {6, 4}, data.data());
  write_h5(path, "cube", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {2, 3, 4}, data.data());
  std::vector<int32_t> ints(24, 1);
  write_h5(path, "ints", H5T_STD_I32LE, H5T_NATIVE_INT32, {6, 4}, ints.data());
  make_group(path, "meta");

  // Missing dataset: lists the root group's members.
  expect_error<InputError>([&] { io::context_rows(h5_source(path)); },
                           {"'/contexts' not found", path, "contexts_elastic (dataset [6, 4] float32)", "meta (group)",
                            "cube (dataset [2, 3, 4] float32)"});
  expect_error<InputError>([&] { io::read_contexts(h5_source(path, "/meta/x"), 0, 1, 4); }, {"'/meta/x' not found"});
  expect_error<InputError>([&] { io::read_contexts(h5_source(path, "/nogroup/x"), 0, 1, 4); },
                           {"'/nogroup' does not exist"});
  expect_error<InputError>([&] { io::context_rows(h5_source(path, "/meta")); }, {"not a dataset"});
  expect_error<InputError>([&] { io::context_rows(h5_source(path, "cube")); }, {"3-D", "[2, 3, 4]", path});
  expect_error<InputError>([&] { io::context_rows(h5_source(path, "ints")); }, {"int32", "float32 or float64"});
  expect_error<InputError>([&] { io::read_contexts(h5_source(path, "contexts_elastic"), 2, 8, 4); },
                           {"[2, 8)", "only 6 rows", path});
  // Missing file; a file that is not HDF5.
  expect_error<IoError>([&] { io::read_contexts(h5_source(dir.file("nope.h5")), 0, 1, 4); },
                        {"nope.h5", "does not exist"});
  std::ofstream(dir.file("text.h5")) << "not hdf5";
  expect_error<IoError>([&] { io::context_rows(h5_source(dir.file("text.h5"))); },
                        {"text.h5", "H5Fopen", "file signature not found", "---> HINT: check that the file exists"});
}

TEST(Hdf5Contexts, FileLockingFailureGivesHintAndCanBeDisabled) {
  if (std::getenv("HDF5_USE_FILE_LOCKING") != nullptr) GTEST_SKIP() << "HDF5_USE_FILE_LOCKING is set";
  TempDir dir;
  const std::string path = dir.file("locked.h5");
  const auto data = make_f32(3, 4);
  write_h5(path, "contexts", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {3, 4}, data.data());
  // Another holder of an exclusive lock makes HDF5's own flock() fail, as a broken NFS lock would.
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  auto src = h5_source(path);
  expect_error<IoError>([&] { io::read_contexts(src, 0, 3, 4); },
                        {"locked.h5", "H5Fopen", "unable to lock file",
                         "---> HINT: set HDF5_USE_FILE_LOCKING=FALSE (or output.file_locking = false"});
  src.file_locking = false;
  EXPECT_TRUE(torch::equal(io::read_contexts(src, 0, 3, 4), expected_rows(0, 3, 4, value_at)));
  ::close(fd);
}

// ---- validation ------------------------------------------------------------------------------------------

TEST(ValidateContexts, NanRowNamedByGlobalRowAndColumn) {
  TempDir dir;
  const int64_t n = 8, w = 6;
  auto data = make_f32(n, w);
  data[4 * w + 2] = std::numeric_limits<float>::quiet_NaN();
  write_npy(dir.file("nan.npy"), "<f4", {n, w}, data.data(), data.size() * sizeof(float));
  const auto src = npy_source(dir.file("nan.npy"));
  expect_error<InputError>([&] { io::read_contexts(src, 2, 7, w); },
                           {"global row 4", "column 2", "NaN", "nan.npy", "HINT"});
  // Rows that do not contain the bad value read fine.
  EXPECT_TRUE(torch::equal(io::read_contexts(src, 5, 8, w), expected_rows(5, 8, w, value_at)));
}

TEST(ValidateContexts, InfZeroNormAndWidth) {
  torch::Tensor rows = expected_rows(0, 4, 8, value_at);
  EXPECT_NO_THROW(io::validate_contexts(rows, 100, "mem", 8));

  torch::Tensor inf = rows.clone();
  inf[1][5] = -std::numeric_limits<float>::infinity();
  inf[3][0] = std::numeric_limits<float>::infinity();
  expect_error<InputError>([&] { io::validate_contexts(inf, 100, "ids.h5:/contexts", 8); },
                           {"global row 101", "column 5", "-Inf", "ids.h5:/contexts"});

  torch::Tensor zero = rows.clone();
  zero[3].zero_();
  expect_error<InputError>([&] { io::validate_contexts(zero, 40, "z.npy", 8); },
                           {"global row 43", "zero L2 norm", "z.npy", "HINT"});
  // Small rows are fine; a row below F.normalize's eps (1e-12) cannot be normalised and counts as zero.
  torch::Tensor small = rows.clone();
  small[2].fill_(1e-6f);
  EXPECT_NO_THROW(io::validate_contexts(small, 0, "small", 8));
  torch::Tensor tiny = rows.clone();
  tiny[2].fill_(1e-20f);
  expect_error<InputError>([&] { io::validate_contexts(tiny, 0, "tiny", 8); }, {"global row 2", "2.83e-20 < 1e-12"});

  expect_error<InputError>([&] { io::validate_contexts(rows, 0, "w.npy", 512); },
                           {"width 8", "expected 512", "w.npy", "HINT"});
  expect_error<InputError>([&] { io::validate_contexts(torch::zeros({4}), 0, "v", 4); }, {"2-D"});
  expect_error<InputError>([&] { io::validate_contexts(torch::ones({2, 4}, torch::kInt64), 0, "v", 4); },
                           {"floating-point"});
}

TEST(ValidateContexts, WrongWidthFromFile) {
  TempDir dir;
  const auto data = make_f32(3, 5);
  write_h5(dir.file("w5.h5"), "contexts", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {3, 5}, data.data());
  expect_error<InputError>([&] { io::read_contexts(h5_source(dir.file("w5.h5")), 0, 3); },
                           {"width 5", "expected 512", "w5.h5:/contexts"});
}

// ---- synthetic ----------------------------------------------------------------------------------------

TEST(SyntheticContexts, UnitNormsAndRowsIndependentOfTheRequest) {
  const auto src = synthetic(1234);
  EXPECT_EQ(io::context_rows(src), -1);
  EXPECT_EQ(io::context_width(src), -1);
  const torch::Tensor all = io::read_contexts(src, 0, 10);
  ASSERT_EQ(all.sizes(), (std::vector<int64_t>{10, 512}));
  EXPECT_EQ(all.scalar_type(), torch::kFloat32);
  const torch::Tensor norms = all.to(torch::kFloat64).norm(2, 1);
  EXPECT_LT((norms - 1.0).abs().max().item<double>(), 1e-6);

  const torch::Tensor part = io::read_contexts(src, 3, 7);
  EXPECT_TRUE(torch::equal(part, all.slice(0, 3, 7)));
  EXPECT_TRUE(torch::equal(io::read_contexts(src, 9, 10), all.slice(0, 9, 10)));

  // Same as the Python expression F.normalize(torch.randn(10, 512), dim=1) after manual_seed(1234),
  // evaluated here in one piece with torch's own functional normalize.
  at::Generator gen = at::detail::createCPUGenerator(1234);
  const torch::Tensor direct = torch::nn::functional::normalize(
      torch::randn({10, 512}, gen, torch::kFloat32), torch::nn::functional::NormalizeFuncOptions().dim(1));
  EXPECT_TRUE(torch::equal(all, direct));
}

TEST(SyntheticContexts, SeedsDifferAndOddWidthsStayConsistent) {
  const torch::Tensor a = io::read_contexts(synthetic(1), 0, 4);
  const torch::Tensor a2 = io::read_contexts(synthetic(1), 0, 4);
  const torch::Tensor b = io::read_contexts(synthetic(2), 0, 4);
  EXPECT_TRUE(torch::equal(a, a2));
  EXPECT_GT((a - b).abs().max().item<float>(), 0.1f);

  // Width 20: rows straddle the 16-value blocks of torch's sampler; slices must still agree.
  const torch::Tensor all = io::read_contexts(synthetic(77), 0, 10, 20);
  EXPECT_EQ(all.sizes(), (std::vector<int64_t>{10, 20}));
  for (auto [lo, hi] : std::vector<std::pair<int64_t, int64_t>>{{3, 7}, {1, 2}, {9, 10}, {0, 1}}) {
    EXPECT_TRUE(torch::equal(io::read_contexts(synthetic(77), lo, hi, 20), all.slice(0, lo, hi)))
        << "rows [" << lo << ", " << hi << ")";
  }
  EXPECT_EQ(io::read_contexts(synthetic(77), 5, 5, 20).sizes(), (std::vector<int64_t>{0, 20}));
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
