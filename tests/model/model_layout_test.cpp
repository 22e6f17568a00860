// Layout of the published models: the UNet built from configs/models/idiff-face-cpd25.toml and the VQ-f4 decoder
// must have exactly the keys, shapes, dtypes and order of the upstream checkpoints, as listed in
// ../shared/docs/idiff-face-cpd25-keys.txt and vq-f4-decoder-keys.txt, and the parameter totals stated there.
// No forward of the 216M-parameter net is run here (too slow for the 2-core test budget).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/model_config.hpp"
#include "model/decoder.hpp"
#include "model/loader.hpp"
#include "model/unet.hpp"
#include "test_support.hpp"

namespace adaptdiff::model {
namespace {

struct KeyEntry {
  std::string key, dtype, shape;
  int64_t numel = 0;
};

/// Parses "<key> <dtype> [d0,d1,...] <numel>" lines; '#' lines are comments.
std::vector<KeyEntry> read_keys(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::vector<KeyEntry> out;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    KeyEntry e;
    is >> e.key >> e.dtype >> e.shape >> e.numel;
    if (!is) throw std::runtime_error("bad line in " + path + ": " + line);
    out.push_back(e);
  }
  return out;
}

std::string shape_text(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? "," : "") + std::to_string(t.size(d));
  return s + "]";
}

std::vector<KeyEntry> module_keys(torch::nn::Module& m, const std::string& prefix) {
  std::vector<KeyEntry> out;
  for (const auto& p : m.named_parameters(true))
    out.push_back({prefix + p.key(), p.value().scalar_type() == torch::kFloat ? "float32" : "other",
                   shape_text(p.value()), p.value().numel()});
  return out;
}

void expect_same_entries(const std::vector<KeyEntry>& ours, const std::vector<KeyEntry>& ref) {
  ASSERT_EQ(ours.size(), ref.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < ref.size() && mismatches < 10; ++i) {
    const bool same = ours[i].key == ref[i].key && ours[i].shape == ref[i].shape && ours[i].dtype == ref[i].dtype &&
                      ours[i].numel == ref[i].numel;
    if (!same) {
      ++mismatches;
      ADD_FAILURE() << "entry " << i << ": ours " << ours[i].key << " " << ours[i].dtype << " " << ours[i].shape
                    << ", upstream " << ref[i].key << " " << ref[i].dtype << " " << ref[i].shape;
    }
  }
}

TEST(ModelLayout, Cpd25UNetHasTheUpstreamKeysShapesOrderAndParameterCount) {
  const auto cfg = config::load_model_config(test::source_dir() + "/configs/models/idiff-face-cpd25.toml");
  ConditionalUNet net(cfg.unet);

  const auto all = read_keys(test::shared_dir() + "/docs/idiff-face-cpd25-keys.txt");
  ASSERT_EQ(all.size(), 850u);  // "entries: 850" in the file header
  std::vector<KeyEntry> buffers, params;
  for (const auto& e : all) (e.key.rfind("eps_model.", 0) == 0 ? params : buffers).push_back(e);
  ASSERT_EQ(buffers.size(), schedule_buffer_names().size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    EXPECT_EQ(buffers[i].key, schedule_buffer_names()[i]);
    EXPECT_EQ(buffers[i].shape, "[" + std::to_string(cfg.diffusion.T) + "]");
  }

  expect_same_entries(module_keys(*net, "eps_model."), params);
  EXPECT_EQ(parameter_count(*net), 216341187);  // spec section 2 / keys-file header
}

TEST(ModelLayout, VqF4DecoderHasTheUpstreamKeysShapesOrderAndParameterCount) {
  const auto cfg = config::load_model_config(test::source_dir() + "/configs/models/idiff-face-cpd25.toml");
  VQDecoder dec(cfg.decoder);
  const auto ref = read_keys(test::shared_dir() + "/docs/vq-f4-decoder-keys.txt");
  ASSERT_EQ(ref.size(), 115u);  // "entries: 115"
  expect_same_entries(module_keys(*dec, ""), ref);
  EXPECT_EQ(parameter_count(*dec), 32985359);  // spec section 4 / keys-file header
  EXPECT_EQ(cfg.decoder.image_size(cfg.diffusion.latent_height), 128);
}

}  // namespace
}  // namespace adaptdiff::model
