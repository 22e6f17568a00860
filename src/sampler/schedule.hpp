#pragma once
// Diffusion noise schedule constants (DDPM, Ho et al. 2020), computed exactly as upstream IDiff-Face does.
// Ref: ../shared/docs/idiff-face-model.md section 6.1; upstream diffusion/ddpm.py
// (DenoisingDiffusionProbabilisticModel.__init__).
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace adaptdiff::sampler {

/// The eight per-timestep constants of the DDPM wrapper, float32 [T] on the CPU, plus DDIM's shifted
/// alpha_bar_prev. Indices are timesteps i = 0..T-1.
struct Schedule {
  int64_t T = 0;
  torch::Tensor betas;                     ///< beta_i = linspace(beta_1*1000/T, beta_T*1000/T, T)[i]
  torch::Tensor alphas;                    ///< 1 - beta_i
  torch::Tensor sigmas;                    ///< sqrt(beta_i)
  torch::Tensor sqrt_alphas_inv;           ///< 1 / sqrt(alpha_i)
  torch::Tensor alpha_bars;                ///< exp(cumsum(log(alpha))) in float32 (not cumprod)
  torch::Tensor sqrt_alpha_bars;           ///< sqrt(alpha_bar_i)
  torch::Tensor sqrt_one_minus_alpha_bars; ///< sqrt(1 - alpha_bar_i)
  torch::Tensor coef;                      ///< (1 - alpha_i) / sqrt(1 - alpha_bar_i)
  torch::Tensor alpha_bars_prev;           ///< DDIM: [1, alpha_bar_0, ..., alpha_bar_{T-2}]

  /// Linear beta schedule. Throws ConfigError unless 0 < beta_1 < beta_T and T >= 2.
  static Schedule linear(int64_t T, double beta_1, double beta_T);

  /// Scalar accessors (float32 values, as upstream indexes its float32 buffers).
  float alpha_bar(int64_t i) const { return alpha_bars_a_[i]; }
  float alpha_bar_prev(int64_t i) const { return alpha_bars_prev_a_[i]; }
  float sqrt_alpha_inv(int64_t i) const { return sqrt_alphas_inv_a_[i]; }
  float coef_at(int64_t i) const { return coef_a_[i]; }
  float sigma(int64_t i) const { return sigmas_a_[i]; }

  /// Names of the checkpoint buffers, in upstream's order, paired with the tensors above.
  std::vector<std::pair<std::string, torch::Tensor>> checkpoint_buffers() const;

 private:
  void cache_scalars();
  std::vector<float> alpha_bars_a_, alpha_bars_prev_a_, sqrt_alphas_inv_a_, coef_a_, sigmas_a_;
};

}  // namespace adaptdiff::sampler
