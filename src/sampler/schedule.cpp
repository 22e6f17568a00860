#include "sampler/schedule.hpp"

#include <sstream>

#include "core/error.hpp"

namespace adaptdiff::sampler {

Schedule Schedule::linear(int64_t T, double beta_1, double beta_T) {
  if (T < 2 || !(beta_1 > 0.0) || !(beta_T > beta_1)) {
    throw ConfigError("schedule: need T >= 2 and 0 < beta_1 < beta_T, got T=" + std::to_string(T) +
                      " beta_1=" + std::to_string(beta_1) + " beta_T=" + std::to_string(beta_T));
  }
  // Ref: idiff-face-model.md 6.1 -- float32 linspace, then log/cumsum/exp for alpha_bar.
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  const double scale = 1000.0 / static_cast<double>(T);
  Schedule s;
  s.T = T;
  s.betas = torch::linspace(beta_1 * scale, beta_T * scale, T, f32);
  s.alphas = 1 - s.betas;
  s.sigmas = torch::sqrt(s.betas);
  s.sqrt_alphas_inv = 1 / torch::sqrt(s.alphas);
  s.alpha_bars = torch::exp(torch::cumsum(torch::log(s.alphas), 0));
  s.sqrt_alpha_bars = torch::sqrt(s.alpha_bars);
  s.sqrt_one_minus_alpha_bars = torch::sqrt(1 - s.alpha_bars);
  s.coef = (1 - s.alphas) / s.sqrt_one_minus_alpha_bars;
  s.alpha_bars_prev = torch::cat({torch::ones({1}, f32), s.alpha_bars.slice(0, 0, T - 1)});
  s.cache_scalars();
  return s;
}

void Schedule::cache_scalars() {
  auto vec = [](const torch::Tensor& t) {
    auto c = t.contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  };
  alpha_bars_a_ = vec(alpha_bars);
  alpha_bars_prev_a_ = vec(alpha_bars_prev);
  sqrt_alphas_inv_a_ = vec(sqrt_alphas_inv);
  coef_a_ = vec(coef);
  sigmas_a_ = vec(sigmas);
}

std::vector<std::pair<std::string, torch::Tensor>> Schedule::checkpoint_buffers() const {
  return {{"betas", betas},
          {"alphas", alphas},
          {"sigmas", sigmas},
          {"sqrt_alphas_inv", sqrt_alphas_inv},
          {"alpha_bars", alpha_bars},
          {"sqrt_alpha_bars", sqrt_alpha_bars},
          {"sqrt_one_minus_alpha_bars", sqrt_one_minus_alpha_bars},
          {"one_minus_alphas_over_sqrt_one_minus_alpha_bars", coef}};
}


}  // namespace adaptdiff::sampler
