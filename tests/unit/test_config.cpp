// Run-config and model-config parsing: defaults, overrides, path resolution and errors that name the key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "config/model_config.hpp"
#include "config/run_config.hpp"
#include "core/error.hpp"

namespace fs = std::filesystem;
using adaptdiff::ConfigError;
using adaptdiff::config::load_model_config;
using adaptdiff::config::load_run_config;

namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("adaptdiff_config_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const auto p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  // The smallest valid config.
  static std::string minimal() {
    return "[model]\narchitecture = \"m.toml\"\ninit = \"random\"\n"
           "[identities]\ncount = 4\nimages_per_identity = 2\n";
  }
  // Expects a ConfigError whose message contains every string of `parts`.
  void expect_error(const std::string& text, std::vector<std::string> parts, std::vector<std::string> sets = {}) {
    const auto path = write("run.toml", text);
    try {
      load_run_config(path, sets);
      FAIL() << "no ConfigError for:\n" << text;
    } catch (const ConfigError& e) {
      for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
  fs::path dir_;
};

TEST_F(ConfigTest, QuickstartConfigLoadsWithResolvedPaths) {
  const auto cfg = load_run_config(std::string(ADAPTDIFF_SOURCE_DIR) + "/configs/quickstart.toml");
  EXPECT_TRUE(fs::path(cfg.model.architecture).is_absolute());
  EXPECT_TRUE(fs::exists(cfg.model.architecture)) << cfg.model.architecture;
  EXPECT_EQ(cfg.guidance.schedule, "linear");
  EXPECT_EQ(cfg.negatives.strategy, "far");
  EXPECT_EQ(cfg.sampler.kind, "ddim");
}

TEST_F(ConfigTest, DefaultsAndRelativePaths) {
  const auto cfg = load_run_config(write("run.toml", minimal()));
  EXPECT_EQ(cfg.model.architecture, (dir_ / "m.toml").string());
  EXPECT_EQ(cfg.output.path, (dir_ / "out.h5").string());
  EXPECT_EQ(cfg.identities.source, "synthetic_uniform");
  EXPECT_EQ(cfg.run.batch_size, 50);
  EXPECT_EQ(cfg.sampler.steps, 1000);
  EXPECT_EQ(cfg.guidance.schedule, "linear");
  EXPECT_TRUE(cfg.guidance.params.empty());  // the schedule fills in its defaults (sampler)
}

TEST_F(ConfigTest, HdfSourceKeepsDatasetSuffix) {
  const auto cfg = load_run_config(write("run.toml", minimal() + "source = \"ids/c.h5:/emb/x\"\n"));
  EXPECT_EQ(cfg.identities.source, (dir_ / "ids/c.h5").string() + ":/emb/x");
}

TEST_F(ConfigTest, OverridesAreTyped) {
  const auto cfg = load_run_config(write("run.toml", minimal()),
                                   {"run.batch_size=7", "guidance.schedule=constant", "guidance.w=0.25",
                                    "output.path=\"sub/x.h5\"", "sampler.kind = ddim"});
  EXPECT_EQ(cfg.run.batch_size, 7);
  EXPECT_EQ(cfg.guidance.schedule, "constant");
  EXPECT_DOUBLE_EQ(cfg.guidance.params.at("w"), 0.25);
  EXPECT_EQ(cfg.output.path, (dir_ / "sub/x.h5").string());
  EXPECT_EQ(cfg.sampler.kind, "ddim");
}

TEST_F(ConfigTest, UnknownKeysAreNamedWithLine) {
  expect_error(minimal() + "imagse_per_identity = 3\n", {"identities.imagse_per_identity", "line 7"});
  expect_error(minimal() + "[outptu]\npath = \"x\"\n", {"'outptu'"});
  expect_error(minimal(), {"run.bogus"}, {"run.bogus=1"});
}

TEST_F(ConfigTest, WrongTypesAndRangesNameTheKey) {
  expect_error(minimal() + "[run]\nbatch_size = \"8\"\n", {"run.batch_size", "integer"});
  expect_error(minimal() + "[run]\nbatch_size = 0\n", {"run.batch_size", ">= 1"});
  expect_error(minimal() + "[sampler]\nkind = \"ddpm\"\neta = 0.5\n", {"sampler.eta"});
  expect_error(minimal() + "[run]\nprecision = \"fp8\"\n", {"run.precision", "bf16", "fp16"});
  expect_error(minimal() + "[run]\ncuda_graphs = 1\n", {"run.cuda_graphs"});
  expect_error("[model]\narchitecture = \"m.toml\"\n[identities]\ncount = 1\nimages_per_identity = 1\n",
               {"model.unet", "required"});
  expect_error("[model]\ninit = \"random\"\narchitecture=\"m\"\n[identities]\nimages_per_identity = 1\n",
               {"identities.count", "missing"});
}

TEST_F(ConfigTest, GuidanceKeysAreNumbersForTheSchedule) {
  // [guidance] keys other than `schedule` are kept as numbers; the schedule decides what it reads.
  const auto cfg = load_run_config(write("run.toml", minimal() + "[guidance]\nschedule = \"interval\"\nw = 2\n"
                                                                 "t_start = 100\nt_end = 400.0\n"));
  EXPECT_EQ(cfg.guidance.schedule, "interval");
  EXPECT_EQ(cfg.guidance.params, (std::map<std::string, double>{{"w", 2.0}, {"t_start", 100.0}, {"t_end", 400.0}}));
  expect_error(minimal() + "[guidance]\nw = \"high\"\n", {"guidance.w"});
}

TEST_F(ConfigTest, SyntaxErrorNamesFileAndLine) {
  expect_error("[model\nkind = 1\n", {"run.toml", "line 1"});
}

// Regression of fuzz/fuzz_run_config: toml++ 3.x reaches TOML_UNREACHABLE (undefined behaviour) when a value is
// followed by some non-ASCII characters, e.g. U+0183 ("\xc6\x83") after "1000": such text is refused before
// toml++ sees it. Non-ASCII text in comments and strings (basic, literal, multi-line) is still read as written.
TEST_F(ConfigTest, NonAsciiOutsideStringsIsASyntaxErrorAndInsideIsKept) {
  expect_error(minimal() + "[run]\nseed = 1000\xc6\x83\n", {"run.toml", "line 8:12", "non-ASCII"});
  const auto cfg = load_run_config(
      write("run.toml", "# caf\xc3\xa9 \xc6\x83\n[model]\narchitecture = \"\xc3\xbc \\\" x.toml\"\ninit = \"random\"\n"
                        "[identities]\ncount = 4\nimages_per_identity = 2\n"
                        "[negatives]\npool = '''p\xc6\x83.npy'''\n"),
      {"output.path=o\xc6\x83.h5"});  // not TOML: the override is taken as a string
  EXPECT_EQ(cfg.model.architecture, (dir_ / "\xc3\xbc \" x.toml").string());
  EXPECT_EQ(cfg.negatives.pool, (dir_ / "p\xc6\x83.npy").string());
  EXPECT_EQ(cfg.output.path, (dir_ / "o\xc6\x83.h5").string());
}

TEST_F(ConfigTest, ResolvedTomlRoundTrips) {
  const auto a = load_run_config(write("run.toml", minimal() + "[run]\nseed = 9\n"));
  const auto text = adaptdiff::config::to_toml(a);
  const auto b = load_run_config(write("again.toml", text));
  EXPECT_EQ(adaptdiff::config::to_toml(b), text);
  EXPECT_EQ(b.run.seed, 9);
}

TEST_F(ConfigTest, GoldenModelFileParses) {
  const auto m = load_model_config(std::string(ADAPTDIFF_SHARED_DIR) + "/golden/idiff_face_tiny/model.toml");
  EXPECT_EQ(m.unet.initial_channels, 32);
  EXPECT_EQ(m.unet.channel_multipliers, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(m.unet.level_channels(1), 64);
  EXPECT_EQ(m.diffusion.latent_height, 16);
  EXPECT_EQ(m.decoder.image_size(16), 32);
}

TEST_F(ConfigTest, BadModelFileNamesKey) {
  const std::string good = std::string("[unet]\ninput_channels = 3\ninitial_channels = 32\nchannel_multipliers = [1, 2]\n") +
                           "is_attention = [false, true]\nattention_head_channels = 16\nn_blocks_per_resolution = 1\n" +
                           "context_channels = 64\n[diffusion]\nlatent_height = 16\nlatent_width = 16\n" +
                           "[decoder]\nch = 32\nch_mult = [1, 2]\nnum_res_blocks = 1\nresolution = 32\n";
  EXPECT_NO_THROW(load_model_config(write("m.toml", good)));
  auto expect_model_error = [&](const std::string& text, const std::string& part) {
    try {
      load_model_config(write("m.toml", text));
      FAIL() << "no error for " << part;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_model_error(good + "[extra]\n", "'extra'");
  std::string bad = good;
  bad.replace(bad.find("is_attention = [false, true]"), 28, "is_attention = [false]");
  expect_model_error(bad, "unet.is_attention");
  bad = good;
  bad.replace(bad.find("initial_channels = 32"), 21, "initial_channels = 40");
  expect_model_error(bad, "unet.initial_channels");
  bad = good;
  bad.replace(bad.find("latent_height = 16"), 18, "latent_height = 15");
  expect_model_error(bad, "diffusion.latent_height");
}

}  // namespace
