#pragma once
// DDPM and DDIM sampling loops over a noise-prediction callback; they know nothing of networks, MPI or files.
// Ref: Ho et al. 2020 (DDPM, Algorithm 2); Song et al. 2021 (DDIM, eq. 12); upstream index conventions
// from NegFaceDiff diffusion/ddpm.py, documented in ../shared/docs/idiff-face-model.md 6.3-6.4.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sampler/guidance.hpp"
#include "sampler/schedule.hpp"

namespace adaptdiff::sampler {

/// Which sampler runs and how ([sampler] of the run config).
struct SamplerSpec {
  enum class Kind { kDdpm, kDdim };
  Kind kind = Kind::kDdpm;
  int64_t steps = 1000;  ///< DDIM: upstream's `ddim_step` (stride T // steps); DDPM: must equal T
  double eta = 0.0;      ///< DDIM only: 0 deterministic, 1 DDPM-like noise
};

/// Parses "ddpm" | "ddim"; throws ConfigError naming the value and the known names.
SamplerSpec::Kind parse_sampler_kind(const std::string& name);
/// The config name of `kind` ("ddpm", "ddim").
const char* to_string(SamplerSpec::Kind kind);

/// Supplies the Gaussian noise z of the step at timestep i ([B,C,H,W] f32, on the CPU or x's device).
/// Called only at steps that add noise (DDPM: i > 1; DDIM: eta > 0 and i > 0), in execution order.
using NoiseFn = std::function<torch::Tensor(int64_t i)>;

/// Called after each step with the visited timestep and the latent after the update (lent).
using StepObserver = std::function<void(int64_t i, const torch::Tensor& x)>;

/// One DDPM update from timestep i:  x <- sqrt_alphas_inv[i]*(x - coef[i]*eps) + sigma[i]*z.
/// z may be undefined (no noise; upstream adds none for i <= 1). Shapes [B,C,H,W] f32.
torch::Tensor ddpm_step(const Schedule& s, const torch::Tensor& x, const torch::Tensor& eps, int64_t i,
                        const torch::Tensor& z);

/// Visited DDIM timesteps for upstream's `ddim_step` setting: skip = T // ddim_step,
/// range(0, T, skip) reversed (e.g. T=1000, 20 -> 950, 900, ..., 0). Throws ConfigError unless
/// 1 <= ddim_step <= T.
std::vector<int64_t> ddim_timesteps(int64_t T, int64_t ddim_step);

/// One DDIM update from timestep i with stride skip (upstream's shifted alpha_bar_prev indexing):
///   a = alpha_bar[i], a_prev = alpha_bar_prev[i-skip] (1 if i-skip < 0),
///   x0 = (x - sqrt(1-a)*eps)/sqrt(a), eps' = (x - sqrt(a)*x0)/sqrt(1-a),
///   sigma = eta*sqrt((1-a_prev)/(1-a)*(1-a/a_prev)),
///   x <- sqrt(a_prev)*x0 + sqrt(1-a_prev-sigma^2)*eps' (+ sigma*z when eta > 0).
torch::Tensor ddim_step(const Schedule& s, const torch::Tensor& x, const torch::Tensor& eps, int64_t i,
                        int64_t skip, double eta, const torch::Tensor& z);

/// DDIM stride for upstream's `ddim_step`: T // ddim_step (ConfigError unless 1 <= ddim_step <= T).
int64_t ddim_stride(int64_t T, int64_t ddim_step);

/// The timesteps `spec` visits for a model of T steps, in execution order: DDPM every i = T-1..0 (ConfigError
/// with a hint unless spec.steps == T), DDIM ddim_timesteps(T, spec.steps).
std::vector<int64_t> timesteps(const SamplerSpec& spec, int64_t T);

/// The whole trajectory of `spec` from x_T ([B,C,H,W] f32) over timesteps(spec, s.T); returns x_0. `noise` is
/// called only at steps that add noise (DDPM: i > 1; DDIM: eta > 0 and i > 0); `observer` after each step.
torch::Tensor sample(const SamplerSpec& spec, const Schedule& s, const EpsFn& eps_fn, torch::Tensor x_T,
                     const NoiseFn& noise, const StepObserver& observer = nullptr);

/// Full DDPM trajectory from x_T ([B,C,H,W] f32) over i = T-1..0; returns x_0.
torch::Tensor sample_ddpm(const Schedule& s, const EpsFn& eps_fn, torch::Tensor x_T, const NoiseFn& noise,
                          const StepObserver& observer = nullptr);

/// Full DDIM trajectory over ddim_timesteps(T, ddim_step); returns x_0. `noise` is used only if eta > 0.
torch::Tensor sample_ddim(const Schedule& s, const EpsFn& eps_fn, torch::Tensor x_T, int64_t ddim_step,
                          double eta, const NoiseFn& noise, const StepObserver& observer = nullptr);

/// Number of noise draws per sample after x_T: DDPM T-2 (i = T-1..2), DDIM (eta > 0) one per visited
/// step with i > 0, else 0.
int64_t noise_draws_per_sample(const SamplerSpec& spec, int64_t T);

}  // namespace adaptdiff::sampler
