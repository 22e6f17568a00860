// NegFaceDiff (Caldeira et al.): a constant weight, w_i = w (key `w`, default 0.5).
#include "sampler/guidance.hpp"

namespace adaptdiff::sampler {
namespace {
class ConstantGuidance final : public GuidanceSchedule {
 public:
  explicit ConstantGuidance(const std::vector<std::pair<std::string, double>>& v)
      : GuidanceSchedule("constant", v), w_(v.at(0).second) {}
  double weight(int64_t, int64_t) const override { return w_; }
  bool never_guides() const override { return w_ == 0.0; }

 private:
  double w_;
};
}  // namespace

namespace schedules {
extern const GuidanceEntry constant;
const GuidanceEntry constant{"constant", {{"w", 0.5}}, [](const auto& v) -> std::unique_ptr<GuidanceSchedule> {
                               return std::make_unique<ConstantGuidance>(v);
                             }};
}  // namespace schedules
}  // namespace adaptdiff::sampler
