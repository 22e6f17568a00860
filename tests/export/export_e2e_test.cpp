// End to end: adaptdiff-sample writes a small output on 2 ranks (11 identities, so names need two digits and
// "10" would sort before "2" unpadded), then adaptdiff-export writes every format on 1 and 2 ranks. Everything
// is read back independently of src/export: files by path, images decoded by stb_image and compared with the
// pixels stored in the HDF5 file (PNG exactly, JPEG within a tolerance), RecordIO by the reader of
// recordio_reader.hpp. Reruns must keep every file; an incomplete input exports only done samples; bad input
// exits 2.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "decode.hpp"
#include "io/h5_reader.hpp"
#include "recordio_reader.hpp"

namespace fs = std::filesystem;

namespace {

constexpr int kN = 11, kK = 3;  // identities, images per identity

struct RunResult {
  int code = -1;
  std::string output;
};

RunResult run(const std::string& cmd) {
  RunResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  while (fgets(buf, sizeof buf, p) != nullptr) r.output += buf;
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

RunResult run_export(int ranks, const std::string& args) {
  return run(std::string(ADAPTDIFF_MPIEXEC) + " -n " + std::to_string(ranks) + " " + ADAPTDIFF_EXPORT_EXE + " " + args);
}

std::string pad2(int v) { return (v < 10 ? "0" : "") + std::to_string(v); }

// Sets sample_checksum to 0 for `rows` (an incomplete output, as a stopped run leaves it).
void clear_records(const std::string& path, const std::vector<int>& rows, bool all = false) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t d = H5Dopen2(f, "sample_checksum", H5P_DEFAULT);
  std::vector<int64_t> c(kN * kK);
  ASSERT_GE(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, c.data()), 0);
  for (int r : rows) c[static_cast<size_t>(r)] = 0;
  if (all) std::fill(c.begin(), c.end(), 0);
  ASSERT_GE(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, c.data()), 0);
  H5Dclose(d);
  H5Fclose(f);
}

class ExportE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("adaptdiff_export_e2e_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    data_ = (dir_ / "data.h5").string();
    const std::string config = std::string(ADAPTDIFF_SOURCE_DIR) + "/configs/quickstart.toml";
    sample_ = run(std::string(ADAPTDIFF_MPIEXEC) + " -n 2 " + ADAPTDIFF_SAMPLE_EXE + " " + config +
                  " --set identities.count=" + std::to_string(kN) + " --set identities.images_per_identity=" +
                  std::to_string(kK) + " --set sampler.steps=4 --set run.batch_size=6 --set output.path=" + data_);
    if (sample_.code == 0) {
      const adaptdiff::io::H5Reader h5(data_);
      images_ = h5.read("/images").contiguous();
    }
  }
  static void TearDownTestSuite() {
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(dir_);
  }
  void SetUp() override { ASSERT_EQ(sample_.code, 0) << sample_.output; }

  static int height() { return static_cast<int>(images_.size(1)); }
  static int width() { return static_cast<int>(images_.size(2)); }
  // Stored pixels of row r, [H, W, 3] as bytes.
  static std::vector<uint8_t> stored(int r) {
    const auto row = images_[r].contiguous();
    return {row.data_ptr<uint8_t>(), row.data_ptr<uint8_t>() + row.numel()};
  }
  static oracle::Decoded decode_file(const fs::path& p) { return oracle::decode(oracle::slurp(p.string())); }

  static fs::path dir_;
  static std::string data_;
  static RunResult sample_;
  static torch::Tensor images_;
};
fs::path ExportE2E::dir_;
std::string ExportE2E::data_;
RunResult ExportE2E::sample_;
torch::Tensor ExportE2E::images_;

// Files under `dir` with their modification times (a rerun must not touch any).
std::map<std::string, fs::file_time_type> snapshot(const fs::path& dir) {
  std::map<std::string, fs::file_time_type> m;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) m[e.path().string()] = e.last_write_time();
  }
  return m;
}

void expect_rerun_keeps_everything(int ranks, const std::string& args, const fs::path& out, int64_t files) {
  const auto before = snapshot(out);
  const auto r = run_export(ranks, args);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("0 files written, " + std::to_string(files) + " kept"), std::string::npos) << r.output;
  EXPECT_EQ(snapshot(out), before) << "a rerun changed files in " << out;
}

TEST_F(ExportE2E, ImageFolderOnOneAndTwoRanks) {
  for (int ranks : {1, 2}) {
    const fs::path out = dir_ / ("folder_np" + std::to_string(ranks));
    const std::string args = data_ + " --out " + out.string() + " --format imagefolder";
    const auto r = run_export(ranks, args);
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("done: 33 samples exported (0 not done"), std::string::npos) << r.output;
    // One folder per identity, names of one width, K images each, equal to the stored pixels.
    std::vector<std::string> folders;
    for (const auto& e : fs::directory_iterator(out)) if (e.is_directory()) folders.push_back(e.path().filename());
    std::sort(folders.begin(), folders.end());
    ASSERT_EQ(folders.size(), static_cast<size_t>(kN));
    for (int i = 0; i < kN; ++i) {
      EXPECT_EQ(folders[static_cast<size_t>(i)], pad2(i)) << "string order must be numeric order";
      for (int k = 0; k < kK; ++k) {
        const auto d = decode_file(out / pad2(i) / (std::to_string(k) + ".png"));
        EXPECT_EQ(d.width, width());
        EXPECT_EQ(d.height, height());
        EXPECT_EQ(d.rgb, stored(i * kK + k)) << "identity " << i << " image " << k;
      }
    }
    std::ifstream list(out / "list.txt");
    std::string line;
    int n = 0;
    for (; std::getline(list, line); ++n) {
      const int i = n / kK, k = n % kK;
      EXPECT_EQ(line, pad2(i) + "/" + std::to_string(k) + ".png " + std::to_string(i));
    }
    EXPECT_EQ(n, kN * kK);
    expect_rerun_keeps_everything(ranks, args, out, kN * kK + 1);
  }
}

TEST_F(ExportE2E, ImageFolderResizedJpeg) {
  const fs::path out = dir_ / "folder_jpg";
  const auto r = run_export(2, data_ + " --out " + out.string() + " --format imagefolder --size 112 --image-format jpg --quality 90");
  ASSERT_EQ(r.code, 0) << r.output;
  for (int i = 0; i < kN; ++i) {
    for (int k = 0; k < kK; ++k) {
      const auto d = decode_file(out / pad2(i) / (std::to_string(k) + ".jpg"));
      ASSERT_EQ(d.width, 112);
      ASSERT_EQ(d.height, 112);
      // Resizing and JPEG keep the mean colour (the filter is normalised): within 3 levels per channel.
      const auto src = stored(i * kK + k);
      for (int c = 0; c < 3; ++c) {
        double a = 0, b = 0;
        for (size_t p = static_cast<size_t>(c); p < src.size(); p += 3) a += src[p];
        for (size_t p = static_cast<size_t>(c); p < d.rgb.size(); p += 3) b += d.rgb[p];
        EXPECT_NEAR(a / (src.size() / 3.0), b / (d.rgb.size() / 3.0), 3.0) << i << "/" << k << " channel " << c;
      }
    }
  }
  // Other settings into the same folder are refused.
  const auto again = run_export(1, data_ + " --out " + out.string() + " --format imagefolder --size 64 --image-format jpg");
  EXPECT_EQ(again.code, 2) << again.output;
  EXPECT_NE(again.output.find("size: '112' there, '64' now"), std::string::npos) << again.output;
}

// Reads an insightface export with the independent reader and checks every record against the HDF5 file.
void check_insightface(const fs::path& out, const std::vector<int>& rows, int h, int w, bool exact,
                       const std::function<std::vector<uint8_t>(int)>& stored) {
  const auto idx = oracle::read_idx((out / "train.idx").string());
  const std::string rec = oracle::slurp((out / "train.rec").string());
  const int m = static_cast<int>(rows.size());
  ASSERT_EQ(idx.size(), static_cast<size_t>(1 + m + kN));
  const auto head = oracle::unpack(oracle::read_data(rec, idx.at(0)));
  ASSERT_EQ(head.flag, 2U);
  EXPECT_EQ(head.labels, (std::vector<float>{static_cast<float>(m + 1), static_cast<float>(m + 1 + kN)}));
  std::vector<int> first(kN, -1), last(kN, -1);
  double err = 0;
  for (int key = 1; key <= m; ++key) {
    const auto r = oracle::unpack(oracle::read_data(rec, idx.at(static_cast<uint64_t>(key))));
    const int row = rows[static_cast<size_t>(key - 1)], identity = row / kK;
    EXPECT_EQ(r.flag, 0U);
    EXPECT_EQ(r.label, static_cast<float>(identity)) << "key " << key;
    EXPECT_EQ(r.id, static_cast<uint64_t>(key));
    if (first[static_cast<size_t>(identity)] < 0) first[static_cast<size_t>(identity)] = key;
    last[static_cast<size_t>(identity)] = key;
    const auto d = oracle::decode(r.payload);
    ASSERT_EQ(d.width, w);
    ASSERT_EQ(d.height, h);
    if (exact) {
      EXPECT_EQ(d.rgb, stored(row)) << "key " << key;
    } else {
      const auto s = stored(row);
      for (size_t p = 0; p < s.size(); ++p) err += std::abs(static_cast<int>(s[p]) - d.rgb[p]);
    }
  }
  if (!exact) {
    const double mean = err / (static_cast<double>(m) * h * w * 3);
    EXPECT_LE(mean, 6.0) << "JPEG quality 95: mean absolute error per channel";
    std::printf("insightface jpg q95: mean |error| %.2f levels\n", mean);
  }
  for (int i = 0; i < kN; ++i) {
    // Identity i's image keys: 1 + (done rows before its first row) up to 1 + (done rows before the next one).
    const auto before = [&](int row) { return static_cast<float>(1 + std::count_if(rows.begin(), rows.end(), [&](int x) { return x < row; })); };
    const auto r = oracle::unpack(oracle::read_data(rec, idx.at(static_cast<uint64_t>(m + 1 + i))));
    ASSERT_EQ(r.flag, 2U);
    EXPECT_EQ(r.labels, (std::vector<float>{before(i * kK), before((i + 1) * kK)})) << "identity " << i;
    if (first[static_cast<size_t>(i)] >= 0) {
      EXPECT_EQ(r.labels[0], static_cast<float>(first[static_cast<size_t>(i)]));
      EXPECT_EQ(r.labels[1], static_cast<float>(last[static_cast<size_t>(i)] + 1));
    }
  }
  EXPECT_EQ(oracle::slurp((out / "property").string()),
            std::to_string(kN) + "," + std::to_string(h) + "," + std::to_string(w) + "\n");
  EXPECT_FALSE(fs::exists(out / ".parts"));
}

TEST_F(ExportE2E, InsightFaceOnOneAndTwoRanksIdentical) {
  std::vector<int> rows(kN * kK);
  std::iota(rows.begin(), rows.end(), 0);
  for (int ranks : {1, 2}) {
    const fs::path out = dir_ / ("rec_np" + std::to_string(ranks));
    const std::string args = data_ + " --out " + out.string() + " --format insightface";
    const auto r = run_export(ranks, args);
    ASSERT_EQ(r.code, 0) << r.output;
    check_insightface(out, rows, height(), width(), true, stored);
    expect_rerun_keeps_everything(ranks, args, out, 1 + kN * kK + kN);
  }
  EXPECT_EQ(oracle::slurp((dir_ / "rec_np1" / "train.rec").string()), oracle::slurp((dir_ / "rec_np2" / "train.rec").string()));
  EXPECT_EQ(oracle::slurp((dir_ / "rec_np1" / "train.idx").string()), oracle::slurp((dir_ / "rec_np2" / "train.idx").string()));

  const fs::path jpg = dir_ / "rec_jpg";
  const auto r = run_export(2, data_ + " --out " + jpg.string() + " --format insightface --image-format jpg");
  ASSERT_EQ(r.code, 0) << r.output;
  check_insightface(jpg, rows, height(), width(), false, stored);
}

TEST_F(ExportE2E, GridSheetsAndOverview) {
  for (int ranks : {1, 2}) {
    const fs::path out = dir_ / ("grid_np" + std::to_string(ranks));
    const std::string args = data_ + " --out " + out.string() + " --format grid";
    const auto r = run_export(ranks, args);
    ASSERT_EQ(r.code, 0) << r.output;
    const int h = height(), w = width();
    for (int i = 0; i < kN; ++i) {
      const auto d = decode_file(out / "grids" / (pad2(i) + ".png"));
      ASSERT_EQ(d.width, kK * (w + 2) + 2) << "K = 3 < 4 columns: one row of 3";
      ASSERT_EQ(d.height, h + 4);
      for (int k = 0; k < kK; ++k) {  // cell k starts at (2 + k (w + 2), 2)
        const auto s = stored(i * kK + k);
        for (int y = 0; y < h; ++y) {
          const auto* got = d.rgb.data() + (static_cast<size_t>(y + 2) * d.width + 2 + k * (w + 2)) * 3;
          ASSERT_TRUE(std::equal(got, got + w * 3, s.data() + static_cast<size_t>(y) * w * 3)) << i << "/" << k << " row " << y;
        }
      }
    }
    // 11 identities: one row of 11 cells, labelled "0" (margin 8 * 1 digit + 6).
    const auto o = decode_file(out / "overview.png");
    EXPECT_EQ(o.width, 14 + kN * (w + 2) + 2);
    EXPECT_EQ(o.height, h + 4);
    EXPECT_TRUE(fs::exists(out / "overview.txt"));
    expect_rerun_keeps_everything(ranks, args, out, kN + 2);
  }
}

TEST_F(ExportE2E, IncompleteInputExportsDoneSamplesOnly) {
  const std::string part = (dir_ / "partial.h5").string();
  fs::copy_file(data_, part, fs::copy_options::overwrite_existing);
  const std::vector<int> cleared{9, 10, 11, 16};  // identity 3 entirely, identity 5 image 1
  clear_records(part, cleared);
  std::vector<int> rows;
  for (int r = 0; r < kN * kK; ++r) if (std::find(cleared.begin(), cleared.end(), r) == cleared.end()) rows.push_back(r);

  const fs::path folder = dir_ / "partial_folder";
  auto r = run_export(2, part + " --out " + folder.string() + " --format imagefolder");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("4 of 33 samples are not done"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(folder / "03"));
  EXPECT_FALSE(fs::exists(folder / "05" / "1.png"));
  EXPECT_TRUE(fs::exists(folder / "05" / "2.png"));
  std::ifstream list(folder / "list.txt");
  int lines = 0;
  for (std::string line; std::getline(list, line);) ++lines;
  EXPECT_EQ(lines, static_cast<int>(rows.size()));

  const fs::path rec = dir_ / "partial_rec";
  r = run_export(2, part + " --out " + rec.string() + " --format insightface");
  ASSERT_EQ(r.code, 0) << r.output;
  check_insightface(rec, rows, height(), width(), true, stored);

  // Later the run is complete (same run, same fingerprint): exporting into the same folders adds what is new.
  std::vector<int> all(kN * kK);
  std::iota(all.begin(), all.end(), 0);
  r = run_export(2, data_ + " --out " + folder.string() + " --format imagefolder");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("5 files written, 29 kept"), std::string::npos) << "4 images and list.txt\n" << r.output;
  EXPECT_EQ(decode_file(folder / "03" / "0.png").rgb, stored(9));
  r = run_export(1, data_ + " --out " + rec.string() + " --format insightface");
  ASSERT_EQ(r.code, 0) << r.output;
  check_insightface(rec, all, height(), width(), true, stored);
}

TEST_F(ExportE2E, BadInputExitsTwo) {
  const std::string out = (dir_ / "bad").string();
  std::ofstream(dir_ / "not.h5") << "not an HDF5 file";
  std::ofstream(dir_ / "a_file") << "x";
  const std::string empty = (dir_ / "empty.h5").string();
  fs::copy_file(data_, empty, fs::copy_options::overwrite_existing);
  clear_records(empty, {}, /*all=*/true);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {(dir_ / "missing.h5").string() + " --out " + out + " --format grid", "does not exist"},
      {(dir_ / "not.h5").string() + " --out " + out + " --format grid", "cannot use"},
      {empty + " --out " + out + " --format grid", "no done sample"},
      {data_ + " --out " + (dir_ / "a_file" / "sub").string() + " --format grid", "cannot create the output folder"},
      {data_ + " --out " + out + " --format imagefolder --size 0", "--size must be 1..8192"},
      {data_ + " --out " + out + " --format imagefolder --image-format jpg --quality 101", "--quality must be 1..100"},
      {data_ + " --out " + out + " --format imagefolder --quality 80", "jpg only"},
      {data_ + " --out " + out + " --format grid --image-format jpg", "PNG sheets only"},
      {data_ + " --out " + out + " --format zip", "zip"},
  };
  for (const auto& [args, needle] : cases) {
    for (int ranks : {1, 2}) {
      const auto r = run_export(ranks, args);
      EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
      EXPECT_NE(r.output.find(needle), std::string::npos) << args << "\n" << r.output;
    }
  }
}

TEST_F(ExportE2E, HelpAndVersion) {
  const auto help = run(std::string(ADAPTDIFF_EXPORT_EXE) + " --help");
  EXPECT_EQ(help.code, 0);
  for (const char* s : {"imagefolder", "insightface", "grid", "Exit codes", "--size", "--quality"}) {
    EXPECT_NE(help.output.find(s), std::string::npos) << s;
  }
  const auto version = run(std::string(ADAPTDIFF_EXPORT_EXE) + " --version");
  EXPECT_EQ(version.code, 0);
  EXPECT_EQ(version.output.rfind("adaptdiff-export ", 0), 0U) << version.output;
}

}  // namespace
