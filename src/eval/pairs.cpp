#include "eval/pairs.hpp"

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <unordered_set>

#include "core/error.hpp"

namespace adaptdiff::eval {

namespace {

// Rows of each identity, in ascending row order, keyed by label.
std::map<int64_t, std::vector<int64_t>> rows_by_identity(const std::vector<int64_t>& identity) {
  std::map<int64_t, std::vector<int64_t>> rows;
  for (size_t r = 0; r < identity.size(); ++r) rows[identity[r]].push_back(static_cast<int64_t>(r));
  return rows;
}

// Per-row impostor counts as offsets: pairs (i, j > i) with identity[j] != identity[i].
std::vector<int64_t> impostor_offsets(const std::vector<int64_t>& identity,
                                      const std::map<int64_t, std::vector<int64_t>>& rows) {
  const auto n = static_cast<int64_t>(identity.size());
  std::map<int64_t, int64_t> seen;  // rows of each identity at index <= i
  std::vector<int64_t> offset(identity.size() + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t same_after = static_cast<int64_t>(rows.at(identity[i]).size()) - (++seen[identity[i]]);
    offset[i + 1] = offset[i] + (n - 1 - i) - same_after;
  }
  return offset;
}

std::vector<Pair> select_all_then_sample(const std::vector<int64_t>& identity, int64_t total, int64_t wanted,
                                         std::mt19937_64& engine) {
  // Knuth, TAOCP vol. 2, 3.4.2, Algorithm S: pair t (0-based) is kept with probability
  // (wanted - kept) / (total - t); every subset of size `wanted` is equally likely.
  std::vector<Pair> out;
  out.reserve(static_cast<size_t>(wanted));
  const auto n = static_cast<int64_t>(identity.size());
  int64_t t = 0;
  for (int64_t i = 0; i < n && static_cast<int64_t>(out.size()) < wanted; ++i) {
    for (int64_t j = i + 1; j < n; ++j) {
      if (identity[i] == identity[j]) continue;
      const auto left = static_cast<uint64_t>(total - t);
      if (uniform_below(engine, left) < static_cast<uint64_t>(wanted - static_cast<int64_t>(out.size()))) {
        out.emplace_back(i, j);
      }
      ++t;
    }
  }
  return out;
}

std::vector<Pair> draw_pairs(const std::vector<int64_t>& identity, int64_t wanted, std::mt19937_64& engine) {
  struct PairHash {
    size_t operator()(const Pair& p) const { return std::hash<int64_t>()(p.first * 1000003 + p.second); }
  };
  std::unordered_set<Pair, PairHash> seen;
  seen.reserve(static_cast<size_t>(wanted) * 2);
  std::vector<Pair> out;
  out.reserve(static_cast<size_t>(wanted));
  const auto n = static_cast<uint64_t>(identity.size());
  while (static_cast<int64_t>(out.size()) < wanted) {
    const auto a = static_cast<int64_t>(uniform_below(engine, n));
    const auto b = static_cast<int64_t>(uniform_below(engine, n));
    if (a == b || identity[a] == identity[b]) continue;
    const Pair p{std::min(a, b), std::max(a, b)};
    if (seen.insert(p).second) out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

PairPlan plan_pairs(const std::vector<int64_t>& identity, int64_t requested_impostors, uint64_t seed) {
  if (requested_impostors < 0) {
    throw InputError("eval: --impostor-pairs must be >= 0 (0 = all), got " + std::to_string(requested_impostors));
  }
  const auto rows = rows_by_identity(identity);
  PairPlan plan;
  plan.identities = static_cast<int64_t>(rows.size());
  if (plan.identities < 2) {
    throw InputError("eval: the embeddings hold " + std::to_string(plan.identities) +
                     " identity label(s); impostor pairs need at least 2");
  }
  for (const auto& [label, members] : rows) {
    if (members.size() < 2) ++plan.single_image_identities;
    for (size_t a = 0; a < members.size(); ++a) {
      for (size_t b = a + 1; b < members.size(); ++b) plan.genuine.emplace_back(members[a], members[b]);
    }
  }
  if (plan.genuine.empty()) {
    throw InputError("eval: no identity has 2 or more images, so there is no genuine pair (" +
                     std::to_string(identity.size()) + " rows, " + std::to_string(plan.identities) + " identities)");
  }
  std::sort(plan.genuine.begin(), plan.genuine.end());
  const auto n = static_cast<int64_t>(identity.size());
  plan.total_impostor_pairs = n * (n - 1) / 2 - static_cast<int64_t>(plan.genuine.size());
  if (requested_impostors == 0 || requested_impostors >= plan.total_impostor_pairs) {
    if (plan.total_impostor_pairs > kMaxAllImpostorPairs) {
      throw InputError("eval: " + std::to_string(n) + " embeddings have " + std::to_string(plan.total_impostor_pairs) +
                       " impostor pairs, more than the " + std::to_string(kMaxAllImpostorPairs) +
                       " scored at most at once\n---> HINT: score a random subset with --impostor-pairs N --seed S");
    }
    plan.all_impostors = true;
    plan.row_offset = impostor_offsets(identity, rows);
    plan.n_impostor = plan.total_impostor_pairs;
    return plan;
  }
  if (requested_impostors > kMaxAllImpostorPairs) {
    throw InputError("eval: --impostor-pairs " + std::to_string(requested_impostors) + " is more than the " +
                     std::to_string(kMaxAllImpostorPairs) + " pairs scored at most at once (every rank holds every "
                     "score)\n---> HINT: ask for fewer impostor pairs");
  }
  plan.all_impostors = false;
  std::mt19937_64 engine(seed);
  plan.impostor = 2 * requested_impostors > plan.total_impostor_pairs
                      ? select_all_then_sample(identity, plan.total_impostor_pairs, requested_impostors, engine)
                      : draw_pairs(identity, requested_impostors, engine);
  plan.n_impostor = requested_impostors;
  return plan;
}

}  // namespace adaptdiff::eval
