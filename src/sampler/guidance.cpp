#include "sampler/guidance.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "core/error.hpp"

namespace adaptdiff::sampler {

namespace {
std::string number(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}
}  // namespace

GuidanceSchedule::GuidanceSchedule(std::string name, std::vector<std::pair<std::string, double>> params)
    : name_(std::move(name)), ordered_(std::move(params)), params_(ordered_.begin(), ordered_.end()) {}

std::string GuidanceSchedule::fingerprint() const {
  std::string out = "schedule=" + name_;
  for (const auto& [key, value] : ordered_) out += ";" + key + "=" + number(value);
  return out;
}

std::vector<std::string> guidance_schedule_names() {
  std::vector<std::string> out;
  for (const GuidanceEntry* e : guidance_table()) out.emplace_back(e->name);
  std::sort(out.begin(), out.end());
  return out;
}

std::unique_ptr<GuidanceSchedule> make_guidance_schedule(const std::string& name, const GuidanceParams& given,
                                                         std::vector<std::string>* unused) {
  const GuidanceEntry* entry = nullptr;
  std::set<std::string> known;  // keys some schedule reads
  for (const GuidanceEntry* e : guidance_table()) {
    if (name == e->name) entry = e;
    for (const auto& k : e->keys) known.insert(k.name);
  }
  if (entry == nullptr) {
    throw ConfigError("guidance: unknown schedule '" + name + "' (known: " + joined(guidance_schedule_names()) + ")");
  }
  for (const auto& [key, value] : given) {
    if (!std::isfinite(value) || value < 0.0) {
      throw ConfigError("guidance: guidance." + key + " = " + number(value) + " must be a finite number >= 0");
    }
  }
  std::vector<std::pair<std::string, double>> values;
  for (const auto& k : entry->keys) {
    const auto it = given.find(k.name);
    if (it == given.end() && std::isnan(k.default_value)) {
      throw ConfigError("guidance: schedule '" + name + "' needs guidance." + k.name);
    }
    values.emplace_back(k.name, it == given.end() ? k.default_value : it->second);
  }
  for (const auto& [key, value] : given) {
    if (known.count(key) == 0) {
      throw ConfigError("guidance: unknown key guidance." + key + " (schedules read: " +
                        joined(std::vector<std::string>(known.begin(), known.end())) + ")");
    }
    const bool read = std::any_of(entry->keys.begin(), entry->keys.end(), [&](const GuidanceKey& k) { return key == k.name; });
    if (!read && unused != nullptr) unused->push_back(key);
  }
  return entry->make(values);
}

std::unique_ptr<GuidanceSchedule> make_guidance_schedule(const std::string& name, double w, double w_max) {
  return make_guidance_schedule(name, GuidanceParams{{"w", w}, {"w_max", w_max}});
}

void check_has_negative(const GuidanceSchedule& schedule, bool has_negative) {
  if (has_negative || schedule.never_guides()) return;
  throw ConfigError("guidance: schedule '" + schedule.name() +
                    "' needs a negative condition, but there is none (negatives.strategy = \"none\")\n"
                    "---> HINT: use guidance.schedule = \"none\" for the IDiff-Face baseline");
}

EpsFn guided_eps(DenoiseFn denoise, torch::Tensor context_pos, torch::Tensor context_neg,
                 const GuidanceSchedule& schedule, int64_t T, ForwardCounter* counter) {
  check_has_negative(schedule, context_neg.defined());
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
