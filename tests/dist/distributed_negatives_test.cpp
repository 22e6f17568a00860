// MPI tests of dist::select_negatives_distributed and dist::gather_pool_rows against the independent
// brute force (run at 1, 2 and 3 ranks; every rank checks its own query rows).
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "dist/distributed_negatives.hpp"
#include "dist/partition.hpp"
#include "mpi_world.hpp"
#include "support/brute_force.hpp"
#include "support/expect_selection.hpp"

namespace {

namespace neg = adaptdiff::negatives;
using adaptdiff::InputError;
using adaptdiff::dist::block_partition;
using adaptdiff::dist::Range;

const std::vector<std::string> kAllStrategies{"far", "close", "median", "random", "previous", "zero", "none"};

// Ways to cut n rows over P ranks. "block": block_partition; "reversed": rank r gets block P-1-r (shards
// out of rank order around the ring); "skewed": cut k at n*k^2/P^2 (first ranks small, often empty);
// "last": everything on the last rank.
Range part(const std::string& kind, int64_t n, int r, int P) {
  if (kind == "block") return block_partition(n, r, P);
  if (kind == "reversed") return block_partition(n, P - 1 - r, P);
  if (kind == "skewed") return Range{n * r * r / (int64_t{P} * P), n * (r + 1) * (r + 1) / (int64_t{P} * P)};
  return r == P - 1 ? Range{0, n} : Range{0, 0};
}

const std::vector<std::pair<std::string, std::string>> kCuts{
    {"block", "block"}, {"reversed", "skewed"}, {"skewed", "last"}, {"last", "reversed"}};

neg::Selection run_distributed(const brute::Matrix& ids, const brute::Matrix& pool, bool is_identity,
                               const std::string& strategy, uint64_t seed, Range q, Range p, int64_t block_rows) {
  const int64_t D = static_cast<int64_t>(ids.at(0).size());
  return adaptdiff::dist::select_negatives_distributed(
      test_world(), brute::to_tensor(ids, q.begin, q.end, D), q.begin, brute::to_tensor(pool, p.begin, p.end, D),
      p.begin, static_cast<int64_t>(pool.size()), is_identity, neg::parse_strategy(strategy), seed, block_rows);
}

// Distributed answer for this rank's queries == brute force, for every strategy and cut.
void check_all(const brute::Matrix& ids, const brute::Matrix& pool, bool is_identity, int64_t block_rows,
               const std::string& label) {
  const auto& w = test_world();
  const int P = w.size(), r = w.rank();
  const auto n = static_cast<int64_t>(ids.size());
  const auto m = static_cast<int64_t>(pool.size());
  for (const auto& [q_kind, p_kind] : kCuts) {
    const Range q = part(q_kind, n, r, P);
    const Range p = part(p_kind, m, r, P);
    for (const auto& strategy : kAllStrategies) {
      SCOPED_TRACE(label + " strategy=" + strategy + " cuts=" + q_kind + "/" + p_kind + " block_rows=" +
                   std::to_string(block_rows) + " rank=" + std::to_string(r));
      const bool impossible = strategy != "zero" && strategy != "none" && (is_identity ? m < 2 : m < 1);
      if (impossible) {
        EXPECT_THROW(run_distributed(ids, pool, is_identity, strategy, 99, q, p, block_rows), InputError);
        continue;
      }
      const auto got = run_distributed(ids, pool, is_identity, strategy, 99, q, p, block_rows);
      EXPECT_TRUE(same_selection(got, brute::select(ids, pool, is_identity, strategy, 99, q.begin, q.size())));
    }
  }
}

TEST(DistributedNegatives, IdentitySetSmallNIncludingFewerRowsThanRanks) {
  for (int64_t n = 1; n <= 9; ++n) {
    const auto ids = brute::random_rows(n, 5, 100 + static_cast<uint64_t>(n), true);
    check_all(ids, ids, true, 3, "n=" + std::to_string(n));
  }
}

TEST(DistributedNegatives, IdentitySetLargerNWithTies) {
  const auto dup37 = brute::random_rows(37, 16, 37, true);
  check_all(dup37, dup37, true, 3, "dup n=37");
  const auto ints37 = brute::small_int_rows(37, 4, 38);
  check_all(ints37, ints37, true, 3, "ints n=37");
  check_all(ints37, ints37, true, 1024, "ints n=37");
  const auto dup200 = brute::random_rows(200, 16, 200, true);
  check_all(dup200, dup200, true, 7, "dup n=200");
}

TEST(DistributedNegatives, SeparatePoolOfOtherSizes) {
  for (int64_t n : {1, 5, 37}) {
    const auto ids = brute::random_rows(n, 8, 500 + static_cast<uint64_t>(n), true);
    for (int64_t m : {1, 4, 11, 200}) {
      auto pool = brute::random_rows(m, 8, 600 + static_cast<uint64_t>(m), true);
      pool[static_cast<size_t>(m / 2)] = ids[0];  // an exact match that must not be excluded
      check_all(ids, pool, false, 3, "n=" + std::to_string(n) + " m=" + std::to_string(m));
    }
  }
  const auto ints = brute::small_int_rows(23, 3, 7);
  const auto ints_pool = brute::small_int_rows(31, 3, 8);
  check_all(ints, ints_pool, false, 2, "ints n=23 m=31");
}

TEST(DistributedNegatives, InvalidInputThrowsOnEveryRank) {
  const auto& w = test_world();
  const int P = w.size(), r = w.rank();
  const auto ids = brute::random_rows(10, 4, 1, false);
  const Range q = block_partition(10, r, P);
  const auto far = neg::Strategy::kFar;
  const torch::Tensor my = brute::to_tensor(ids, q.begin, q.end, 4);
  auto call = [&](const torch::Tensor& queries, const torch::Tensor& pool, int64_t p_begin, int64_t total,
                  neg::Strategy s) {
    return adaptdiff::dist::select_negatives_distributed(w, queries, q.begin, pool, p_begin, total, true, s, 0, 3);
  };
  EXPECT_NO_THROW(call(my, my, q.begin, 10, far));

  // Identity set of one: nothing to choose from.
  const brute::Matrix one{ids[0]};
  const Range q1 = block_partition(1, r, P);
  const torch::Tensor my1 = brute::to_tensor(one, q1.begin, q1.end, 4);
  EXPECT_THROW(adaptdiff::dist::select_negatives_distributed(w, my1, q1.begin, my1, q1.begin, 1, true, far, 0, 3),
               InputError);

  // A NaN in the shard of rank 0 only.
  torch::Tensor bad = my.clone();
  if (r == 0) bad[0][1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(call(my, bad, q.begin, 10, far), InputError);
  // Shards with a gap (pool_total one too large) or overlapping (every rank claims to start at 0).
  EXPECT_THROW(call(my, my, q.begin, 11, far), InputError);
  if (P > 1) {
    EXPECT_THROW(call(my, my, 0, 10, far), InputError);
  }
  // Queries that are not the identity rows they claim to be (rank 0 perturbs one row).
  torch::Tensor moved = my.clone();
  if (r == 0) moved[0][0] += 1.0f;
  EXPECT_THROW(call(moved, my, q.begin, 10, far), InputError);
  // Ranks that disagree on the strategy, or a bad block size on one rank.
  if (P > 1) {
    EXPECT_THROW(call(my, my, q.begin, 10, r == 0 ? neg::Strategy::kClose : far), InputError);
  }
  EXPECT_THROW(adaptdiff::dist::select_negatives_distributed(w, my, q.begin, my, q.begin, 10, true, far, 0,
                                                             r == P - 1 ? 0 : 3),
               InputError);
  // Widths that differ between ranks (the last rank's pool shard is narrower).
  if (P > 1) {
    const torch::Tensor narrow = my.narrow(1, 0, 3).contiguous();
    EXPECT_THROW(call(my, r == P - 1 ? narrow : my, q.begin, 10, far), InputError);
  }
  // Still in step afterwards: a valid call works everywhere.
  EXPECT_TRUE(same_selection(call(my, my, q.begin, 10, neg::Strategy::kClose),
                             brute::select(ids, ids, true, "close", 0, q.begin, q.size())));
}

TEST(DistributedNegatives, GatherPoolRowsFetchesTheChosenNegatives) {
  const auto& w = test_world();
  const int P = w.size(), r = w.rank();
  const auto ids = brute::random_rows(13, 6, 3, true);
  const auto pool = brute::random_rows(11, 6, 4, false);
  const Range q = part("reversed", 13, r, P);
  const Range p = part("skewed", 11, r, P);
  const auto sel = run_distributed(ids, pool, false, "far", 0, q, p, 3);
  const torch::Tensor my_pool = brute::to_tensor(pool, p.begin, p.end, 6);
  torch::Tensor index = sel.negative_index.clone();
  if (index.numel() > 0) index[0] = -1;  // -1 gives a zero row
  const torch::Tensor rows = adaptdiff::dist::gather_pool_rows(w, index, my_pool, p.begin, 11);
  ASSERT_EQ(rows.size(0), q.size());
  ASSERT_EQ(rows.size(1), 6);
  for (int64_t a = 0; a < q.size(); ++a) {
    const int64_t j = index[a].item<int64_t>();
    for (int64_t k = 0; k < 6; ++k) {
      const float want = j < 0 ? 0.0f : pool[static_cast<size_t>(j)][static_cast<size_t>(k)];
      EXPECT_EQ(rows[a][k].item<float>(), want) << "row " << a << " index " << j;
    }
  }
  torch::Tensor out_of_range = torch::full({1}, int64_t{11}, torch::TensorOptions().dtype(torch::kLong));
  EXPECT_THROW(adaptdiff::dist::gather_pool_rows(w, r == 0 ? out_of_range : index, my_pool, p.begin, 11), InputError);
}

}  // namespace
