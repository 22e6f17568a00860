// Cosine increasing weight: w_i = w_max * (1 - cos(pi * (1 - i/T))) / 2 (key `w_max`, default 1.0): 0 at i = T,
// w_max at i = 0, increasing like `linear` but flat at both ends.
// Ref: Wang et al. 2024, "Analysis of Classifier-Free Guidance Weight Schedulers", arXiv 2404.13040.
#include <cmath>

#include "sampler/guidance.hpp"

namespace adaptdiff::sampler {
namespace {
class CosineGuidance final : public GuidanceSchedule {
 public:
  explicit CosineGuidance(const std::vector<std::pair<std::string, double>>& v)
      : GuidanceSchedule("cosine", v), w_max_(v.at(0).second) {}
  double weight(int64_t i, int64_t T) const override {
    const double u = 1.0 - static_cast<double>(i) / static_cast<double>(T);
    return w_max_ * (1.0 - std::cos(M_PI * u)) / 2.0;
  }
  bool never_guides() const override { return w_max_ == 0.0; }

 private:
  double w_max_;
};
}  // namespace

namespace schedules {
extern const GuidanceEntry cosine;
const GuidanceEntry cosine{"cosine", {{"w_max", 1.0}}, [](const auto& v) -> std::unique_ptr<GuidanceSchedule> {
                             return std::make_unique<CosineGuidance>(v);
                           }};
}  // namespace schedules
}  // namespace adaptdiff::sampler
