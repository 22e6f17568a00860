// Checkpoints saved from wrapped models: a prefix shared by every key ("module.", "_forward_module.", "model.")
// is removed before matching, a prefix the model does not know is diagnosed in the error's first line, and
// the key lists of a mismatch stay short.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <string>

#include "config/model_config.hpp"
#include "core/error.hpp"
#include "model/decoder.hpp"
#include "model/loader.hpp"
#include "model/state_dict_keys.hpp"
#include "model/unet.hpp"
#include "test_support.hpp"

namespace adaptdiff::model {
namespace {

using test::module_state;
using test::TempFile;
using test::write_with_libtorch;

config::ModelConfig small_config() { return config::parse_model_config(test::kTinyModel, "inline-tiny.toml"); }

StateDict with_prefix(const StateDict& sd, const std::string& prefix) {
  StateDict out;
  for (const auto& [k, v] : sd) out.emplace_back(prefix + k, v);
  return out;
}

/// The upstream DDPM-wrapper layout: 8 schedule buffers, then eps_model.* (as the published checkpoints).
StateDict ddpm_wrapper_dict(ConditionalUNet& net) {
  StateDict sd;
  for (const auto& name : schedule_buffer_names()) sd.emplace_back(name, torch::linspace(0.1, 0.9, 1000));
  for (auto& entry : module_state(*net, "eps_model.")) sd.push_back(entry);
  return sd;
}

TEST(WrapperPrefix, StripsOnePrefixSharedByEveryKeyRepeatedly) {
  StateDict sd{{"module.a.weight", torch::zeros({1})}, {"module.b", torch::zeros({1})}};
  EXPECT_EQ(strip_wrapper_prefix(sd), "module.");
  EXPECT_EQ(sd[0].first, "a.weight");
  EXPECT_EQ(sd[1].first, "b");

  StateDict nested{{"_forward_module.module.x", torch::zeros({1})}};
  EXPECT_EQ(strip_wrapper_prefix(nested), "_forward_module.module.");
  EXPECT_EQ(nested[0].first, "x");

  StateDict mixed{{"module.a", torch::zeros({1})}, {"b", torch::zeros({1})}};
  EXPECT_EQ(strip_wrapper_prefix(mixed), "");
  EXPECT_EQ(mixed[0].first, "module.a");

  StateDict unknown{{"backbone.a", torch::zeros({1})}};
  EXPECT_EQ(strip_wrapper_prefix(unknown), "") << "only the wrappers' own prefixes are removed";
  StateDict empty;
  EXPECT_EQ(strip_wrapper_prefix(empty), "");
}

TEST(WrapperPrefix, WrappedUNetAndDecoderLoadWithTheSameResults) {
  const auto cfg = small_config();
  ConditionalUNet net(cfg.unet);
  net->eval();
  const auto [x, t, c, ref] = test::forward_case(net, 3, 1, 900);
  for (const std::string prefix : {"module.", "_forward_module.", "model.", "_forward_module.module."}) {
    TempFile f("wrapped.pt");
    write_with_libtorch(f.path(), with_prefix(ddpm_wrapper_dict(net), prefix));
    StateDict sched;
    auto denoiser = load_idiff_face_unet(cfg, f.path(), torch::kCPU, &sched);
    EXPECT_EQ(sched.size(), 8u) << prefix;
    EXPECT_TRUE(torch::equal(denoiser->eps(x, t, c), ref)) << prefix;  // same weights, same kernels: bitwise
  }

  VQDecoder dec(cfg.decoder);
  dec->eval();
  TempFile d("dec.pt");
  write_with_libtorch(d.path(), module_state(*dec, "module."));
  auto decoder = load_vq_decoder(cfg, d.path(), torch::kCPU);
  const torch::Tensor z = torch::randn({1, 3, 16, 16});
  torch::Tensor image_ref;
  {
    torch::NoGradGuard g;
    image_ref = dec->forward(z);
  }
  EXPECT_TRUE(torch::equal(decoder->decode(z), image_ref));
}

TEST(WrapperPrefix, UnknownPrefixIsDiagnosedFirstAndListsStayShort) {
  const auto cfg = small_config();
  ConditionalUNet net(cfg.unet);
  const StateDict sd = module_state(*net, "backbone.");  // a bare UNet dict under a prefix no wrapper uses
  TempFile f("backbone.pt");
  write_with_libtorch(f.path(), sd);
  std::string msg;
  try {
    load_idiff_face_unet(cfg, f.path(), torch::kCPU);
    ADD_FAILURE() << "a 'backbone.' checkpoint loaded";
  } catch (const ModelError& e) {
    msg = e.what();
  }
  const std::string n = std::to_string(sd.size());
  const std::string first_line = msg.substr(0, msg.find('\n'));
  EXPECT_NE(first_line.find("all " + n + " keys start with 'backbone.'"), std::string::npos) << first_line;
  EXPECT_NE(first_line.find("without it " + n + " of " + n + " model keys match"), std::string::npos) << first_line;
  // Every key is both missing and unexpected: two lists of at most 24 entries plus "... and k more".
  ASSERT_GT(sd.size(), 24u);
  EXPECT_NE(msg.find("... and " + std::to_string(sd.size() - 24) + " more"), std::string::npos) << msg;
  const auto lines = std::count(msg.begin(), msg.end(), '\n');
  EXPECT_LE(lines, 2 * (1 + 24 + 1) + 2) << msg;
}

TEST(WrapperPrefix, DiagnosisNeedsAMajorityPrefixTheModelLacks) {
  const std::vector<std::string> expected{"eps_model.a", "eps_model.b", "betas"};
  StateDict half{{"x.a", torch::zeros({1})}, {"eps_model.b", torch::zeros({1})}, {"betas", torch::zeros({1})}};
  EXPECT_EQ(diagnose_key_prefix(half, expected), "") << "1 of 3 keys is not a majority";
  StateDict known{{"eps_model.c", torch::zeros({1})}, {"eps_model.d", torch::zeros({1})}};
  EXPECT_EQ(diagnose_key_prefix(known, expected), "") << "the model has keys under eps_model.";
  StateDict most{{"net.eps_model.a", torch::zeros({1})}, {"net.eps_model.b", torch::zeros({1})}, {"betas", {}}};
  EXPECT_EQ(diagnose_key_prefix(most, expected),
            "2 of 3 keys start with 'net.' (no key of the model does; without it 2 of 3 model keys match)");
}

}  // namespace
}  // namespace adaptdiff::model
