#include "negatives/strategy.hpp"

#include "core/error.hpp"

namespace adaptdiff::negatives {
namespace {

struct NamedStrategy {
  const char* name;
  Strategy strategy;
};

constexpr NamedStrategy kNames[] = {
    {"far", Strategy::kFar},       {"close", Strategy::kClose}, {"median", Strategy::kMedian},
    {"random", Strategy::kRandom}, {"zero", Strategy::kZero},   {"none", Strategy::kNone},
};

}  // namespace

Strategy parse_strategy(const std::string& name) {
  for (const auto& entry : kNames) {
    if (name == entry.name) return entry.strategy;
  }
  std::string valid;
  for (const auto& entry : kNames) {
    if (!valid.empty()) valid += ", ";
    valid += entry.name;
  }
  throw ConfigError("negatives::parse_strategy: unknown negative strategy \"" + name +
                    "\"; expected one of: " + valid);
}

const char* to_string(Strategy strategy) {
  for (const auto& entry : kNames) {
    if (entry.strategy == strategy) return entry.name;
  }
  return "unknown";
}

bool uses_similarity_ranking(Strategy strategy) {
  return strategy == Strategy::kFar || strategy == Strategy::kClose || strategy == Strategy::kMedian;
}

bool picks_pool_row(Strategy strategy) {
  return uses_similarity_ranking(strategy) || strategy == Strategy::kRandom;
}

}  // namespace adaptdiff::negatives
