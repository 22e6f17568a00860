// Reverse adaptive (ablation): w_i = w_max * i/T (key `w_max`, default 1.0): strong early, 0 at i = 0.
#include "sampler/guidance.hpp"

namespace adaptdiff::sampler {
namespace {
class ReverseGuidance final : public GuidanceSchedule {
 public:
  explicit ReverseGuidance(const std::vector<std::pair<std::string, double>>& v)
      : GuidanceSchedule("reverse", v), w_max_(v.at(0).second) {}
  double weight(int64_t i, int64_t T) const override {
    return w_max_ * (static_cast<double>(i) / static_cast<double>(T));
  }
  bool never_guides() const override { return w_max_ == 0.0; }

 private:
  double w_max_;
};
}  // namespace

namespace schedules {
extern const GuidanceEntry reverse;
const GuidanceEntry reverse{"reverse", {{"w_max", 1.0}}, [](const auto& v) -> std::unique_ptr<GuidanceSchedule> {
                              return std::make_unique<ReverseGuidance>(v);
                            }};
}  // namespace schedules
}  // namespace adaptdiff::sampler
