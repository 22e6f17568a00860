// IDiff-Face baseline: w_i = 0 at every step (one forward of B rows per step, no negative needed).
#include "sampler/guidance.hpp"

namespace adaptdiff::sampler {
namespace {
class NoGuidance final : public GuidanceSchedule {
 public:
  NoGuidance() : GuidanceSchedule("none", {}) {}
  double weight(int64_t, int64_t) const override { return 0.0; }
  bool never_guides() const override { return true; }
};
}  // namespace

namespace schedules {
extern const GuidanceEntry none;
const GuidanceEntry none{"none", {}, [](const auto&) -> std::unique_ptr<GuidanceSchedule> {
                           return std::make_unique<NoGuidance>();
                         }};
}  // namespace schedules
}  // namespace adaptdiff::sampler
