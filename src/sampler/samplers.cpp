#include "sampler/samplers.hpp"

#include <cmath>

#include "core/error.hpp"

namespace adaptdiff::sampler {

torch::Tensor ddpm_step(const Schedule& s, const torch::Tensor& x, const torch::Tensor& eps, int64_t i,
                        const torch::Tensor& z) {
  // Ref: Ho et al. 2020 Alg. 2 line 4, with upstream's precomputed float32 constants.
  torch::Tensor out = s.sqrt_alpha_inv(i) * (x - s.coef_at(i) * eps);
  if (z.defined()) out = out + s.sigma(i) * z.to(x.device());
  return out;
}

SamplerSpec::Kind parse_sampler_kind(const std::string& name) {
  if (name == "ddpm") return SamplerSpec::Kind::kDdpm;
  if (name == "ddim") return SamplerSpec::Kind::kDdim;
  throw ConfigError("sampler: unknown kind '" + name + "' (known: ddpm, ddim)");
}

const char* to_string(SamplerSpec::Kind kind) { return kind == SamplerSpec::Kind::kDdim ? "ddim" : "ddpm"; }

int64_t ddim_stride(int64_t T, int64_t ddim_step) {
  if (ddim_step < 1 || ddim_step > T) {
    throw ConfigError("sampler: DDIM steps must be in [1, T=" + std::to_string(T) + "], got " +
                      std::to_string(ddim_step));
  }
  return T / ddim_step;
}

std::vector<int64_t> ddim_timesteps(int64_t T, int64_t ddim_step) {
  const int64_t skip = ddim_stride(T, ddim_step);
  std::vector<int64_t> steps;
  for (int64_t i = 0; i < T; i += skip) steps.push_back(i);
  return {steps.rbegin(), steps.rend()};
}

std::vector<int64_t> timesteps(const SamplerSpec& spec, int64_t T) {
  if (spec.kind == SamplerSpec::Kind::kDdim) return ddim_timesteps(T, spec.steps);
  if (spec.steps != T) {
    throw ConfigError("config: sampler.steps = " + std::to_string(spec.steps) +
                      " but DDPM visits every one of the model's T = " + std::to_string(T) +
                      " steps\n---> HINT: set sampler.steps = " + std::to_string(T) +
                      " or use sampler.kind = \"ddim\"");
  }
  std::vector<int64_t> steps;
  for (int64_t i = T - 1; i >= 0; --i) steps.push_back(i);
  return steps;
}

torch::Tensor ddim_step(const Schedule& s, const torch::Tensor& x, const torch::Tensor& eps, int64_t i,
                        int64_t skip, double eta, const torch::Tensor& z) {
  // float32 scalar arithmetic, as upstream's 0-dim float32 tensors.
  const float a = s.alpha_bar(i);
  const float a_prev = (i - skip >= 0) ? s.alpha_bar_prev(i - skip) : 1.0f;
  const float sqrt_one_minus_a = std::sqrt(1.0f - a);
  const float sqrt_a = std::sqrt(a);
  const torch::Tensor x0 = (x - sqrt_one_minus_a * eps) / sqrt_a;
  const torch::Tensor eps_re = (x - sqrt_a * x0) / sqrt_one_minus_a;  // re-derived eps, as upstream
  const float sigma =
      static_cast<float>(eta) * std::sqrt((1.0f - a_prev) / (1.0f - a) * (1.0f - a / a_prev));
  torch::Tensor out = std::sqrt(a_prev) * x0 + std::sqrt(1.0f - a_prev - sigma * sigma) * eps_re;
  if (eta > 0.0 && z.defined()) out = out + sigma * z.to(x.device());
  return out;
}

torch::Tensor sample_ddpm(const Schedule& s, const EpsFn& eps_fn, torch::Tensor x_T, const NoiseFn& noise,
                          const StepObserver& observer) {
  return sample(SamplerSpec{SamplerSpec::Kind::kDdpm, s.T, 0.0}, s, eps_fn, std::move(x_T), noise, observer);
}

torch::Tensor sample_ddim(const Schedule& s, const EpsFn& eps_fn, torch::Tensor x_T, int64_t ddim_step_count,
                          double eta, const NoiseFn& noise, const StepObserver& observer) {
  return sample(SamplerSpec{SamplerSpec::Kind::kDdim, ddim_step_count, eta}, s, eps_fn, std::move(x_T), noise,
                observer);
}

torch::Tensor sample(const SamplerSpec& spec, const Schedule& s, const EpsFn& eps_fn, torch::Tensor x_T,
                     const NoiseFn& noise, const StepObserver& observer) {
  const bool ddim = spec.kind == SamplerSpec::Kind::kDdim;
  const int64_t skip = ddim ? ddim_stride(s.T, spec.steps) : 1;
  torch::Tensor x = std::move(x_T);
  for (int64_t i : timesteps(spec, s.T)) {
    if (ddim) {
      const torch::Tensor z = (spec.eta > 0.0 && i > 0) ? noise(i) : torch::Tensor();
      x = ddim_step(s, x, eps_fn(x, i), i, skip, spec.eta, z);
    } else {
      // Upstream draws no noise for i <= 1.
      const torch::Tensor z = (i > 1) ? noise(i) : torch::Tensor();
      x = ddpm_step(s, x, eps_fn(x, i), i, z);
    }
    if (observer) observer(i, x);
  }
  return x;
}

int64_t noise_draws_per_sample(const SamplerSpec& spec, int64_t T) {
  if (spec.kind == SamplerSpec::Kind::kDdpm) return T - 2;
  if (spec.eta <= 0.0) return 0;
  int64_t n = 0;
  for (int64_t i : ddim_timesteps(T, spec.steps)) n += (i > 0);
  return n;
}

}  // namespace adaptdiff::sampler
