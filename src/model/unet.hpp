#pragma once
// IDiff-Face's noise predictor `ConditionalUNet` in its CA (cross-attention) flavour, as a LibTorch module tree
// whose parameter names equal the upstream state-dict keys (without the DDPM wrapper's `eps_model.` prefix).
//
// Module tree: image_proj -> down.{k} (res [+ attn] | conv) -> middle.{res1,attn,res2} -> up.{k} (res [+ attn] |
// conv) -> norm -> final, with a sinusoidal time MLP (time_emb.lin1/lin2) and a context projection (context_emb)
// that enters only through the cross-attention blocks.
// Ref: ../shared/docs/idiff-face-model.md sections 2-3; upstream IDiff-Face models/unet.py (ConditionalUNet,
// ResidualBlock, SpatialEmbeddingCrossAttentionBlock, MultiHeadAttention).
#include <torch/torch.h>

#include <memory>
#include <utility>
#include <vector>

#include "config/model_config.hpp"

namespace adaptdiff::model {

/// GroupNorm wrapped one level deeper, so that its parameters are named `<name>.norm.weight/bias`
/// (upstream's ResidualBlock.norm2 is such a wrapper). GN(32, C, eps 1e-5). Ref: spec 3.2.
class NestedGroupNormImpl : public torch::nn::Module {
 public:
  explicit NestedGroupNormImpl(int64_t channels);
  /// x [B, C, *] -> [B, C, *]
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::GroupNorm norm_{nullptr};
};
TORCH_MODULE(NestedGroupNorm);

/// Residual block ResBlock(Ci -> Co) with time-conditioned scale/shift (shared by the CA and AdaGN flavours).
/// Ref: spec 3.2.
class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t in_channels, int64_t out_channels, int64_t time_channels);
  /// x [B, Ci, H, W], temb [B, Tc] -> [B, Co, H, W]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb);

 private:
  torch::nn::GroupNorm norm1_{nullptr};
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::Sequential time_emb_{nullptr};  // [0] SiLU, [1] Linear(Tc, Co)
  torch::nn::Linear scale_emb_{nullptr}, shift_emb_{nullptr};
  NestedGroupNorm norm2_{nullptr};
  torch::nn::Conv2d conv2_{nullptr};
  torch::nn::Conv2d shortcut_{nullptr};  // null when Ci == Co
};
TORCH_MODULE(ResBlock);

/// Multi-head attention over token sequences in channel-first layout, with 1x1 Conv1d projections.
/// Scaling 1/sqrt(hc) overall (upstream applies hc^-1/4 to q and to k); softmax in float32. Ref: spec 3.3.
class MultiHeadAttentionImpl : public torch::nn::Module {
 public:
  MultiHeadAttentionImpl(int64_t inner_channels, int64_t kv_channels, int64_t heads, int64_t head_channels);
  /// q_in [B, I, Lq], kv_in [B, Ck, Lk] -> [B, I, Lq]
  torch::Tensor forward(const torch::Tensor& q_in, const torch::Tensor& kv_in);
  /// Keys and values of kv_in [B, Ck, Lk]: each [B·heads, hc, Lk].
  std::pair<torch::Tensor, torch::Tensor> keys_values(const torch::Tensor& kv_in);
  /// q_in [B, I, Lq] attending to keys and values from keys_values() -> [B, I, Lq].
  torch::Tensor attend(const torch::Tensor& q_in, const torch::Tensor& k, const torch::Tensor& v);

 private:
  int64_t heads_, head_channels_;
  torch::nn::Conv1d to_q_{nullptr}, to_k_{nullptr}, to_v_{nullptr}, proj_out_{nullptr};
};
TORCH_MODULE(MultiHeadAttention);

/// `SpatialEmbeddingCrossAttentionBlock`: self-attention over pixels, cross-attention to `d = hc` context
/// tokens (projected context split channel-major into [D, d]), then a GELU feed-forward; all with one shared
/// pre-norm `x_norm`. Ref: spec 3.3.
class CrossAttentionBlockImpl : public torch::nn::Module {
 public:
  CrossAttentionBlockImpl(int64_t channels, int64_t heads, int64_t head_channels, int64_t context_channels);
  /// x [B, C, H, W], c [B, D] (projected context) -> [B, C, H, W]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& c);

 private:
  int64_t inner_, context_channels_, context_tokens_;
  torch::nn::Conv2d x_proj_in_{nullptr}, x_proj_out_{nullptr};
  MultiHeadAttention self_attention_{nullptr};
  torch::nn::Linear c_proj_in_{nullptr};
  MultiHeadAttention cross_attention_{nullptr};
  torch::nn::GroupNorm x_norm_{nullptr}, c_norm_{nullptr};
  torch::nn::Sequential ff_{nullptr};  // [0] Linear(I, 4I), [1] GELU, [2] Linear(4I, I)
  torch::nn::LinearImpl* ff_in_ = nullptr;   // ff_[0], owned by ff_
  torch::nn::LinearImpl* ff_out_ = nullptr;  // ff_[2], owned by ff_
  // The cross-attention's keys and values depend on the context only, and a sampler passes the same contexts at
  // every step of a batch: on the CPU they are kept while c holds the same values (the same bits as recomputing).
  torch::Tensor cached_c_, cached_k_, cached_v_;
};
TORCH_MODULE(CrossAttentionBlock);

/// One entry of the `down` / `up` lists: a residual block with optional attention (`res`, `attn`) or a
/// resampling conv (`conv`). Ref: spec 3.4.
class UNetStageImpl : public torch::nn::Module {
 public:
  /// Residual stage ResBlock(Ci -> Co) [+ Attn(Co) if heads > 0].
  UNetStageImpl(int64_t in_channels, int64_t out_channels, int64_t time_channels, int64_t heads,
                int64_t head_channels, int64_t context_channels);
  /// Resampling stage: Conv2d(C, C, 3, stride 2, pad 1) if `up` is false, else ConvTranspose2d(C, C, 4, 2, 1).
  UNetStageImpl(int64_t channels, bool up);
  /// x [B, Ci, H, W], temb [B, Tc], c [B, D] -> [B, Co, H', W'] (H' = H/2 or 2H for resampling stages)
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb, const torch::Tensor& c);
  /// True for Downsample/Upsample entries (they neither push to nor pop from the skip list).
  bool is_resample() const { return !res_; }

 private:
  ResBlock res_{nullptr};
  CrossAttentionBlock attn_{nullptr};
  torch::nn::Conv2d down_{nullptr};
  torch::nn::ConvTranspose2d up_{nullptr};
  // up_ as a 3x3 convolution + pixel shuffle on the CPU (parallel_ops.hpp), made from up_'s weights when first
  // needed and again whenever they change (their version counter).
  torch::Tensor up_w3_, up_b3_;
  int64_t up_version_ = -1;
};
TORCH_MODULE(UNetStage);

/// The ConditionalUNet (CA). Built from config::UNetConfig; parameters on the CPU in float32 with LibTorch's
/// default initialisation (load a checkpoint or re-initialise before use).
/// Throws ModelError if the configuration is not the CA flavour or a width is not divisible by 32.
class ConditionalUNetImpl : public torch::nn::Module {
 public:
  explicit ConditionalUNetImpl(const config::UNetConfig& cfg);

  /// x_t [B, C, H, W] float (H, W divisible by 2^(levels-1)), t [B] int64 timestep indices,
  /// context [B, context_input_channels] float, or an undefined tensor meaning "no context" (Python None:
  /// projected context = zeros of width D). Returns eps [B, C, H, W] on the inputs' device and dtype.
  /// Rows are independent (no batch statistics). Ref: spec 3.5.
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& context);

  /// Sinusoidal time features [B, C0] float32 (cosine half first). Ref: spec 3.5 step 1.
  torch::Tensor time_features(const torch::Tensor& t);

  const config::UNetConfig& config() const { return cfg_; }

 private:
  config::UNetConfig cfg_;
  torch::Tensor freqs_;  // [C0/2] float32, not a parameter or buffer (upstream: plain attribute)
  torch::nn::Conv2d image_proj_{nullptr};
  torch::nn::Linear lin1_{nullptr}, lin2_{nullptr};
  torch::nn::Linear context_emb_{nullptr};
  std::vector<UNetStage> down_, up_;
  ResBlock mid_res1_{nullptr}, mid_res2_{nullptr};
  CrossAttentionBlock mid_attn_{nullptr};
  torch::nn::GroupNorm norm_{nullptr};
  torch::nn::Conv2d final_{nullptr};
};
TORCH_MODULE(ConditionalUNet);

}  // namespace adaptdiff::model
