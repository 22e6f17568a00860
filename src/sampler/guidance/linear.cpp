// AdaptDiff: w_i = w_max * (1 - i/T) (key `w_max`, default 1.0): ~0 at the first (noisiest) step, w_max at
// i = 0 -- weak early (free exploration), strong late (identity separation).
#include "sampler/guidance.hpp"

namespace adaptdiff::sampler {
namespace {
class LinearGuidance final : public GuidanceSchedule {
 public:
  explicit LinearGuidance(const std::vector<std::pair<std::string, double>>& v)
      : GuidanceSchedule("linear", v), w_max_(v.at(0).second) {}
  double weight(int64_t i, int64_t T) const override {
    return w_max_ * (1.0 - static_cast<double>(i) / static_cast<double>(T));
  }
  bool never_guides() const override { return w_max_ == 0.0; }

 private:
  double w_max_;
};
}  // namespace

namespace schedules {
extern const GuidanceEntry linear;
const GuidanceEntry linear{"linear", {{"w_max", 1.0}}, [](const auto& v) -> std::unique_ptr<GuidanceSchedule> {
                             return std::make_unique<LinearGuidance>(v);
                           }};
}  // namespace schedules
}  // namespace adaptdiff::sampler
