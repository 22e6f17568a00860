#pragma once
// The model description file (TOML with [unet], [diffusion], [decoder]; keys named as in the original
// IDiff-Face configs). Format: ../shared/golden/idiff_face_tiny/model.toml; shipped example:
// configs/models/idiff-face-cpd25.toml. See ../shared/docs/idiff-face-model.md sections 2, 4 and 6.
#include <cstdint>
#include <string>
#include <vector>

namespace adaptdiff::config {

/// Hyper-parameters of IDiff-Face's ConditionalUNet (CA flavour). Ref: unet_cond_ca_cpd25.yaml upstream.
struct UNetConfig {
  int64_t input_channels = 3;
  int64_t initial_channels = 96;                  ///< C0: width after the stem conv
  std::vector<int64_t> channel_multipliers;       ///< cumulative: C_i = C_{i-1} * m[i]
  std::vector<bool> is_attention;                 ///< attention after each res block of level i
  int64_t attention_heads = -1;                   ///< <= 0: heads = width / attention_head_channels
  int64_t attention_head_channels = 32;
  int64_t n_blocks_per_resolution = 2;
  std::string condition_type = "CA";              ///< only "CA" is implemented
  bool is_context_conditional = true;
  int64_t n_context_classes = 0;                  ///< must be 0 (embedding-table contexts unsupported)
  int64_t context_input_channels = 512;
  int64_t context_channels = 256;                 ///< D: projected context width
  bool learn_empty_context = false;
  double context_dropout_probability = 0.0;       ///< training only; ignored at inference

  /// Width of level i: C0 * prod(m[0..i]).
  int64_t level_channels(size_t i) const;
  size_t levels() const { return channel_multipliers.size(); }
};

/// Diffusion schedule and latent shape. betas = linspace(beta_1*1000/T, beta_T*1000/T, T) (float32).
struct DiffusionConfig {
  int64_t T = 1000;
  std::string schedule_type = "linear";  ///< only "linear" is implemented (as upstream)
  double beta_1 = 1e-4;
  double beta_T = 0.02;
  int64_t latent_channels = 3;
  int64_t latent_height = 32;
  int64_t latent_width = 32;
};

/// Latent-diffusion VQ first stage (quantize -> post_quant_conv -> Decoder).
struct DecoderConfig {
  int64_t ch = 128;
  std::vector<int64_t> ch_mult{1, 2, 4};
  int64_t num_res_blocks = 2;
  std::vector<int64_t> attn_resolutions;
  int64_t z_channels = 3;
  int64_t out_ch = 3;
  int64_t in_channels = 3;
  int64_t resolution = 128;
  bool double_z = false;
  double dropout = 0.0;
  int64_t embed_dim = 3;
  int64_t n_embed = 8192;

  /// Output image side for a latent of side `latent`: latent * 2^(len(ch_mult)-1).
  int64_t image_size(int64_t latent) const;
};

/// A whole model description file.
struct ModelConfig {
  UNetConfig unet;
  DiffusionConfig diffusion;
  DecoderConfig decoder;
  std::string path;  ///< file it was read from ("" when built in code)
};

/// Reads and validates a model file. Throws ConfigError naming file, key and line for unknown keys,
/// wrong types and inconsistent values (e.g. widths not divisible by 32 for GroupNorm(32)).
ModelConfig load_model_config(const std::string& path);

/// Canonical text of every value (no comments, fixed order): equal for files that describe the same model.
std::string canonical_text(const ModelConfig& m);

/// Parses model TOML text (same rules); `origin` names it in messages.
ModelConfig parse_model_config(const std::string& text, const std::string& origin);

}  // namespace adaptdiff::config
