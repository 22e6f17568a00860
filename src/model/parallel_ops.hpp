#pragma once
// Pointwise (kernel-size 1) convolution evaluated as a batched matrix product.
//
// Same math as torch's Conv1d/Conv2d with a 1x1 kernel: out[b, o, p] = sum_i W[o, i] x[b, i, p] + bias[o].
// LibTorch's CPU 1x1 convolution rounds differently depending on the number of intra-op threads; one GEMM
// per batch row does not, so a sample's result does not depend on how many threads a rank runs (needed for
// byte-identical output across rank counts). It is also at least as fast.
#include <torch/torch.h>

namespace adaptdiff::model {

/// x [B, Cin, *spatial] f32; weight [Cout, Cin, 1] or [Cout, Cin, 1, 1]; bias [Cout] or undefined.
/// Returns [B, Cout, *spatial] on x's device.
inline torch::Tensor pointwise(const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& x) {
  const int64_t B = x.size(0), cin = x.size(1), cout = weight.size(0);
  const torch::Tensor w = weight.reshape({cout, cin});
  torch::Tensor y = torch::matmul(w, x.reshape({B, cin, -1}));  // [B, Cout, P]: one GEMM per batch row
  if (bias.defined()) y = y + bias.view({1, cout, 1});
  std::vector<int64_t> shape = x.sizes().vec();
  shape[1] = cout;
  return y.view(shape);
}

/// Applies a kernel-1 Conv1d/Conv2d module through pointwise().
template <typename ConvHolder>
torch::Tensor pointwise(const ConvHolder& conv, const torch::Tensor& x) {
  return pointwise(conv->weight, conv->bias, x);
}

}  // namespace adaptdiff::model
