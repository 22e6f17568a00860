#include "config/model_config.hpp"

#include <sstream>

#include "config/toml_reader.hpp"
#include "core/error.hpp"

namespace adaptdiff::config {

int64_t UNetConfig::level_channels(size_t i) const {
  int64_t c = initial_channels;
  for (size_t k = 0; k <= i && k < channel_multipliers.size(); ++k) c *= channel_multipliers[k];
  return c;
}

int64_t DecoderConfig::image_size(int64_t latent) const {
  return latent << (static_cast<int64_t>(ch_mult.size()) - 1);
}

namespace {

void check(bool ok, const TableReader& r, const std::string& key, const std::string& what) {
  if (!ok) throw ConfigError("model config: " + r.where(key) + ": " + what);
}

ModelConfig read(const toml::table& root, const std::string& origin) {
  ModelConfig m;
  m.path = origin;
  TableReader top(root, origin, "");

  TableReader u = top.section("unet");
  UNetConfig& un = m.unet;
  un.input_channels = u.require_int("input_channels");
  un.initial_channels = u.require_int("initial_channels");
  un.channel_multipliers = u.require_int_array("channel_multipliers");
  un.is_attention = u.require_bool_array("is_attention");
  un.attention_heads = u.get_int("attention_heads").value_or(-1);
  un.attention_head_channels = u.require_int("attention_head_channels");
  un.n_blocks_per_resolution = u.require_int("n_blocks_per_resolution");
  un.condition_type = u.get_string("condition_type").value_or("CA");
  un.is_context_conditional = u.get_bool("is_context_conditional").value_or(true);
  un.n_context_classes = u.get_int("n_context_classes").value_or(0);
  un.context_input_channels = u.get_int("context_input_channels").value_or(512);
  un.context_channels = u.require_int("context_channels");
  un.learn_empty_context = u.get_bool("learn_empty_context").value_or(false);
  un.context_dropout_probability = u.get_double("context_dropout_probability").value_or(0.0);
  u.finish();

  check(un.input_channels > 0, u, "input_channels", "must be > 0");
  check(un.initial_channels > 0 && un.initial_channels % 32 == 0, u, "initial_channels",
        "must be a positive multiple of 32 (GroupNorm with 32 groups)");
  check(!un.channel_multipliers.empty(), u, "channel_multipliers", "must not be empty");
  for (auto mlt : un.channel_multipliers) check(mlt > 0, u, "channel_multipliers", "entries must be > 0");
  check(un.is_attention.size() == un.channel_multipliers.size(), u, "is_attention",
        "must have one entry per channel multiplier (" + std::to_string(un.channel_multipliers.size()) + ")");
  check(un.attention_head_channels > 0, u, "attention_head_channels", "must be > 0");
  check(un.n_blocks_per_resolution > 0, u, "n_blocks_per_resolution", "must be > 0");
  check(un.condition_type == "CA", u, "condition_type",
        "'" + un.condition_type + "' is not supported; only \"CA\" (cross-attention) is implemented");
  check(un.is_context_conditional, u, "is_context_conditional", "must be true (identity-conditioned model)");
  check(un.n_context_classes == 0, u, "n_context_classes", "must be 0 (embedding contexts are not supported)");
  check(!un.learn_empty_context, u, "learn_empty_context", "true is not supported");
  check(un.context_input_channels > 0, u, "context_input_channels", "must be > 0");
  check(un.context_channels > 0 && un.context_channels % 32 == 0, u, "context_channels",
        "must be a positive multiple of 32 (GroupNorm with 32 groups)");
  for (size_t i = 0; i < un.levels(); ++i) {
    const int64_t c = un.level_channels(i);
    check(c % 32 == 0, u, "channel_multipliers", "level " + std::to_string(i) + " width " + std::to_string(c) +
                                                     " is not divisible by 32");
    if (un.is_attention[i] || i + 1 == un.levels()) {
      const int64_t heads = un.attention_heads > 0 ? un.attention_heads : c / un.attention_head_channels;
      check(heads > 0 && (heads * un.attention_head_channels) % 32 == 0, u, "attention_head_channels",
            "attention width at level " + std::to_string(i) + " must be a positive multiple of 32");
    }
  }

  TableReader d = top.section("diffusion");
  DiffusionConfig& df = m.diffusion;
  df.T = d.get_int("T").value_or(1000);
  df.schedule_type = d.get_string("schedule_type").value_or("linear");
  df.beta_1 = d.get_double("beta_1").value_or(1e-4);
  df.beta_T = d.get_double("beta_T").value_or(0.02);
  df.latent_channels = d.get_int("latent_channels").value_or(un.input_channels);
  df.latent_height = d.require_int("latent_height");
  df.latent_width = d.require_int("latent_width");
  d.finish();
  check(df.T >= 2, d, "T", "must be >= 2");
  check(df.schedule_type == "linear", d, "schedule_type", "only \"linear\" is supported");
  check(df.beta_1 > 0 && df.beta_T > df.beta_1 && df.beta_T * 1000.0 / df.T < 1.0, d, "beta_T",
        "need 0 < beta_1 < beta_T and beta_T*1000/T < 1");
  check(df.latent_channels == un.input_channels, d, "latent_channels", "must equal unet.input_channels");
  const int64_t div = int64_t{1} << (un.levels() - 1);
  check(df.latent_height > 0 && df.latent_height % div == 0, d, "latent_height",
        "must be a positive multiple of " + std::to_string(div) + " (2^(levels-1))");
  check(df.latent_width > 0 && df.latent_width % div == 0, d, "latent_width",
        "must be a positive multiple of " + std::to_string(div) + " (2^(levels-1))");

  TableReader c = top.section("decoder");
  DecoderConfig& dc = m.decoder;
  dc.ch = c.require_int("ch");
  dc.ch_mult = c.require_int_array("ch_mult");
  dc.num_res_blocks = c.require_int("num_res_blocks");
  dc.attn_resolutions = c.get_int_array("attn_resolutions").value_or(std::vector<int64_t>{});
  dc.z_channels = c.get_int("z_channels").value_or(3);
  dc.out_ch = c.get_int("out_ch").value_or(3);
  dc.in_channels = c.get_int("in_channels").value_or(3);
  dc.resolution = c.require_int("resolution");
  dc.double_z = c.get_bool("double_z").value_or(false);
  dc.dropout = c.get_double("dropout").value_or(0.0);
  dc.embed_dim = c.get_int("embed_dim").value_or(3);
  dc.n_embed = c.get_int("n_embed").value_or(8192);
  c.finish();
  check(dc.ch > 0 && dc.ch % 32 == 0, c, "ch", "must be a positive multiple of 32");
  check(!dc.ch_mult.empty(), c, "ch_mult", "must not be empty");
  check(dc.num_res_blocks > 0, c, "num_res_blocks", "must be > 0");
  check(dc.out_ch == 3, c, "out_ch", "must be 3 (RGB images)");
  check(dc.embed_dim == df.latent_channels, c, "embed_dim", "must equal diffusion.latent_channels");
  check(dc.n_embed > 0, c, "n_embed", "must be > 0");
  check(dc.z_channels > 0, c, "z_channels", "must be > 0");

  top.finish();
  return m;
}

}  // namespace

std::string canonical_text(const ModelConfig& m) {
  std::ostringstream os;
  os.precision(17);
  auto list = [&](const auto& v) {
    os << "[";
    for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
    os << "]";
  };
  const auto& u = m.unet;
  os << "unet{" << u.input_channels << "," << u.initial_channels << ",";
  list(u.channel_multipliers);
  os << ",";
  list(u.is_attention);
  os << "," << u.attention_heads << "," << u.attention_head_channels << "," << u.n_blocks_per_resolution << ","
     << u.condition_type << "," << u.context_input_channels << "," << u.context_channels << "}";
  const auto& d = m.diffusion;
  os << "diffusion{" << d.T << "," << d.schedule_type << "," << d.beta_1 << "," << d.beta_T << "," << d.latent_channels
     << "," << d.latent_height << "," << d.latent_width << "}";
  const auto& c = m.decoder;
  os << "decoder{" << c.ch << ",";
  list(c.ch_mult);
  os << "," << c.num_res_blocks << ",";
  list(c.attn_resolutions);
  os << "," << c.z_channels << "," << c.out_ch << "," << c.embed_dim << "," << c.n_embed << "}";
  return os.str();
}

ModelConfig load_model_config(const std::string& path) { return read(parse_toml_file(path), path); }

ModelConfig parse_model_config(const std::string& text, const std::string& origin) {
  return read(parse_toml_text(text, origin), origin);
}

}  // namespace adaptdiff::config
