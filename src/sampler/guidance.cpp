#include "sampler/guidance.hpp"

#include <cmath>

#include "core/error.hpp"

namespace adaptdiff::sampler {

namespace {
struct Entry {
  const char* name;
  std::unique_ptr<GuidanceSchedule> (*make)(double w, double w_max);
};
// The registry: one row per schedule.
const Entry kSchedules[] = {
    {"none", [](double, double) -> std::unique_ptr<GuidanceSchedule> { return std::make_unique<NoGuidance>(); }},
    {"constant",
     [](double w, double) -> std::unique_ptr<GuidanceSchedule> { return std::make_unique<ConstantGuidance>(w); }},
    {"linear",
     [](double, double wm) -> std::unique_ptr<GuidanceSchedule> { return std::make_unique<LinearGuidance>(wm); }},
    {"reverse",
     [](double, double wm) -> std::unique_ptr<GuidanceSchedule> { return std::make_unique<ReverseGuidance>(wm); }},
};
}  // namespace

std::vector<std::string> guidance_schedule_names() {
  std::vector<std::string> out;
  for (const auto& e : kSchedules) out.emplace_back(e.name);
  return out;
}

std::unique_ptr<GuidanceSchedule> make_guidance_schedule(const std::string& name, double w, double w_max) {
  if (!std::isfinite(w) || w < 0.0) throw ConfigError("guidance: w must be a finite number >= 0");
  if (!std::isfinite(w_max) || w_max < 0.0) throw ConfigError("guidance: w_max must be a finite number >= 0");
  for (const auto& e : kSchedules) {
    if (name == e.name) return e.make(w, w_max);
  }
  std::string known;
  for (const auto& n : guidance_schedule_names()) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError("guidance: unknown schedule '" + name + "' (known: " + known + ")");
}

EpsFn guided_eps(DenoiseFn denoise, torch::Tensor context_pos, torch::Tensor context_neg,
                 const GuidanceSchedule& schedule, int64_t T, ForwardCounter* counter) {
  if (!context_neg.defined() && !schedule.never_guides()) {
    throw ConfigError("guidance: schedule '" + schedule.name() +
                      "' needs a negative condition, but none was given (negatives.strategy = \"none\")");
  }
  // The doubled context is built once per batch, not per step.
  torch::Tensor context_both;
  if (context_neg.defined()) context_both = torch::cat({context_pos, context_neg}, 0);
  return [denoise = std::move(denoise), &schedule, T, counter, context_pos = std::move(context_pos),
          context_both = std::move(context_both)](const torch::Tensor& x_t, int64_t i) -> torch::Tensor {
    const int64_t B = x_t.size(0);
    const double w = schedule.weight(i, T);
    const auto t_opts = torch::TensorOptions().dtype(torch::kInt64).device(x_t.device());
    if (w == 0.0) {
      if (counter) { ++counter->calls; counter->rows += B; }
      return denoise(x_t, torch::full({B}, i, t_opts), context_pos);
    }
    if (counter) { ++counter->calls; counter->rows += 2 * B; }
    const torch::Tensor eps_both =
        denoise(torch::cat({x_t, x_t}, 0), torch::full({2 * B}, i, t_opts), context_both);
    const torch::Tensor eps_pos = eps_both.slice(0, 0, B);
    const torch::Tensor eps_neg = eps_both.slice(0, B, 2 * B);
    // Ref: NegFaceDiff guidance; (1 + w) and w are double scalars applied to float32 tensors, as upstream.
    return (1.0 + w) * eps_pos - w * eps_neg;
  };
}

}  // namespace adaptdiff::sampler
