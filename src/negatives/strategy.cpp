#include "negatives/strategy.hpp"

#include "core/error.hpp"

namespace adaptdiff::negatives {
namespace {

/// The one table of strategies: name, whether it ranks by similarity, picks a pool row, reads negatives.seed,
/// and a definition tag for the fingerprint (set when a definition changed, so older files are not resumed).
struct NamedStrategy {
  const char* name;
  Strategy strategy;
  bool ranks;
  bool picks_row;
  bool seeded;
  const char* definition;
};

constexpr NamedStrategy kNames[] = {
    {"far", Strategy::kFar, true, true, false, ""},
    {"close", Strategy::kClose, true, true, false, ""},
    {"median", Strategy::kMedian, true, true, false, ";position=n/2"},
    {"random", Strategy::kRandom, false, true, true, ""},
    {"previous", Strategy::kPrevious, false, true, false, ""},
    {"zero", Strategy::kZero, false, false, false, ""},
    {"none", Strategy::kNone, false, false, false, ""},
};

const NamedStrategy& entry_of(Strategy strategy) {
  for (const auto& entry : kNames) {
    if (entry.strategy == strategy) return entry;
  }
  return kNames[0];  // unreachable: every enumerator has a row
}

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
  throw ConfigError("config: negatives.strategy = \"" + name + "\" is not a negative strategy; expected one of: " +
                    valid);
}

const char* to_string(Strategy strategy) { return entry_of(strategy).name; }

bool uses_similarity_ranking(Strategy strategy) { return entry_of(strategy).ranks; }

bool picks_pool_row(Strategy strategy) { return entry_of(strategy).picks_row; }

std::string fingerprint(Strategy strategy, uint64_t seed, const std::string& pool) {
  const NamedStrategy& e = entry_of(strategy);
  return std::string("strategy=") + e.name + e.definition + (e.picks_row && !pool.empty() ? ";pool=" + pool : "") +
         (e.seeded ? ";seed=" + std::to_string(seed) : "");
}

}  // namespace adaptdiff::negatives
