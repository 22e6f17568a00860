#pragma once
// The matrix products of the networks on the CPU, in forms whose values do not depend on the number of
// threads: pointwise (kernel-size 1) convolutions and per-token linear layers on channel-major activations, and
// the attention of one batch row.
//
// pointwise(): out[b, o, p] = sum_i W[o, i] x[b, i, p] + bias[o], the math of a 1x1 Conv1d/Conv2d or of a
// Linear applied to every token. On the CPU it runs as oneDNN's 1x1 convolution (at::mkldnn_convolution), called
// directly: LibTorch's conv2d switches between oneDNN and a BLAS path by thread count and batch size (so its
// rounding changed with the thread count), and BLAS may run a generic kernel where its build does not know the
// processor, while oneDNN picks its kernels by instruction set (ONEDNN_MAX_CPU_ISA caps it). oneDNN's 1x1
// forward keeps each output's sum inside one thread: the same bits for any thread count and for a row alone or
// in a batch (checked by the model tests). Builds without oneDNN fall back to fixed tasks of (kPointwiseRows
// output channels) x (one batch row), each one single-threaded GEMM, spread over the intra-op threads.
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace adaptdiff::model {

/// Output channels per task of the BLAS fallback of pointwise().
inline constexpr int64_t kPointwiseRows = 64;

/// True when the CPU paths below run `dtype` through oneDNN: float32 whenever LibTorch has oneDNN; bfloat16
/// also needs AVX-512 (BW, VL, DQ: the test LibTorch itself makes before its oneDNN bfloat16 kernels) and no
/// ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA cap below AVX-512.
inline bool onednn_runs(torch::ScalarType dtype) {
  if (!at::hasMKLDNN()) return false;
  if (dtype == torch::kFloat) return true;
#if defined(__x86_64__) && defined(__GNUC__)
  if (dtype == torch::kBFloat16) {
    for (const char* var : {"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"}) {
      const char* cap = std::getenv(var);
      if (cap != nullptr && std::string(cap).rfind("AVX512", 0) != 0 && std::string(cap).rfind("AMX", 0) != 0 &&
          std::string(cap) != "ALL" && std::string(cap) != "DEFAULT") {
        return false;
      }
    }
    return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq");
  }
#endif
  return false;
}

/// x [B, Cin, *spatial] f32 (any layout); weight [Cout, Cin] or [Cout, Cin, 1(, 1)] (Conv or Linear weights);
/// bias [Cout] or undefined. Returns [B, Cout, *spatial] contiguous on x's device. On CUDA it is one batched
/// matrix product (no bitwise promise there).
inline torch::Tensor pointwise(const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& x) {
  const int64_t B = x.size(0), cin = x.size(1), cout = weight.size(0);
  std::vector<int64_t> shape = x.sizes().vec();
  shape[1] = cout;
  if (!x.device().is_cpu()) {
    torch::Tensor y = torch::matmul(weight.reshape({cout, cin}), x.reshape({B, cin, -1}));
    if (bias.defined()) y = y + bias.view({1, cout, 1});
    return y.view(shape);
  }
  const torch::Tensor xs = x.reshape({B, cin, -1}).contiguous();  // [B, Cin, P]
  const int64_t P = xs.size(2);
  if (onednn_runs(x.scalar_type())) {
    const torch::Tensor y = at::mkldnn_convolution(xs.view({B, cin, P, 1}), weight.reshape({cout, cin, 1, 1}),
                                                   bias, {0, 0}, {1, 1}, {1, 1}, 1);
    return y.reshape(shape);
  }
  const torch::Tensor w = weight.reshape({cout, cin});
  torch::Tensor y = torch::empty({B, cout, P}, xs.options());
  const int64_t blocks = (cout + kPointwiseRows - 1) / kPointwiseRows;
  at::parallel_for(0, blocks * B, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t o0 = (task / B) * kPointwiseRows, b = task % B;
      const int64_t m = std::min(kPointwiseRows, cout - o0);
      torch::Tensor out = y[b].narrow(0, o0, m);
      if (bias.defined()) {
        at::addmm_out(out, bias.narrow(0, o0, m).unsqueeze(1), w.narrow(0, o0, m), xs[b]);
      } else {
        at::mm_out(out, w.narrow(0, o0, m), xs[b]);
      }
    }
  });
  return y.view(shape);
}

/// Applies a kernel-1 Conv1d/Conv2d module, or a Linear module to every token of channel-major x, through
/// pointwise().
template <typename Holder>
torch::Tensor pointwise(const Holder& layer, const torch::Tensor& x) {
  return pointwise(layer->weight, layer->bias, x);
}

/// Products of G independent matrix pairs, W[g] · X[g]: W [G, M, K], X [G, K, N] f32 -> [G, M, N] contiguous.
/// On the CPU one oneDNN grouped 1x1 convolution (X as the input, W as the weights), else torch::bmm.
inline torch::Tensor grouped_product(const torch::Tensor& W, const torch::Tensor& X) {
  const int64_t G = W.size(0), M = W.size(1), K = W.size(2), N = X.size(2);
  if (X.device().is_cpu() && onednn_runs(X.scalar_type())) {
    return at::mkldnn_convolution(X.contiguous().view({1, G * K, N, 1}), W.contiguous().view({G * M, K, 1, 1}), {},
                                  {0, 0}, {1, 1}, {1, 1}, G)
        .view({G, M, N});
  }
  return torch::bmm(W, X);
}

/// Scaled dot-product attention per batch row, heads as consecutive rows:
///   o[r] = v[r] · softmax_k(score_scale · q[r]ᵀ k[r])ᵀ, r = b·H + h.
/// q [B·H, hc, Lq], k and v [B·H, hc, Lk] f32; the softmax is taken in float32. score_scale = 1 skips the
/// multiplication (callers that scale q instead). Returns [B·H, hc, Lq]. On the CPU one task per batch row b
/// (its H heads, products by grouped_product, single-threaded inside the task), so values do not depend on the
/// thread count or on the other rows of the batch.
inline torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t B,
                               double score_scale) {
  const auto one = [score_scale](const torch::Tensor& qb, const torch::Tensor& kb, const torch::Tensor& vb) {
    torch::Tensor scores = grouped_product(qb.transpose(1, 2), kb);  // [H, Lq, Lk]
    if (score_scale != 1.0) scores = scores * score_scale;
    const torch::Tensor w = scores.softmax(-1, torch::kFloat).to(vb.scalar_type());
    return grouped_product(vb, w.transpose(1, 2));  // [H, hc, Lq]
  };
  if (!q.device().is_cpu()) return one(q, k, v);
  const int64_t H = q.size(0) / B;
  torch::Tensor o = torch::empty({q.size(0), v.size(1), q.size(2)}, v.options());
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      o.narrow(0, b * H, H).copy_(one(q.narrow(0, b * H, H), k.narrow(0, b * H, H), v.narrow(0, b * H, H)));
    }
  });
  return o;
}

/// The weights of a ConvTranspose2d(kernel 4, stride 2, padding 1) rewritten for a 3x3 convolution (padding 1)
/// whose 4·Cout output channels, read by pixel_shuffle(2), give the same output:
///   out[c, 2m + a, 2n + b] = sum_{dy,dx} W3[4c + 2a + b, :, dy, dx] · in[:, m + dy − 1, n + dx − 1].
/// From out[y] = sum_i in[i] W[y + 1 − 2i] (stride 2, padding 1): even rows (a = 0) take taps dy = 0, 1 from
/// kernel rows 3, 1; odd rows (a = 1) take dy = 1, 2 from kernel rows 2, 0; the other taps are zero. Same for
/// columns. 2.25x the multiply-adds of the transposed convolution, but one oneDNN convolution instead of
/// LibTorch's slow transposed path on the CPU.
/// weight [Cin, Cout, 4, 4], bias [Cout] or undefined -> {W3 [4·Cout, Cin, 3, 3], b3 [4·Cout] or undefined}.
inline std::pair<torch::Tensor, torch::Tensor> transposed_4x4s2_as_3x3(const torch::Tensor& weight,
                                                                      const torch::Tensor& bias) {
  const int64_t cin = weight.size(0), cout = weight.size(1);
  const int64_t tap[2][3] = {{3, 1, -1}, {-1, 2, 0}};  // kernel row (column) of tap d for phase a (b); -1: zero
  torch::Tensor w3 = torch::zeros({cout, 2, 2, cin, 3, 3}, weight.options());
  const torch::Tensor wt = weight.permute({1, 0, 2, 3});  // [Cout, Cin, 4, 4]
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b)
      for (int dy = 0; dy < 3; ++dy)
        for (int dx = 0; dx < 3; ++dx) {
          if (tap[a][dy] < 0 || tap[b][dx] < 0) continue;
          w3.select(1, a).select(1, b).select(2, dy).select(2, dx).copy_(wt.select(2, tap[a][dy]).select(2, tap[b][dx]));
        }
  torch::Tensor b3 = bias.defined() ? bias.repeat_interleave(4) : torch::Tensor();
  return {w3.reshape({4 * cout, cin, 3, 3}), b3};
}

}  // namespace adaptdiff::model
