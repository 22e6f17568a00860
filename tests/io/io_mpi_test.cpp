// MPI tests of the output store (run with 1 and 2 ranks): collective create, uneven independent
// writes (including ranks with no rows), read-back of every value by rank 0 with StoreReader and with the
// raw HDF5 C API (storage layout, allocation, types, attributes), restart with open_existing, argument
// and range validation, and clear errors for paths that cannot be created.
//
// Contents are deterministic functions of the row/column indices, computed independently by the
// writers and the checker.
#include <gtest/gtest.h>

#include "support/expect_error.hpp"
#include <hdf5.h>
#include <mpi.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "dist/comm.hpp"
#include "io/store.hpp"
#include "io/store_reader.hpp"

namespace fs = std::filesystem;
using adaptdiff::IoError;
namespace io = adaptdiff::io;

namespace {

int rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int size() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

// MPI_COMM_WORLD as the store takes it (not owned; made on first use, after MPI_Init).
const adaptdiff::dist::Comm& world() {
  static const adaptdiff::dist::Comm comm(MPI_COMM_WORLD, false);
  return comm;
}

// Rank 0 chooses a string, every rank gets it.
std::string bcast_string(std::string s) {
  int len = static_cast<int>(s.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD);
  s.resize(static_cast<size_t>(len));
  MPI_Bcast(s.data(), len, MPI_CHAR, 0, MPI_COMM_WORLD);
  return s;
}

// A fresh directory under /tmp shared by all ranks (same node), removed at the end.
class SharedTempDir {
 public:
  SharedTempDir() {
    std::string dir;
    if (rank() == 0) {
      std::string tmpl = "/tmp/adaptdiff_io_mpi_XXXXXX";
      if (mkdtemp(tmpl.data()) != nullptr) dir = tmpl;
    }
    path_ = bcast_string(dir);
  }
  ~SharedTempDir() {
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank() == 0 && !path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Rows [begin, end) of `total` rows for this rank, deliberately uneven: rank r gets a share growing
// with r^2, so with 2 ranks rank 0 gets a quarter.
std::pair<int64_t, int64_t> uneven_share(int64_t total) {
  const int64_t p = size(), r = rank();
  return {total * r * r / (p * p), total * (r + 1) * (r + 1) / (p * p)};
}
// All rows on the last rank; every other rank gets none.
std::pair<int64_t, int64_t> last_rank_share(int64_t total) {
  return rank() == size() - 1 ? std::make_pair(int64_t{0}, total) : std::make_pair(total, total);
}

uint8_t image_value(int64_t row, int64_t y, int64_t x, int64_t c) {
  return static_cast<uint8_t>((row * 37 + y * 11 + x * 5 + c * 101 + 7) % 251);
}
torch::Tensor images_for(int64_t begin, int64_t end, int64_t h, int64_t w) {
  torch::Tensor t = torch::empty({end - begin, h, w, 3}, torch::kUInt8);
  auto a = t.accessor<uint8_t, 4>();
  for (int64_t r = begin; r < end; ++r)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t c = 0; c < 3; ++c) a[r - begin][y][x][c] = image_value(r, y, x, c);
  return t;
}
torch::Tensor iota64(int64_t begin, int64_t end, int64_t mul, int64_t add, int64_t mod = 0) {
  torch::Tensor t = torch::empty({end - begin}, torch::kInt64);
  for (int64_t i = begin; i < end; ++i) {
    int64_t v = i * mul + add;
    if (mod > 0) v %= mod;
    t[i - begin] = v;
  }
  return t;
}
torch::Tensor identity_for(int64_t begin, int64_t end, int64_t k) {
  torch::Tensor t = torch::empty({end - begin}, torch::kInt64);
  for (int64_t i = begin; i < end; ++i) t[i - begin] = i / k;
  return t;
}
torch::Tensor contexts_for(int64_t begin, int64_t end, int64_t d) {
  torch::Tensor t = torch::empty({end - begin, d}, torch::kFloat32);
  auto a = t.accessor<float, 2>();
  for (int64_t i = begin; i < end; ++i)
    for (int64_t j = 0; j < d; ++j) a[i - begin][j] = static_cast<float>(i) + static_cast<float>(j) / 64.0f - 0.125f;
  return t;
}
torch::Tensor similarity_for(int64_t begin, int64_t end) {
  torch::Tensor t = torch::empty({end - begin}, torch::kFloat32);
  for (int64_t i = begin; i < end; ++i) t[i - begin] = -0.5f + 0.015625f * static_cast<float>(i);
  return t;
}
torch::Tensor latents_for(int64_t begin, int64_t end, int64_t c, int64_t h, int64_t w) {
  const torch::Tensor idx = torch::arange(begin * c * h * w, end * c * h * w, torch::kFloat64);
  return (idx * 0.001 - 3.0).to(torch::kFloat32).reshape({end - begin, c, h, w});
}

io::StoreLayout small_layout() {
  io::StoreLayout l;
  l.identities = 5;
  l.images_per_identity = 3;
  l.height = 4;
  l.width = 6;
  l.context_dim = 16;
  return l;
}

std::map<std::string, std::string> test_attributes() {
  std::string toml = "# run config\n[output]\npath = \"faces.h5\"\nnote = \"caf\xC3\xA9 \xE2\x9C\x93\"\n";
  while (toml.size() < 20000) toml += "# padding line to make the attribute larger than 16 KiB\n";
  return {{"config_toml", toml},
          {"sha256_unet", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
          {"version", "0.1.0"},
          {"layout_version", "1"},
          {"empty", ""}};
}

// Writes this rank's share of every dataset of a store with `layout`; images in chunks of two rows,
// last chunk first.
void write_share(io::OutputStore& store, const io::StoreLayout& l) {
  const int64_t nk = l.image_rows(), n = l.identities;
  const auto [ib, ie] = uneven_share(nk);
  std::vector<std::pair<int64_t, int64_t>> chunks;
  for (int64_t r = ib; r < ie; r += 2) chunks.emplace_back(r, std::min(r + 2, ie));
  for (auto it = chunks.rbegin(); it != chunks.rend(); ++it) {
    store.write_images(it->first, images_for(it->first, it->second, l.height, l.width));
  }
  store.write_samples_labels(ib, identity_for(ib, ie, l.images_per_identity),
                             iota64(ib, ie, 1, 0, l.images_per_identity));
  store.write_compute_batch_sizes(ib, iota64(ib, ie, 3, 1, 7));
  if (l.store_latents) store.write_latents(ib, latents_for(ib, ie, l.latent_c, l.latent_h, l.latent_w));
  const auto [cb, ce] = last_rank_share(n);  // ranks other than the last write zero rows
  store.write_contexts(cb, contexts_for(cb, ce, l.context_dim));
  const auto [gb, ge] = uneven_share(n);
  store.write_negatives(gb, iota64(gb, ge, 1, 1, n), similarity_for(gb, ge));
}

// Rank 0: every value of the file equals what write_share() wrote.
void check_contents(const std::string& path, const io::StoreLayout& l) {
  io::StoreReader reader(path);
  EXPECT_EQ(reader.layout(), l);
  const int64_t nk = l.image_rows(), n = l.identities;
  EXPECT_TRUE(torch::equal(reader.read_images(0, nk), images_for(0, nk, l.height, l.width)));
  EXPECT_TRUE(torch::equal(reader.read_images(4, 9), images_for(4, 9, l.height, l.width)));
  EXPECT_TRUE(torch::equal(reader.read_int64("identity"), identity_for(0, nk, l.images_per_identity)));
  EXPECT_TRUE(torch::equal(reader.read_int64("sample_index"), iota64(0, nk, 1, 0, l.images_per_identity)));
  EXPECT_TRUE(torch::equal(reader.read_int64("compute_batch_size"), iota64(0, nk, 3, 1, 7)));
  EXPECT_TRUE(torch::equal(reader.read_float32("contexts"), contexts_for(0, n, l.context_dim)));
  EXPECT_TRUE(torch::equal(reader.read_int64("negative_index"), iota64(0, n, 1, 1, n)));
  EXPECT_TRUE(torch::equal(reader.read_float32("negative_similarity"), similarity_for(0, n)));
  EXPECT_EQ(reader.has_dataset("latents"), l.store_latents);
  if (l.store_latents) {
    EXPECT_TRUE(torch::equal(reader.read_float32("latents"), latents_for(0, nk, l.latent_c, l.latent_h, l.latent_w)));
  }
}

// Rank 0, raw HDF5 C API: datasets are contiguous, allocated early, never filled, of the documented
// file types; the attribute `config_toml` (when `attributes`) is a variable-length UTF-8 string.
void check_storage(const std::string& path, bool latents, bool attributes) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  std::vector<std::pair<std::string, hid_t>> expected = {
      {"images", H5T_STD_U8LE},         {"identity", H5T_STD_I64LE},       {"sample_index", H5T_STD_I64LE},
      {"contexts", H5T_IEEE_F32LE},     {"negative_index", H5T_STD_I64LE}, {"negative_similarity", H5T_IEEE_F32LE},
      {"sample_checksum", H5T_STD_I64LE}, {"compute_batch_size", H5T_STD_I64LE}};
  if (latents) expected.emplace_back("latents", H5T_IEEE_F32LE);
  for (const auto& [name, type] : expected) {
    const hid_t d = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
    ASSERT_GE(d, 0) << name;
    H5D_space_status_t status{};
    EXPECT_GE(H5Dget_space_status(d, &status), 0);
    EXPECT_EQ(status, H5D_SPACE_STATUS_ALLOCATED) << name;
    EXPECT_NE(H5Dget_offset(d), HADDR_UNDEF) << name;  // defined only for contiguous, allocated storage
    const hid_t dcpl = H5Dget_create_plist(d);
    EXPECT_EQ(H5Pget_layout(dcpl), H5D_CONTIGUOUS) << name;
    H5D_alloc_time_t alloc{};
    H5D_fill_time_t fill{};
    EXPECT_GE(H5Pget_alloc_time(dcpl, &alloc), 0);
    EXPECT_GE(H5Pget_fill_time(dcpl, &fill), 0);
    EXPECT_EQ(alloc, H5D_ALLOC_TIME_EARLY) << name;
    EXPECT_EQ(fill, H5D_FILL_TIME_NEVER) << name;
    const hid_t t = H5Dget_type(d);
    EXPECT_GT(H5Tequal(t, type), 0) << name;
    H5Tclose(t);
    H5Pclose(dcpl);
    H5Dclose(d);
  }
  if (!attributes) {
    EXPECT_EQ(H5Aexists(file, "config_toml"), 0);
    EXPECT_GE(H5Fclose(file), 0);
    return;
  }
  const hid_t a = H5Aopen(file, "config_toml", H5P_DEFAULT);
  ASSERT_GE(a, 0);
  const hid_t at = H5Aget_type(a);
  EXPECT_EQ(H5Tget_class(at), H5T_STRING);
  EXPECT_GT(H5Tis_variable_str(at), 0);
  EXPECT_EQ(H5Tget_cset(at), H5T_CSET_UTF8);
  H5Tclose(at);
  H5Aclose(a);
  EXPECT_GE(H5Fclose(file), 0);
}

// Runs `fn` on rank 0 only (its ASSERTs end only `fn`), then synchronises.
void on_rank0(const std::function<void()>& fn) {
  if (rank() == 0) fn();
  MPI_Barrier(MPI_COMM_WORLD);
}

using adaptdiff::test::expect_error;

// ---- tests -----------------------------------------------------------------------------------------------

TEST(OutputStore, CollectiveCreateUnevenWritesReadBack) {
  SharedTempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.file("out.h5");
  const auto layout = small_layout();
  const auto attrs = test_attributes();
  {
    io::OutputStore store = io::OutputStore::create(world(), path, layout, attrs);
    EXPECT_EQ(store.layout(), layout);
    EXPECT_EQ(store.string_attribute("version"), "0.1.0");
    write_share(store, layout);
    store.flush();
    store.close();
    EXPECT_FALSE(store.is_open());
    store.close();  // idempotent
  }
  on_rank0([&] {
    check_contents(path, layout);
    check_storage(path, false, true);
    io::StoreReader reader(path);
    EXPECT_EQ(reader.string_attributes(), attrs);
    EXPECT_EQ(reader.string_attribute("config_toml"), attrs.at("config_toml"));
    expect_error<IoError>([&] { reader.string_attribute("nope"); },
                          {"'nope' not found", "config_toml", "sha256_unet", path});
    expect_error<IoError>([&] { reader.read_images(10, 16); }, {"[10, 16)", "outside [0, 15)"});
    expect_error<IoError>([&] { reader.read_float32("identity"); }, {"int64", "float"});
    expect_error<IoError>([&] { reader.read_int64("missing"); }, {"no dataset 'missing'", "images (dataset"});
  });
}

TEST(OutputStore, LatentsAreStoredWhenAsked) {
  SharedTempDir dir;
  const std::string path = dir.file("latents.h5");
  auto layout = small_layout();
  layout.identities = 3;
  layout.images_per_identity = 4;
  layout.store_latents = true;
  layout.latent_c = 3;
  layout.latent_h = 2;
  layout.latent_w = 5;
  {
    io::OutputStore store = io::OutputStore::create(world(), path, layout, {});
    write_share(store, layout);
    store.close();
  }
  on_rank0([&] {
    check_contents(path, layout);
    check_storage(path, true, false);
    EXPECT_TRUE(io::StoreReader(path).string_attributes().empty());
  });
}

TEST(OutputStore, WriteValidation) {
  SharedTempDir dir;
  const std::string path = dir.file("validate.h5");
  const auto l = small_layout();  // N*K = 15
  io::OutputStore store = io::OutputStore::create(world(), path, l, {});
  expect_error<IoError>([&] { store.write_images(14, images_for(14, 16, l.height, l.width)); },
                        {"store::write_images", "rows [14, 16) outside [0, 15)"});
  expect_error<IoError>([&] { store.write_images(-1, images_for(0, 1, l.height, l.width)); }, {"rows [-1, 0)"});
  expect_error<IoError>([&] { store.write_images(0, torch::zeros({1, l.height, l.width, 3})); },
                        {"uint8", "Float"});
  expect_error<IoError>([&] { store.write_images(0, torch::zeros({1, 3, l.height, l.width}, torch::kUInt8)); },
                        {"[n, 4, 6, 3]", "[1, 3, 4, 6]"});
  expect_error<IoError>([&] { store.write_latents(0, torch::zeros({1, 3, 2, 2})); }, {"no 'latents' dataset"});
  expect_error<IoError>([&] { store.write_samples_labels(0, iota64(0, 3, 1, 0), iota64(0, 2, 1, 0)); },
                        {"identity has 3 rows but sample_index 2"});
  expect_error<IoError>([&] { store.write_contexts(5, contexts_for(0, 1, l.context_dim)); },
                        {"store::write_contexts", "rows [5, 6) outside [0, 5)"});
  expect_error<IoError>([&] { store.write_contexts(0, contexts_for(0, 1, 512)); }, {"[n, 16]"});
  expect_error<IoError>([&] { store.write_negatives(0, iota64(0, 2, 1, 0), torch::zeros({2}, torch::kFloat64)); },
                        {"float32", "Double"});
  // Zero-row writes are no-ops, also at the end of the range.
  EXPECT_NO_THROW(store.write_images(15, images_for(15, 15, l.height, l.width)));
  EXPECT_NO_THROW(store.write_negatives(5, iota64(0, 0, 1, 0), similarity_for(0, 0)));
  // A non-contiguous tensor is accepted and written in logical order.
  if (rank() == 0) {
    const torch::Tensor t = images_for(0, 2, l.height, l.width).permute({0, 2, 1, 3}).contiguous().permute({0, 2, 1, 3});
    ASSERT_FALSE(t.is_contiguous());
    EXPECT_NO_THROW(store.write_images(0, t));
  }
  store.close();
  expect_error<IoError>([&] { store.write_images(0, images_for(0, 1, l.height, l.width)); }, {"closed"});
  on_rank0([&] { EXPECT_TRUE(torch::equal(io::StoreReader(path).read_images(0, 2), images_for(0, 2, l.height, l.width))); });
}

TEST(OutputStore, OpenExistingForRestart) {
  SharedTempDir dir;
  const std::string path = dir.file("restart.h5");
  const auto l = small_layout();
  io::StoreOptions no_lock;
  no_lock.file_locking = false;
  {
    io::OutputStore store = io::OutputStore::create(world(), path, l, test_attributes(), no_lock);
    // First "run": only images of the first identity, written by rank 0.
    if (rank() == 0) store.write_images(0, images_for(0, 3, l.height, l.width));
    store.close();
  }
  {
    io::OutputStore store = io::OutputStore::open_existing(world(), path, no_lock);
    EXPECT_EQ(store.layout(), l);
    EXPECT_EQ(store.string_attributes(), test_attributes());
    // Second "run": the rest, by the last rank.
    if (rank() == size() - 1) store.write_images(3, images_for(3, 15, l.height, l.width));
  }  // destructor closes collectively
  on_rank0([&] {
    EXPECT_TRUE(torch::equal(io::StoreReader(path).read_images(0, 15), images_for(0, 15, l.height, l.width)));
    // A lock held elsewhere (as broken NFS locking would refuse it): hint, and the option gets around it.
    if (std::getenv("HDF5_USE_FILE_LOCKING") != nullptr) return;
    const int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
    expect_error<IoError>([&] { io::StoreReader reader(path); },
                          {"restart.h5", "unable to lock file", "---> HINT: set HDF5_USE_FILE_LOCKING=FALSE"});
    EXPECT_TRUE(torch::equal(io::StoreReader(path, no_lock).read_images(5, 7), images_for(5, 7, l.height, l.width)));
    ::close(fd);
  });

  // Files that are not output stores.
  std::string foreign = dir.file("foreign.h5");
  on_rank0([&] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    const hid_t f = H5Fcreate(foreign.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hsize_t dims[1] = {4};
    const hid_t s = H5Screate_simple(1, dims, nullptr);
    const hid_t d = H5Dcreate2(f, "something_else", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(s);
    H5Fclose(f);
  });
  expect_error<IoError>([&] { io::OutputStore::open_existing(world(), foreign); },
                        rank() == 0 ? std::vector<std::string>{"not an adaptdiff output file", "'images' is missing",
                                                               "something_else"}
                                    : std::vector<std::string>{"not an adaptdiff output file"});
  expect_error<IoError>([&] { io::OutputStore::open_existing(world(), dir.file("absent.h5")); },
                        {"absent.h5", "does not exist"});
  on_rank0([&] {
    expect_error<IoError>([&] { io::StoreReader reader(foreign); }, {"not an adaptdiff output file"});
    expect_error<IoError>([&] { io::StoreReader reader(dir.file("absent.h5")); }, {"absent.h5", "does not exist"});
  });
}

TEST(OutputStore, CreateErrorsNameThePath) {
  SharedTempDir dir;
  const auto l = small_layout();
  const std::string missing = dir.file("no/such/dir/out.h5");
  expect_error<IoError>([&] { io::OutputStore::create(world(), missing, l, {}); },
                        {"store::create", missing, "HINT"});

  // A directory this process cannot write. root ignores permission bits, so fall back to /sys,
  // where even root gets EACCES; skip if neither works here.
  std::string target;
  if (rank() == 0) {
    const std::string ro = dir.file("read_only");
    fs::create_directory(ro);
    chmod(ro.c_str(), 0555);
    for (const std::string& candidate : {ro, std::string("/sys")}) {
      const std::string probe = candidate + "/adaptdiff_probe_" + std::to_string(getpid());
      FILE* f = std::fopen(probe.c_str(), "wb");
      if (f == nullptr) {
        target = candidate + "/out.h5";
        break;
      }
      std::fclose(f);
      std::remove(probe.c_str());
    }
  }
  target = bcast_string(target);
  if (target.empty()) GTEST_SKIP() << "no non-writable directory available";
  expect_error<IoError>([&] { io::OutputStore::create(world(), target, l, {}); }, {"store::create", target});
  if (rank() == 0) chmod(dir.file("read_only").c_str(), 0755);

  io::StoreLayout bad = l;
  bad.images_per_identity = 0;
  expect_error<IoError>([&] { io::OutputStore::create(world(), dir.file("bad.h5"), bad, {}); },
                        {"images_per_identity = 0"});
}

TEST(OutputStore, RanksMustPassIdenticalArguments) {
  if (size() < 2) GTEST_SKIP() << "needs at least 2 ranks";
  SharedTempDir dir;
  auto l = small_layout();
  if (rank() == 1) l.images_per_identity = 4;
  expect_error<IoError>([&] { io::OutputStore::create(world(), dir.file("x.h5"), l, {}); },
                        {"different arguments"});
}

// Prints failures of ranks other than 0 (their default printer is removed to keep the log readable).
class FailurePrinter : public ::testing::EmptyTestEventListener {
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed()) {
      std::fprintf(stderr, "[rank %d] FAILURE %s:%d\n%s\n", rank(), r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter);
  }
  const int result = RUN_ALL_TESTS();
  int worst = 0;
  MPI_Allreduce(&result, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
