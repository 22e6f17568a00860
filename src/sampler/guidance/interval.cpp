// Guidance in a limited interval: w_i = w for t_start <= i <= t_end, 0 outside (keys `w`, default 0.5, and
// `t_start`, `t_end`, required: timesteps 0..T-1, t_start <= t_end).
// Ref: Kynkaanniemi et al. 2024, "Applying Guidance in a Limited Interval Improves Sample and Distribution
// Quality in Diffusion Models", arXiv 2404.07724.
#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "sampler/guidance.hpp"

namespace adaptdiff::sampler {
namespace {
class IntervalGuidance final : public GuidanceSchedule {
 public:
  explicit IntervalGuidance(const std::vector<std::pair<std::string, double>>& v)
      : GuidanceSchedule("interval", v), w_(v.at(0).second), t_start_(v.at(1).second), t_end_(v.at(2).second) {
    if (t_start_ != std::floor(t_start_) || t_end_ != std::floor(t_end_) || t_start_ > t_end_) {
      throw ConfigError("guidance: schedule 'interval' needs whole timesteps t_start <= t_end, got t_start = " +
                        std::to_string(t_start_) + ", t_end = " + std::to_string(t_end_));
    }
  }
  double weight(int64_t i, int64_t) const override {
    const auto t = static_cast<double>(i);
    return t >= t_start_ && t <= t_end_ ? w_ : 0.0;
  }
  bool never_guides() const override { return w_ == 0.0; }
  void check(int64_t T) const override {
    if (t_end_ > static_cast<double>(T - 1)) {
      throw ConfigError("guidance: schedule 'interval' has t_end = " + std::to_string(static_cast<int64_t>(t_end_)) +
                        " but the model's timesteps are 0.." + std::to_string(T - 1));
    }
  }

 private:
  double w_, t_start_, t_end_;
};
}  // namespace

namespace schedules {
extern const GuidanceEntry interval;
const GuidanceEntry interval{"interval",
                             {{"w", 0.5},
                              {"t_start", std::numeric_limits<double>::quiet_NaN()},
                              {"t_end", std::numeric_limits<double>::quiet_NaN()}},
                             [](const auto& v) -> std::unique_ptr<GuidanceSchedule> {
                               return std::make_unique<IntervalGuidance>(v);
                             }};
}  // namespace schedules
}  // namespace adaptdiff::sampler
