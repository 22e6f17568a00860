#include "model/decoder.hpp"
#include "model/parallel_ops.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.hpp"
#include "model/tensor_text.hpp"

namespace adaptdiff::model {
namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

constexpr double kDecoderGroupNormEps = 1e-6;  // Ref: spec 4.1, checklist item 8
constexpr int64_t kMaxDistanceElements = int64_t{1} << 25;  // 128 MiB of float32 distances per chunk

nn::GroupNorm group_norm(int64_t channels) {
  if (channels <= 0 || channels % 32 != 0)
    throw ModelError("VQDecoder: GroupNorm(32) over " + std::to_string(channels) +
                     " channels (width must be a positive multiple of 32)");
  return nn::GroupNorm(nn::GroupNormOptions(32, channels).eps(kDecoderGroupNormEps));
}

nn::Conv2d conv2d(int64_t in, int64_t out, int64_t k) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).padding(k / 2));
}

}  // namespace

// ---- ResnetBlock --------------------------------------------------------------------------------------------

DecoderResBlockImpl::DecoderResBlockImpl(int64_t in_channels, int64_t out_channels) {
  norm1_ = register_module("norm1", group_norm(in_channels));
  conv1_ = register_module("conv1", conv2d(in_channels, out_channels, 3));
  norm2_ = register_module("norm2", group_norm(out_channels));
  conv2_ = register_module("conv2", conv2d(out_channels, out_channels, 3));
  if (in_channels != out_channels)
    nin_shortcut_ = register_module("nin_shortcut", conv2d(in_channels, out_channels, 1));
}

torch::Tensor DecoderResBlockImpl::forward(const torch::Tensor& x) {
  // Ref: spec 4.2 "ResnetBlock" (dropout 0, no temb).
  torch::Tensor h = conv1_(F::silu(norm1_(x)));
  h = conv2_(F::silu(norm2_(h)));
  return (nin_shortcut_ ? pointwise(nin_shortcut_, x) : x) + h;
}

// ---- AttnBlock ----------------------------------------------------------------------------------------------

DecoderAttnBlockImpl::DecoderAttnBlockImpl(int64_t channels) {
  norm_ = register_module("norm", group_norm(channels));
  q_ = register_module("q", conv2d(channels, channels, 1));
  k_ = register_module("k", conv2d(channels, channels, 1));
  v_ = register_module("v", conv2d(channels, channels, 1));
  proj_out_ = register_module("proj_out", conv2d(channels, channels, 1));
}

torch::Tensor DecoderAttnBlockImpl::forward(const torch::Tensor& x) {
  // Ref: spec 4.2 "Decoder self-attention": w_ij = softmax_j(q_i . k_j * C^-1/2), out_i = sum_j w_ij v_j.
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const torch::Tensor h = norm_(x);
  const torch::Tensor q = pointwise(q_, h).reshape({B, C, H * W});
  const torch::Tensor k = pointwise(k_, h).reshape({B, C, H * W});
  const torch::Tensor v = pointwise(v_, h).reshape({B, C, H * W});
  const double scale = 1.0 / std::sqrt(static_cast<double>(C));
  const torch::Tensor o = attention(q, k, v, B, scale).view({B, C, H, W});  // one head of width C
  return x + pointwise(proj_out_, o);
}

// ---- Level --------------------------------------------------------------------------------------------------

DecoderLevelImpl::DecoderLevelImpl(int64_t in_channels, int64_t out_channels, int64_t n_blocks,
                                   bool with_attention, bool with_upsample) {
  nn::ModuleList block, attn;
  for (int64_t j = 0; j < n_blocks; ++j) {
    blocks_.push_back(DecoderResBlock(j == 0 ? in_channels : out_channels, out_channels));
    block->push_back(blocks_.back());
    if (with_attention) {
      attns_.push_back(DecoderAttnBlock(out_channels));
      attn->push_back(attns_.back());
    }
  }
  register_module("block", block);
  register_module("attn", attn);
  if (with_upsample) {
    auto upsample = register_module("upsample", std::make_shared<nn::Module>());
    upsample_conv_ = upsample->register_module("conv", conv2d(out_channels, out_channels, 3));
  }
}

torch::Tensor DecoderLevelImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = x;
  for (size_t j = 0; j < blocks_.size(); ++j) {
    h = blocks_[j](h);
    if (!attns_.empty()) h = attns_[j](h);
  }
  if (upsample_conv_) {  // nearest x2, then 3x3 conv. Ref: spec 4.2 "Upsample"
    h = F::interpolate(h, F::InterpolateFuncOptions()
                              .scale_factor(std::vector<double>{2.0, 2.0})
                              .mode(torch::kNearest));
    h = upsample_conv_(h);
  }
  return h;
}

// ---- Decoder ------------------------------------------------------------------------------------------------

ConvDecoderImpl::ConvDecoderImpl(const config::DecoderConfig& cfg) {
  const int64_t n = static_cast<int64_t>(cfg.ch_mult.size());
  if (n == 0 || cfg.ch <= 0 || cfg.num_res_blocks <= 0 || cfg.z_channels <= 0 || cfg.out_ch <= 0)
    throw ModelError("VQDecoder: ch, ch_mult, num_res_blocks, z_channels and out_ch must be positive/non-empty");
  const int64_t top = cfg.ch * cfg.ch_mult.back();

  // Registration order = upstream state-dict order: conv_in, mid, up.0 .. up.{n-1}, norm_out, conv_out.
  conv_in_ = register_module("conv_in", conv2d(cfg.z_channels, top, 3));
  auto mid = register_module("mid", std::make_shared<nn::Module>());
  mid_block_1_ = mid->register_module("block_1", DecoderResBlock(top, top));
  mid_attn_1_ = mid->register_module("attn_1", DecoderAttnBlock(top));
  mid_block_2_ = mid->register_module("block_2", DecoderResBlock(top, top));

  // Levels are built top-down (the width flows from the top), stored by index L (0 = full resolution).
  levels_.resize(static_cast<size_t>(n), DecoderLevel(nullptr));
  int64_t block_in = top;
  for (int64_t L = n - 1; L >= 0; --L) {
    const int64_t block_out = cfg.ch * cfg.ch_mult[static_cast<size_t>(L)];
    const int64_t res = cfg.resolution >> L;  // resolution of level L
    const bool attn = std::find(cfg.attn_resolutions.begin(), cfg.attn_resolutions.end(), res) !=
                      cfg.attn_resolutions.end();
    levels_[static_cast<size_t>(L)] = DecoderLevel(block_in, block_out, cfg.num_res_blocks + 1, attn, L != 0);
    block_in = block_out;
  }
  nn::ModuleList up;
  for (auto& level : levels_) up->push_back(level);
  register_module("up", up);

  norm_out_ = register_module("norm_out", group_norm(block_in));
  conv_out_ = register_module("conv_out", conv2d(block_in, cfg.out_ch, 3));
}

torch::Tensor ConvDecoderImpl::forward(const torch::Tensor& z) {
  // Ref: spec 4.2 step 3.
  torch::Tensor h = conv_in_(z);
  h = mid_block_2_(mid_attn_1_(mid_block_1_(h)));
  for (size_t L = levels_.size(); L-- > 0;) h = levels_[L](h);
  return conv_out_(F::silu(norm_out_(h)));
}

// ---- VectorQuantizer ----------------------------------------------------------------------------------------

VectorQuantizerImpl::VectorQuantizerImpl(int64_t n_embed, int64_t embed_dim) {
  if (n_embed <= 0 || embed_dim <= 0) throw ModelError("VQDecoder: n_embed and embed_dim must be positive");
  embedding_ = register_module("embedding", nn::Embedding(n_embed, embed_dim));
}

torch::Tensor VectorQuantizerImpl::indices(const torch::Tensor& z) {
  // Ref: spec 4.2 step 1: d = |z|^2 + |e|^2 - 2 z.e in float32 (that algebraic form), argmin = first minimum.
  const int64_t B = z.size(0), C = z.size(1), H = z.size(2), W = z.size(3);
  const torch::Tensor zf = z.to(torch::kFloat).permute({0, 2, 3, 1}).reshape({-1, C});  // [M, C]
  const torch::Tensor e = embedding_->weight.to(torch::kFloat);                         // [K, C]
  const torch::Tensor ee = e.pow(2).sum(1);                                             // [K]
  const torch::Tensor et = e.t();
  const int64_t M = zf.size(0);
  const int64_t rows = std::max<int64_t>(1, kMaxDistanceElements / std::max<int64_t>(1, e.size(0)));
  torch::Tensor idx = torch::empty({M}, zf.options().dtype(torch::kLong));
  for (int64_t r0 = 0; r0 < M; r0 += rows) {
    const int64_t r1 = std::min(M, r0 + rows);
    const torch::Tensor zc = zf.slice(0, r0, r1);
    const torch::Tensor d = (zc.pow(2).sum(1, /*keepdim=*/true) + ee) - 2 * torch::mm(zc, et);
    idx.slice(0, r0, r1).copy_(d.argmin(1));
  }
  return idx.view({B, H, W});
}

torch::Tensor VectorQuantizerImpl::forward(const torch::Tensor& z, torch::Tensor* indices_out) {
  const torch::Tensor idx = indices(z);
  if (indices_out) *indices_out = idx;
  // e_idx as [B, C, H, W]; straight-through form z + (e - z) as upstream (equal to e up to rounding).
  const torch::Tensor e = embedding_->weight.index_select(0, idx.reshape({-1}))
                              .view({idx.size(0), idx.size(1), idx.size(2), -1})
                              .permute({0, 3, 1, 2})
                              .to(z.scalar_type());
  return z + (e - z);
}

// ---- VQDecoder ----------------------------------------------------------------------------------------------

VQDecoderImpl::VQDecoderImpl(const config::DecoderConfig& cfg) : cfg_(cfg) {
  // Registration order = upstream state-dict order: decoder.*, quantize.*, post_quant_conv.*.
  decoder_ = register_module("decoder", ConvDecoder(cfg));
  quantize_ = register_module("quantize", VectorQuantizer(cfg.n_embed, cfg.embed_dim));
  post_quant_conv_ = register_module("post_quant_conv", conv2d(cfg.embed_dim, cfg.z_channels, 1));
}

void VQDecoderImpl::check_latent(const torch::Tensor& z, const char* op) const {
  if (!z.defined() || z.dim() != 4 || z.size(1) != cfg_.embed_dim)
    throw InputError(std::string("VQDecoder::") + op + ": latent has shape " +
                     (z.defined() ? detail::shape_str(z.sizes()) : std::string("(undefined)")) + ", expected [B, " +
                     std::to_string(cfg_.embed_dim) + ", h, w]");
}

torch::Tensor VQDecoderImpl::forward(const torch::Tensor& z) {
  check_latent(z, "forward");
  return decoder_(pointwise(post_quant_conv_, quantize_(z).to(compute_dtype_))).to(torch::kFloat);
}

void VQDecoderImpl::set_compute_dtype(torch::ScalarType dtype) {
  decoder_->to(dtype);
  post_quant_conv_->to(dtype);
  compute_dtype_ = dtype;
}

torch::Tensor VQDecoderImpl::forward_unquantized(const torch::Tensor& z) {
  check_latent(z, "forward_unquantized");
  return decoder_(pointwise(post_quant_conv_, z));
}

torch::Tensor VQDecoderImpl::quantize_indices(const torch::Tensor& z) {
  check_latent(z, "quantize_indices");
  return quantize_->indices(z);
}

torch::Tensor VQDecoderImpl::quantize(const torch::Tensor& z) {
  check_latent(z, "quantize");
  return quantize_(z);
}

}  // namespace adaptdiff::model
