#include "model/unet.hpp"
#include "model/parallel_ops.hpp"

#include <cmath>
#include <string>
#include <tuple>

#include "core/error.hpp"
#include "model/tensor_text.hpp"

namespace adaptdiff::model {
namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

constexpr double kUNetGroupNormEps = 1e-5;  // Ref: spec 3.1-3.3, checklist item 8

nn::GroupNorm group_norm(int64_t channels) {
  if (channels % 32 != 0)
    throw ModelError("ConditionalUNet: GroupNorm(32) over " + std::to_string(channels) +
                     " channels (width must be divisible by 32)");
  return nn::GroupNorm(nn::GroupNormOptions(32, channels).eps(kUNetGroupNormEps));
}

nn::Conv2d conv2d(int64_t in, int64_t out, int64_t k, int64_t stride = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2));
}

nn::Conv1d conv1x1_1d(int64_t in, int64_t out) { return nn::Conv1d(nn::Conv1dOptions(in, out, 1)); }

/// Heads of an attention block at width C: `attention_heads` if > 0, else C / hc. Ref: spec 3.3.
int64_t heads_for(const config::UNetConfig& cfg, int64_t channels) {
  return cfg.attention_heads > 0 ? cfg.attention_heads : channels / cfg.attention_head_channels;
}

}  // namespace

// ---- NestedGroupNorm ----------------------------------------------------------------------------------------

NestedGroupNormImpl::NestedGroupNormImpl(int64_t channels) { norm_ = register_module("norm", group_norm(channels)); }

torch::Tensor NestedGroupNormImpl::forward(const torch::Tensor& x) { return norm_(x); }

// ---- ResBlock -----------------------------------------------------------------------------------------------

ResBlockImpl::ResBlockImpl(int64_t in_channels, int64_t out_channels, int64_t time_channels) {
  // Registration order = upstream state-dict order.
  norm1_ = register_module("norm1", group_norm(in_channels));
  conv1_ = register_module("conv1", conv2d(in_channels, out_channels, 3));
  time_emb_ = register_module("time_emb", nn::Sequential(nn::SiLU(), nn::Linear(time_channels, out_channels)));
  scale_emb_ = register_module("scale_emb", nn::Linear(out_channels, out_channels));
  shift_emb_ = register_module("shift_emb", nn::Linear(out_channels, out_channels));
  norm2_ = register_module("norm2", NestedGroupNorm(out_channels));
  conv2_ = register_module("conv2", conv2d(out_channels, out_channels, 3));
  if (in_channels != out_channels) shortcut_ = register_module("shortcut", conv2d(in_channels, out_channels, 1));
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  // Ref: spec 3.2 (upstream ResidualBlock.forward, CA flavour: no context here).
  torch::Tensor h = conv1_(F::silu(norm1_(x)));
  const torch::Tensor e = time_emb_->forward(temb);  // SiLU -> Linear(Tc, Co)
  const torch::Tensor scale = scale_emb_(e).unsqueeze(-1).unsqueeze(-1);
  const torch::Tensor shift = shift_emb_(e).unsqueeze(-1).unsqueeze(-1);
  h = (scale + 1) * norm2_(h) + shift;
  h = conv2_(F::silu(h));
  return h + (shortcut_ ? pointwise(shortcut_, x) : x);
}

// ---- MultiHeadAttention -------------------------------------------------------------------------------------

MultiHeadAttentionImpl::MultiHeadAttentionImpl(int64_t inner_channels, int64_t kv_channels, int64_t heads,
                                               int64_t head_channels)
    : heads_(heads), head_channels_(head_channels) {
  to_q_ = register_module("to_q", conv1x1_1d(inner_channels, inner_channels));
  to_k_ = register_module("to_k", conv1x1_1d(kv_channels, inner_channels));
  to_v_ = register_module("to_v", conv1x1_1d(kv_channels, inner_channels));
  proj_out_ = register_module("proj_out", conv1x1_1d(inner_channels, inner_channels));
}

torch::Tensor MultiHeadAttentionImpl::forward(const torch::Tensor& q_in, const torch::Tensor& kv_in) {
  const auto [k, v] = keys_values(kv_in);
  return attend(q_in, k, v);
}

std::pair<torch::Tensor, torch::Tensor> MultiHeadAttentionImpl::keys_values(const torch::Tensor& kv_in) {
  // Ref: spec 3.3 "Multi-head attention". Heads are contiguous channel blocks, row = b * nh + head.
  const int64_t BH = kv_in.size(0) * heads_, Lk = kv_in.size(2);
  return {pointwise(to_k_, kv_in).reshape({BH, head_channels_, Lk}),
          pointwise(to_v_, kv_in).reshape({BH, head_channels_, Lk})};
}

torch::Tensor MultiHeadAttentionImpl::attend(const torch::Tensor& q_in, const torch::Tensor& k,
                                             const torch::Tensor& v) {
  const int64_t B = q_in.size(0), Lq = q_in.size(2);
  // Overall scale 1/sqrt(hc) (upstream multiplies q and k by hc^-1/4 each; same value up to rounding).
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_channels_));
  const torch::Tensor q = (pointwise(to_q_, q_in) * scale).reshape({B * heads_, head_channels_, Lq});
  const torch::Tensor o = attention(q, k, v, B, 1.0);  // [BH, hc, Lq]
  return pointwise(proj_out_, o.view({B, heads_ * head_channels_, Lq}));
}

// ---- CrossAttentionBlock ------------------------------------------------------------------------------------

CrossAttentionBlockImpl::CrossAttentionBlockImpl(int64_t channels, int64_t heads, int64_t head_channels,
                                                 int64_t context_channels)
    : inner_(heads * head_channels), context_channels_(context_channels), context_tokens_(head_channels) {
  if (heads <= 0) throw ModelError("ConditionalUNet: attention block at width " + std::to_string(channels) +
                                   " has " + std::to_string(heads) + " heads");
  x_proj_in_ = register_module("x_proj_in", conv2d(channels, inner_, 1));
  x_proj_out_ = register_module("x_proj_out", conv2d(inner_, channels, 1));
  self_attention_ = register_module("self_attention", MultiHeadAttention(inner_, inner_, heads, head_channels));
  c_proj_in_ = register_module("c_proj_in", nn::Linear(context_channels, context_channels * context_tokens_));
  cross_attention_ =
      register_module("cross_attention", MultiHeadAttention(inner_, context_channels, heads, head_channels));
  x_norm_ = register_module("x_norm", group_norm(inner_));
  c_norm_ = register_module("c_norm", group_norm(context_channels));
  ff_ = register_module("ff", nn::Sequential(nn::Linear(inner_, 4 * inner_), nn::GELU(),
                                             nn::Linear(4 * inner_, inner_)));
  ff_in_ = ff_[0]->as<nn::Linear>();
  ff_out_ = ff_[2]->as<nn::Linear>();
}

torch::Tensor CrossAttentionBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& c) {
  // Ref: spec 3.3 steps 1-6.
  const int64_t B = x.size(0), H = x.size(2), W = x.size(3);
  torch::Tensor h = pointwise(x_proj_in_, x).reshape({B, inner_, H * W});                     // [B, I, N]
  const bool same_context = cached_c_.defined() && c.device().is_cpu() && c.sizes() == cached_c_.sizes() &&
                            c.scalar_type() == cached_c_.scalar_type() && torch::equal(c, cached_c_);
  if (!same_context) {
    // Context -> d tokens of width D, split channel-major: element (ch, tok) at flat index ch * d + tok.
    const torch::Tensor u = c_norm_(c_proj_in_(c).view({B, context_channels_, context_tokens_}));  // [B, D, d]
    std::tie(cached_k_, cached_v_) = cross_attention_->keys_values(u);
    cached_c_ = c;
  }
  torch::Tensor n = x_norm_(h);
  h = self_attention_(n, n) + h;                                                   // self-attention
  h = cross_attention_->attend(x_norm_(h), cached_k_, cached_v_) + h;              // cross-attention
  // Feed-forward per token, on channel-major tokens: Linear(I, 4I), GELU, Linear(4I, I) as pointwise products.
  h = pointwise(ff_out_, F::gelu(pointwise(ff_in_, x_norm_(h)))) + h;
  return pointwise(x_proj_out_, h.reshape({B, inner_, H, W})) + x;
}

// ---- UNetStage ----------------------------------------------------------------------------------------------

UNetStageImpl::UNetStageImpl(int64_t in_channels, int64_t out_channels, int64_t time_channels, int64_t heads,
                             int64_t head_channels, int64_t context_channels) {
  res_ = register_module("res", ResBlock(in_channels, out_channels, time_channels));
  if (heads > 0)
    attn_ = register_module("attn", CrossAttentionBlock(out_channels, heads, head_channels, context_channels));
}

UNetStageImpl::UNetStageImpl(int64_t channels, bool up) {
  // Ref: spec 3.4 (Downsample: 3x3 stride-2 conv; Upsample: 4x4 stride-2 transposed conv).
  if (up) {
    up_ = register_module(
        "conv", nn::ConvTranspose2d(nn::ConvTranspose2dOptions(channels, channels, 4).stride(2).padding(1)));
  } else {
    down_ = register_module("conv", conv2d(channels, channels, 3, 2));
  }
}

torch::Tensor UNetStageImpl::forward(const torch::Tensor& x, const torch::Tensor& temb, const torch::Tensor& c) {
  if (down_) return down_(x);
  if (up_ && (!x.device().is_cpu() || !onednn_runs(x.scalar_type()))) return up_(x);
  if (up_) {
    const int64_t version = static_cast<int64_t>(up_->weight._version());
    if (version != up_version_ || !up_w3_.defined()) {
      std::tie(up_w3_, up_b3_) = transposed_4x4s2_as_3x3(up_->weight.detach(), up_->bias.detach());
      up_version_ = version;
    }
    return F::pixel_shuffle(F::conv2d(x, up_w3_, F::Conv2dFuncOptions().bias(up_b3_).padding(1)), 2);
  }
  torch::Tensor h = res_(x, temb);
  return attn_ ? attn_(h, c) : h;
}

// ---- ConditionalUNet ----------------------------------------------------------------------------------------

ConditionalUNetImpl::ConditionalUNetImpl(const config::UNetConfig& cfg) : cfg_(cfg) {
  if (cfg.condition_type != "CA")
    throw ModelError("ConditionalUNet: condition_type '" + cfg.condition_type + "' is not implemented (only CA)");
  if (cfg.channel_multipliers.empty() || cfg.is_attention.size() != cfg.channel_multipliers.size())
    throw ModelError("ConditionalUNet: channel_multipliers and is_attention must be non-empty and equally long");
  if (cfg.initial_channels <= 0 || cfg.initial_channels % 2 != 0)
    throw ModelError("ConditionalUNet: initial_channels must be positive and even (sinusoid halves)");
  if (cfg.attention_head_channels <= 0 || cfg.n_blocks_per_resolution <= 0 || cfg.context_channels <= 0 ||
      cfg.context_input_channels <= 0 || cfg.input_channels <= 0)
    throw ModelError("ConditionalUNet: channel counts and n_blocks_per_resolution must be positive");

  const int64_t c0 = cfg.initial_channels;
  const int64_t tc = 4 * c0;  // time-embedding width. Ref: spec 2 "Derived"
  const int64_t hc = cfg.attention_head_channels;
  const int64_t d_ctx = cfg.context_channels;
  const int64_t nb = cfg.n_blocks_per_resolution;
  const size_t n = cfg.levels();

  // Sinusoid frequencies f_k = exp((-ln(10000) * k) / half), float32. Ref: spec 3.5 step 1.
  const int64_t half = c0 / 2;
  freqs_ = torch::exp(torch::arange(half, torch::kFloat) * static_cast<float>(-std::log(10000.0)) /
                      static_cast<float>(half));

  // Registration order = upstream state-dict order (image_proj, time_emb, context_emb, down, middle, up, ...).
  image_proj_ = register_module("image_proj", conv2d(cfg.input_channels, c0, 3));
  auto time_emb = register_module("time_emb", std::make_shared<nn::Module>());
  lin1_ = time_emb->register_module("lin1", nn::Linear(c0, tc));
  lin2_ = time_emb->register_module("lin2", nn::Linear(tc, tc));
  context_emb_ = register_module("context_emb", nn::Linear(cfg.context_input_channels, d_ctx));

  // Down path. Ref: spec 3.4.
  nn::ModuleList down;
  for (size_t i = 0; i < n; ++i) {
    const int64_t c_prev = i == 0 ? c0 : cfg.level_channels(i - 1);
    const int64_t c_i = cfg.level_channels(i);
    const int64_t heads = cfg.is_attention[i] ? heads_for(cfg, c_i) : 0;
    for (int64_t b = 0; b < nb; ++b) {
      down_.push_back(UNetStage(b == 0 ? c_prev : c_i, c_i, tc, heads, hc, d_ctx));
      down->push_back(down_.back());
    }
    if (i + 1 < n) {
      down_.push_back(UNetStage(c_i, /*up=*/false));
      down->push_back(down_.back());
    }
  }
  register_module("down", down);

  // Middle: the attention block always exists. Ref: spec 3.1.
  const int64_t cn = cfg.level_channels(n - 1);
  auto middle = register_module("middle", std::make_shared<nn::Module>());
  mid_res1_ = middle->register_module("res1", ResBlock(cn, cn, tc));
  mid_attn_ = middle->register_module("attn", CrossAttentionBlock(cn, heads_for(cfg, cn), hc, d_ctx));
  mid_res2_ = middle->register_module("res2", ResBlock(cn, cn, tc));

  // Up path, top level first: nb blocks 2C_i -> C_i, one block C_i + C_{i-1} -> C_{i-1}, then Upsample.
  nn::ModuleList up;
  for (size_t ii = n; ii-- > 0;) {
    const int64_t c_i = cfg.level_channels(ii);
    const int64_t c_prev = ii == 0 ? c0 : cfg.level_channels(ii - 1);
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t heads = cfg.is_attention[ii] ? heads_for(cfg, c_i) : 0;
      up_.push_back(UNetStage(2 * c_i, c_i, tc, heads, hc, d_ctx));
      up->push_back(up_.back());
    }
    const int64_t heads = cfg.is_attention[ii] ? heads_for(cfg, c_prev) : 0;
    up_.push_back(UNetStage(c_i + c_prev, c_prev, tc, heads, hc, d_ctx));
    up->push_back(up_.back());
    if (ii > 0) {
      up_.push_back(UNetStage(c_prev, /*up=*/true));
      up->push_back(up_.back());
    }
  }
  register_module("up", up);

  norm_ = register_module("norm", group_norm(c0));
  final_ = register_module("final", conv2d(c0, cfg.input_channels, 3));
}

torch::Tensor ConditionalUNetImpl::time_features(const torch::Tensor& t) {
  if (freqs_.device() != t.device()) freqs_ = freqs_.to(t.device());
  const torch::Tensor a = t.to(torch::kFloat).unsqueeze(1) * freqs_.unsqueeze(0);  // [B, C0/2]
  return torch::cat({torch::cos(a), torch::sin(a)}, 1);                           // cosine half first
}

torch::Tensor ConditionalUNetImpl::forward(const torch::Tensor& x_t, const torch::Tensor& t,
                                           const torch::Tensor& context) {
  // Ref: spec 3.5.
  const int64_t div = int64_t{1} << (cfg_.levels() - 1);
  if (x_t.dim() != 4 || x_t.size(1) != cfg_.input_channels || x_t.size(2) % div != 0 || x_t.size(3) % div != 0)
    throw InputError("ConditionalUNet::forward: x_t has shape " + detail::shape_str(x_t.sizes()) +
                     ", expected [B, " + std::to_string(cfg_.input_channels) + ", H, W] with H, W divisible by " +
                     std::to_string(div));
  const int64_t B = x_t.size(0);
  if (t.dim() != 1 || t.size(0) != B)
    throw InputError("ConditionalUNet::forward: t has shape " + detail::shape_str(t.sizes()) +
                     ", expected [" + std::to_string(B) + "]");
  if (context.defined() && (context.dim() != 2 || context.size(0) != B ||
                            context.size(1) != cfg_.context_input_channels))
    throw InputError("ConditionalUNet::forward: context has shape " + detail::shape_str(context.sizes()) +
                     ", expected [" + std::to_string(B) + ", " + std::to_string(cfg_.context_input_channels) + "]");

  // 1. time embedding (float32 features, then the MLP in the model's dtype)
  const torch::Tensor temb = lin2_(F::silu(lin1_(time_features(t).to(x_t.scalar_type()))));
  // 2. stem
  torch::Tensor x = image_proj_(x_t);
  // 3. context: None -> zeros in the projected width D (not context_emb of a zero vector)
  const torch::Tensor c = context.defined() ? context_emb_(context.to(x_t.scalar_type()))
                                            : torch::zeros({B, cfg_.context_channels}, x.options());
  // 4. down, pushing every output (Downsample outputs too)
  std::vector<torch::Tensor> hs;
  hs.reserve(down_.size() + 1);
  hs.push_back(x);
  for (auto& stage : down_) {
    x = stage(x, temb, c);
    hs.push_back(x);
  }
  // 5. middle
  x = mid_res2_(mid_attn_(mid_res1_(x, temb), c), temb);
  // 6. up: [current, skip] along channels, then ResBlock (+ Attn); Upsample entries only transform x
  for (auto& stage : up_) {
    if (!stage->is_resample()) {
      x = torch::cat({x, hs.back()}, 1);
      hs.pop_back();
    }
    x = stage(x, temb, c);
  }
  // 7. head
  return final_(F::silu(norm_(x)));
}

}  // namespace adaptdiff::model
