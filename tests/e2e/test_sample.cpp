// End-to-end runs of adaptdiff-sample: the golden tiny model on 1, 2 and 3 ranks (byte-identical images,
// negatives equal to a brute-force Far-Neg on the stored contexts, the documented layout), and the
// refusals: bad config, existing output, bad identity file, mismatched checkpoint, --dry-run.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "io/h5_reader.hpp"

namespace fs = std::filesystem;
using adaptdiff::io::H5Reader;

namespace {

const std::string kGolden = std::string(ADAPTDIFF_SHARED_DIR) + "/golden/idiff_face_tiny";

struct RunResult {
  int code = -1;
  std::string output;  // stdout + stderr
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

RunResult sample(int ranks, const std::string& config, const std::string& extra = "") {
  return run(std::string(ADAPTDIFF_MPIEXEC) + " -n " + std::to_string(ranks) + " " + ADAPTDIFF_SAMPLE_EXE + " " +
             config + " " + extra);
}

std::string sha256_hex(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::ostringstream os;
  for (unsigned i = 0; i < len; ++i) os << std::hex << (md[i] >> 4) << (md[i] & 15);
  return os.str();
}

// Writes a .npy file (format version 1.0) with dtype `descr`, shape [rows, cols] and the raw bytes `data`.
void write_npy_bytes(const std::string& path, const std::string& descr, int rows, int cols, const std::string& data) {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  f.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  f.write(reinterpret_cast<const char*>(&len), 2);
  f << header << data;
}

// Writes a float32 .npy [rows, cols] whose element (r, c) is value(r, c); `data_rows` rows of data (a shorter
// file than the header says when data_rows < rows).
template <typename Fn>
void write_npy(const std::string& path, int rows, Fn value, int cols = 512, int data_rows = -1) {
  std::string data;
  for (int r = 0; r < (data_rows < 0 ? rows : data_rows); ++r) {
    for (int c = 0; c < cols; ++c) {
      const float v = value(r, c);
      data.append(reinterpret_cast<const char*>(&v), 4);
    }
  }
  write_npy_bytes(path, "<f4", rows, cols, data);
}

class SampleE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("adaptdiff_e2e_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  std::string write(const std::string& name, const std::string& text) {
    const auto p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  // Golden tiny model, synthetic identities, AdaptDiff + Far-Neg, short DDIM.
  std::string golden_config(const std::string& out, const std::string& extra = "") {
    std::string name = out;
    std::replace(name.begin(), name.end(), '/', '_');
    return write("run_" + name + ".toml",
                 "[model]\narchitecture = \"" + kGolden + "/model.toml\"\nunet = \"" + kGolden +
                     "/ema_averaged_model.ckpt\"\ndecoder = \"" + kGolden + "/first_stage_decoder_state_dict.pt\"\n" +
                     "[identities]\ncount = 8\nimages_per_identity = 4\nseed = 3\n" +
                     "[negatives]\nstrategy = \"far\"\n[guidance]\nschedule = \"linear\"\nw_max = 1.0\n" +
                     "[sampler]\nkind = \"ddim\"\nsteps = 10\n[run]\nbatch_size = 3\nseed = 7\n" +
                     "[output]\npath = \"" + out + "\"\n" + extra);
  }
  fs::path dir_;
};

TEST_F(SampleE2E, GoldenTinyModelOneTwoThreeRanksIdentical) {
  const auto r2 = sample(2, golden_config("out2.h5"));
  ASSERT_EQ(r2.code, 0) << r2.output;
  EXPECT_NE(r2.output.find("done: 32 images"), std::string::npos) << r2.output;
  const auto r1 = sample(1, golden_config("out1.h5"));
  ASSERT_EQ(r1.code, 0) << r1.output;
  const auto r3 = sample(3, golden_config("out3.h5"));
  ASSERT_EQ(r3.code, 0) << r3.output;

  const H5Reader f2((dir_ / "out2.h5").string()), f1((dir_ / "out1.h5").string()), f3((dir_ / "out3.h5").string());
  const auto images = f2.read("/images");
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{32, 32, 32, 3}));
  EXPECT_TRUE(torch::equal(images, f1.read("/images"))) << "1-rank and 2-rank images differ";
  EXPECT_TRUE(torch::equal(images, f3.read("/images"))) << "3-rank and 2-rank images differ";
  // Not a constant image: samples of different identities differ.
  EXPECT_FALSE(torch::equal(images[0], images[4]));
  EXPECT_FALSE(torch::equal(images[0], images[1]));

  // Labels: row s = i*K + k.
  const auto identity = f2.read("/identity"), sample_index = f2.read("/sample_index");
  for (int64_t s = 0; s < 32; ++s) {
    EXPECT_EQ(identity[s].item<int64_t>(), s / 4);
    EXPECT_EQ(sample_index[s].item<int64_t>(), s % 4);
  }

  // Negatives: brute-force Far-Neg over the stored contexts (float64 cosine, lowest index on ties).
  const auto contexts = f2.read("/contexts").to(torch::kFloat64);
  ASSERT_EQ(contexts.sizes(), (std::vector<int64_t>{8, 512}));
  const auto neg = f2.read("/negative_index"), neg_sim = f2.read("/negative_similarity");
  for (int64_t i = 0; i < 8; ++i) {
    EXPECT_NEAR(contexts[i].norm().item<double>(), 1.0, 1e-6);
    int64_t best = -1;
    double best_sim = 2.0;
    for (int64_t j = 0; j < 8; ++j) {
      if (j == i) continue;
      const double sim = (contexts[i] * contexts[j]).sum().item<double>() /
                         (contexts[i].norm().item<double>() * contexts[j].norm().item<double>());
      if (static_cast<float>(sim) < static_cast<float>(best_sim)) best = j, best_sim = sim;
    }
    EXPECT_EQ(neg[i].item<int64_t>(), best) << "identity " << i;
    EXPECT_NEAR(neg_sim[i].item<double>(), best_sim, 1e-6);
  }
  EXPECT_TRUE(torch::equal(neg, f3.read("/negative_index")));

  // Attributes: the resolved config and the model files' SHA-256.
  EXPECT_NE(f2.attribute_string("/", "config_toml").find("strategy = 'far'"), std::string::npos)
      << f2.attribute_string("/", "config_toml");
  EXPECT_EQ(f2.attribute_string("/", "sha256_unet"), sha256_hex(kGolden + "/ema_averaged_model.ckpt"));
  EXPECT_EQ(f2.attribute_string("/", "sha256_decoder"), sha256_hex(kGolden + "/first_stage_decoder_state_dict.pt"));
  EXPECT_FALSE(f2.attribute_string("/", "adaptdiff_version").empty());
}

TEST_F(SampleE2E, GuidanceMovesTheImagesAndZeroWeightIsNoGuidance) {
  // The golden config (AdaptDiff linear, w_max = 1, Far-Neg) against the same run without guidance.
  ASSERT_EQ(sample(1, golden_config("guided.h5")).code, 0);
  const auto r = sample(1, golden_config("baseline.h5"), "--set guidance.schedule=none");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto z = sample(1, golden_config("w0.h5"), "--set guidance.schedule=constant --set guidance.w=0");
  ASSERT_EQ(z.code, 0) << z.output;
  const H5Reader a((dir_ / "guided.h5").string()), b((dir_ / "baseline.h5").string()), c((dir_ / "w0.h5").string());
  const auto guided = a.read("/images"), baseline = b.read("/images");
  // w = 0 is no guidance bit for bit (a constant schedule with w = 0 never evaluates the negative).
  EXPECT_TRUE(torch::equal(c.read("/images"), baseline)) << "constant w = 0 differs from schedule none";
  const double mean_abs = (guided.to(torch::kFloat64) - baseline.to(torch::kFloat64)).abs().mean().item<double>();
  // Measured (this golden config, 32 images of 32x32x3): mean |guided - unguided| = 0.309 levels of 255; 14% of
  // the values differ, by up to 37 levels. The threshold is a third of that. fp32 rounding (another processor,
  // other kernels) moves < 1 level on a handful of the 98304 values, a mean below 1e-3: 100x under the threshold.
  const double kMinMeanAbsDifference = 0.1;
  EXPECT_GE(mean_abs, kMinMeanAbsDifference) << "guidance barely moves the images (mean |difference| in levels)";
}

TEST_F(SampleE2E, ConfigErrorsExitTwoAndNameTheKey) {
  const auto cfg = golden_config("x.h5", "overwrit = true\n");  // a typo in [output]
  const auto r = sample(2, cfg);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("output.overwrit"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "x.h5"));
  const auto bad_set = sample(1, golden_config("y.h5"), "--set sampler.steps=0");
  EXPECT_EQ(bad_set.code, 2) << bad_set.output;
  EXPECT_NE(bad_set.output.find("sampler.steps"), std::string::npos) << bad_set.output;
  const auto missing = sample(1, (dir_ / "nope.toml").string());
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.output.find("nope.toml"), std::string::npos) << missing.output;
  const auto help = run(std::string(ADAPTDIFF_SAMPLE_EXE) + " --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.output.find("--dry-run"), std::string::npos);
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST_F(SampleE2E, UnreadableOutputIsRefusedAndUntouched) {
  const std::string out = (dir_ / "keep.h5").string();
  std::ofstream(out) << "precious";
  const auto r = sample(2, golden_config("keep.h5"));
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("cannot be resumed"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--force-new"), std::string::npos) << r.output;
  EXPECT_EQ(file_bytes(out), "precious");
  // A truncated output of a real run is refused too, and left as it is.
  ASSERT_EQ(sample(1, golden_config("trunc.h5")).code, 0);
  const std::string trunc = (dir_ / "trunc.h5").string();
  fs::resize_file(trunc, fs::file_size(trunc) / 2);
  const std::string before = file_bytes(trunc);
  const auto t = sample(2, golden_config("trunc.h5"));
  EXPECT_EQ(t.code, 1) << t.output;
  EXPECT_NE(t.output.find("cannot be resumed"), std::string::npos) << t.output;
  EXPECT_EQ(file_bytes(trunc), before);
  // --force-new replaces it.
  const auto f = sample(1, golden_config("trunc.h5"), "--force-new");
  EXPECT_EQ(f.code, 0) << f.output;
}

TEST_F(SampleE2E, OutputOfAnotherRunIsRefusedNamingThePart) {
  ASSERT_EQ(sample(1, golden_config("a.h5")).code, 0);
  const std::string path = (dir_ / "a.h5").string();
  const std::string before = file_bytes(path);
  const auto r = sample(2, golden_config("a.h5"), "--set guidance.w_max=0.5");
  EXPECT_EQ(r.code, 2) << r.output;  // a configuration that does not fit its output: nothing was started
  EXPECT_NE(r.output.find("different run"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("guidance: stored 'schedule=linear;w_max=1'"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("sampler:"), std::string::npos) << "only the differing part is named:\n" << r.output;
  EXPECT_EQ(file_bytes(path), before);
  // The same run again is a resume of a complete file: nothing to do, nothing changes.
  const auto again = sample(2, golden_config("a.h5"));
  EXPECT_EQ(again.code, 0) << again.output;
  EXPECT_NE(again.output.find("32/32 samples already done"), std::string::npos) << again.output;
  const auto status = run(std::string(ADAPTDIFF_SAMPLE_EXE) + " --status " + path);
  EXPECT_EQ(status.code, 0) << status.output;
  EXPECT_NE(status.output.find("status: complete"), std::string::npos) << status.output;
}

TEST_F(SampleE2E, ChangedIdentityFileIsRefused) {
  // An HDF5-free identity file: .npy [8, 512] float32.
  const std::string npy = (dir_ / "ids.npy").string();
  auto ids = [](float scale) {
    return [scale](int r, int c) { return scale * static_cast<float>(std::sin(0.1 * (r * 512 + c) + r)); };
  };
  write_npy(npy, 8, ids(1.0f));
  const std::string set = "--set identities.source=\\\"" + npy + "\\\"";
  ASSERT_EQ(sample(1, golden_config("ids.h5"), set).code, 0);
  write_npy(npy, 8, ids(2.0f));
  const auto r = sample(2, golden_config("ids.h5"), set);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("identities: stored"), std::string::npos) << r.output;
}

TEST_F(SampleE2E, LockedOutputNamesFileLockingSwitch) {
  ASSERT_EQ(sample(1, golden_config("locked.h5"), "--set identities.count=2").code, 0);
  const std::string path = (dir_ / "locked.h5").string();
  const int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);  // another writer holds the file
  const auto r = sample(1, golden_config("locked.h5"), "--set identities.count=2");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("HDF5_USE_FILE_LOCKING"), std::string::npos) << r.output;
  ::close(fd);
  // A second job on the same output is refused while the first holds the run lock.
  const std::string lock = path + ".lock";
  const int lfd = ::open(lock.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(lfd, 0);
  ASSERT_EQ(::flock(lfd, LOCK_EX), 0);
  const std::string before = file_bytes(path);
  const auto second = sample(1, golden_config("locked.h5"), "--set identities.count=2 --force-new");
  EXPECT_EQ(second.code, 1) << second.output;
  EXPECT_NE(second.output.find("another adaptdiff run is writing"), std::string::npos) << second.output;
  EXPECT_EQ(file_bytes(path), before);
  ::close(lfd);
}

TEST_F(SampleE2E, IdleRanksDoNotHang) {
  // One batch for three ranks: two of them have no work but take part in every collective.
  const auto r = sample(3, golden_config("idle.h5"), "--set identities.count=2 --set identities.images_per_identity=1");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("done: 2 images"), std::string::npos) << r.output;
}

TEST_F(SampleE2E, UnwritableOutputPathIsRefused) {
  const auto r = sample(1, golden_config("/proc/adaptdiff/out.h5"));
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("/proc/adaptdiff"), std::string::npos) << r.output;
}

TEST_F(SampleE2E, BadIdentityRowIsNamedBeforeAnyWork) {
  // .npy [6, 512] float32 with a NaN in row 4.
  const std::string npy = (dir_ / "ids.npy").string();
  write_npy(npy, 6, [](int r, int c) { return (r == 4 && c == 9) ? NAN : 0.01f * static_cast<float>((r * 7 + c) % 13 + 1); });
  const auto r = sample(2, golden_config("nan.h5", ""), "--set identities.source=\\\"" + npy +
                                                            "\\\" --set identities.count=6");
  EXPECT_EQ(r.code, 2) << "bad input: " << r.output;
  EXPECT_NE(r.output.find("row 4"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "nan.h5"));
}

TEST_F(SampleE2E, BadIdentityFilesExitTwoOnDryRunBeforeTheModelLoads) {
  // model.unet names a file that does not exist: had the model been loaded first, the run would exit 1 naming it.
  auto good = [](int r, int c) { return 0.01f * static_cast<float>((r * 7 + c) % 13 + 1); };
  struct Case {
    std::string file;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {{"nan.npy", {"global row 5", "column 3", "NaN"}},
                                   {"width.npy", {"width 8", "expected 512"}},
                                   {"dtype.npy", {"'<i4' (int32)"}},
                                   {"short.npy", {"truncated", "rows from 4 on"}}};
  write_npy((dir_ / "nan.npy").string(), 8, [&](int r, int c) { return r == 5 && c == 3 ? NAN : good(r, c); });
  write_npy((dir_ / "width.npy").string(), 8, good, /*cols=*/8);
  write_npy_bytes((dir_ / "dtype.npy").string(), "<i4", 8, 512, std::string(8 * 512 * 4, '\x01'));
  write_npy((dir_ / "short.npy").string(), 8, good, 512, /*data_rows=*/4);
  for (const Case& c : cases) {
    const std::string npy = (dir_ / c.file).string();
    const auto r = sample(2, golden_config("bad.h5"),
                          "--dry-run --set identities.source=\\\"" + npy + "\\\" --set model.unet=\\\"" +
                              (dir_ / "no_such_unet.ckpt").string() + "\\\"");
    EXPECT_EQ(r.code, 2) << c.file << ":\n" << r.output;
    EXPECT_NE(r.output.find(npy), std::string::npos) << r.output;
    for (const std::string& n : c.needles) EXPECT_NE(r.output.find(n), std::string::npos) << n << " in:\n" << r.output;
    EXPECT_EQ(r.output.find("no_such_unet"), std::string::npos) << "the model was loaded first:\n" << r.output;
  }
  EXPECT_FALSE(fs::exists(dir_ / "bad.h5"));
}

TEST_F(SampleE2E, MismatchedCheckpointListsKeys) {
  // The golden tiny checkpoint against the published cpd25 architecture.
  const auto r = sample(1, golden_config("cpd.h5"),
                        std::string("--set model.architecture=\\\"") + ADAPTDIFF_SOURCE_DIR +
                            "/configs/models/idiff-face-cpd25.toml\\\"");
  EXPECT_EQ(r.code, 2) << "bad input: " << r.output;
  EXPECT_NE(r.output.find("missing"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("shape"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "cpd.h5"));
}

TEST_F(SampleE2E, DryRunPrintsPlanAndWritesNothing) {
  const auto r = sample(2, golden_config("dry.h5"), "--dry-run");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("plan: rank 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("11 batches"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "dry.h5"));
}

}  // namespace
