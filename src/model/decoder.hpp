#pragma once
// The latent-diffusion VQ first stage used by IDiff-Face to turn sampled latents into images:
// nearest-codebook quantisation (`quantize.embedding.weight`), `post_quant_conv` (1x1) and the convolutional
// `decoder.*` (conv_in, mid.{block_1, attn_1, block_2}, up.{L}.{block, attn, upsample}, norm_out, conv_out),
// with parameter names equal to the keys of upstream's `first_stage_decoder_state_dict.pt`.
// Ref: ../shared/docs/idiff-face-model.md section 4; upstream latent-diffusion
// ldm/modules/diffusionmodules/model.py (Decoder, ResnetBlock, AttnBlock, Upsample) and
// taming/modules/vqvae/quantize.py (VectorQuantizer), wrapped by IDiff-Face's VQDecoderInterface.
#include <torch/torch.h>

#include <vector>

#include "config/model_config.hpp"

namespace adaptdiff::model {

/// ResnetBlock(Ci -> Co) without time embedding: GN(32, eps 1e-6) -> swish -> 3x3 conv, twice, plus a 1x1
/// `nin_shortcut` when Ci != Co. Ref: spec 4.1-4.2.
class DecoderResBlockImpl : public torch::nn::Module {
 public:
  DecoderResBlockImpl(int64_t in_channels, int64_t out_channels);
  /// x [B, Ci, H, W] -> [B, Co, H, W]
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::GroupNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, nin_shortcut_{nullptr};
};
TORCH_MODULE(DecoderResBlock);

/// Single-head spatial self-attention (`AttnBlock`): 1x1 q/k/v/proj_out over GN(32, eps 1e-6)(x), weights
/// softmax_j(q_i . k_j / sqrt(C)) computed in float32, residual add. Ref: spec 4.2 "Decoder self-attention".
class DecoderAttnBlockImpl : public torch::nn::Module {
 public:
  explicit DecoderAttnBlockImpl(int64_t channels);
  /// x [B, C, H, W] -> [B, C, H, W]
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::GroupNorm norm_{nullptr};
  torch::nn::Conv2d q_{nullptr}, k_{nullptr}, v_{nullptr}, proj_out_{nullptr};
};
TORCH_MODULE(DecoderAttnBlock);

/// One resolution level `up.{L}` of the decoder: `block.{j}` (j = 0..num_res_blocks), optional `attn.{j}`,
/// and `upsample.conv` (nearest x2 then 3x3 conv) for L >= 1.
class DecoderLevelImpl : public torch::nn::Module {
 public:
  DecoderLevelImpl(int64_t in_channels, int64_t out_channels, int64_t n_blocks, bool with_attention,
                   bool with_upsample);
  /// x [B, Cin, H, W] -> [B, Cout, H', W'] with H' = 2H if this level upsamples, else H.
  torch::Tensor forward(const torch::Tensor& x);

 private:
  std::vector<DecoderResBlock> blocks_;
  std::vector<DecoderAttnBlock> attns_;
  torch::nn::Conv2d upsample_conv_{nullptr};
};
TORCH_MODULE(DecoderLevel);

/// The convolutional `Decoder` (keys `decoder.*`). Ref: spec 4.1, 4.2 step 3.
class ConvDecoderImpl : public torch::nn::Module {
 public:
  explicit ConvDecoderImpl(const config::DecoderConfig& cfg);
  /// h [B, z_channels, h, w] -> image [B, out_ch, h * 2^(L-1), w * 2^(L-1)] (no tanh)
  torch::Tensor forward(const torch::Tensor& h);

 private:
  torch::nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  DecoderResBlock mid_block_1_{nullptr}, mid_block_2_{nullptr};
  DecoderAttnBlock mid_attn_1_{nullptr};
  std::vector<DecoderLevel> levels_;  // index L = 0 is the full-resolution level; executed top level first
  torch::nn::GroupNorm norm_out_{nullptr};
};
TORCH_MODULE(ConvDecoder);

/// Codebook holder (`quantize.embedding.weight` [n_embed, embed_dim]) with the nearest-code search.
class VectorQuantizerImpl : public torch::nn::Module {
 public:
  VectorQuantizerImpl(int64_t n_embed, int64_t embed_dim);
  /// z [B, C, H, W] (C = embed_dim) -> indices [B, H, W] int64 of the nearest codebook rows by
  /// |z|^2 + |e|^2 - 2 z.e in float32, first minimum on ties. Evaluated in row chunks so that the
  /// distance matrix never exceeds 128 MiB. Ref: spec 4.2 step 1.
  torch::Tensor indices(const torch::Tensor& z);
  /// z [B, C, H, W] -> quantised [B, C, H, W], formed as z + (e_idx - z) like upstream's straight-through
  /// estimator. `indices_out` (optional) receives the [B, H, W] int64 indices.
  torch::Tensor forward(const torch::Tensor& z, torch::Tensor* indices_out = nullptr);
  /// The codebook [n_embed, embed_dim].
  const torch::Tensor& codebook() const { return embedding_->weight; }

 private:
  torch::nn::Embedding embedding_{nullptr};
};
TORCH_MODULE(VectorQuantizer);

/// VQDecoderInterface: quantize -> post_quant_conv -> decoder. Built from config::DecoderConfig with
/// LibTorch's default initialisation (load a state dict before use).
/// Throws ModelError if a width is not divisible by 32 (GroupNorm(32)) or a size is not positive.
class VQDecoderImpl : public torch::nn::Module {
 public:
  explicit VQDecoderImpl(const config::DecoderConfig& cfg);
  /// Default (sampling) path: quantise first. z [B, embed_dim, h, w] float -> image [B, out_ch, H, W] float32,
  /// H = h * 2^(len(ch_mult)-1), roughly in [-1, 1]. Throws InputError for a wrong latent shape.
  torch::Tensor forward(const torch::Tensor& z);
  /// Runs post_quant_conv and the decoder in `dtype` (weights converted); the quantiser stays in float32, so
  /// the codebook rows chosen do not depend on it. forward() still returns float32.
  void set_compute_dtype(torch::ScalarType dtype);
  /// Same without quantisation (upstream force_not_quantize=True).
  torch::Tensor forward_unquantized(const torch::Tensor& z);
  /// Nearest codebook rows: z [B, embed_dim, h, w] -> [B, h, w] int64.
  torch::Tensor quantize_indices(const torch::Tensor& z);
  /// Quantiser output z + (e_idx - z): [B, embed_dim, h, w].
  torch::Tensor quantize(const torch::Tensor& z);

  const config::DecoderConfig& config() const { return cfg_; }

 private:
  void check_latent(const torch::Tensor& z, const char* op) const;

  config::DecoderConfig cfg_;
  ConvDecoder decoder_{nullptr};
  VectorQuantizer quantize_{nullptr};
  torch::nn::Conv2d post_quant_conv_{nullptr};
  torch::ScalarType compute_dtype_ = torch::kFloat;
};
TORCH_MODULE(VQDecoder);

}  // namespace adaptdiff::model
