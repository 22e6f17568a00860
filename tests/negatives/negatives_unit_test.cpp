// Serial tests of adaptdiff::negatives against an independent brute force (support/brute_force.hpp).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "negatives/negatives.hpp"
#include "support/brute_force.hpp"
#include "support/expect_selection.hpp"

namespace {

namespace neg = adaptdiff::negatives;
using adaptdiff::ConfigError;
using adaptdiff::InputError;

const std::vector<std::string> kAllStrategies{"far", "close", "median", "random", "previous", "zero", "none"};
const std::vector<std::string> kPickingStrategies{"far", "close", "median", "random", "previous"};

int64_t width(const brute::Matrix& m) { return static_cast<int64_t>(m.at(0).size()); }

neg::Selection run(const brute::Matrix& ids, int64_t first, int64_t count, const brute::Matrix& pool, bool is_identity,
                   const std::string& strategy, uint64_t seed, int64_t block_rows) {
  const int64_t D = width(ids);
  return neg::select_negatives(brute::to_tensor(ids, first, first + count, D), first,
                               brute::to_tensor(pool, 0, static_cast<int64_t>(pool.size()), D), is_identity,
                               neg::parse_strategy(strategy), seed, block_rows);
}

TEST(NegativesStrategy, NamesRoundTripAndBadNameListsValidOnes) {
  for (const auto& name : kAllStrategies) EXPECT_EQ(std::string(neg::to_string(neg::parse_strategy(name))), name);
  EXPECT_EQ(neg::parse_strategy("far"), neg::Strategy::kFar);
  EXPECT_EQ(neg::parse_strategy("none"), neg::Strategy::kNone);
  try {
    neg::parse_strategy("farthest");
    FAIL() << "no ConfigError for an unknown name";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("farthest"), std::string::npos) << what;
    for (const auto& name : kAllStrategies) EXPECT_NE(what.find(name), std::string::npos) << what;
  }
  EXPECT_THROW(neg::parse_strategy("Far"), ConfigError);
  EXPECT_THROW(neg::parse_strategy(""), ConfigError);
}

TEST(NegativesStrategy, FingerprintNamesWhatChangesTheChoice) {
  // Only strategies that pick pool rows depend on a separate pool; only random reads the seed.
  EXPECT_EQ(neg::fingerprint(neg::Strategy::kFar, 7, ""), "strategy=far");
  EXPECT_EQ(neg::fingerprint(neg::Strategy::kFar, 7, "abc"), "strategy=far;pool=abc");
  EXPECT_EQ(neg::fingerprint(neg::Strategy::kRandom, 7, ""), "strategy=random;seed=7");
  EXPECT_EQ(neg::fingerprint(neg::Strategy::kMedian, 7, "abc"), "strategy=median;position=n/2;pool=abc");
  EXPECT_EQ(neg::fingerprint(neg::Strategy::kPrevious, 7, ""), "strategy=previous");
  EXPECT_EQ(neg::fingerprint(neg::Strategy::kZero, 7, "abc"), "strategy=zero");
  EXPECT_EQ(neg::fingerprint(neg::Strategy::kNone, 7, "abc"), "strategy=none");
  EXPECT_TRUE(neg::picks_pool_row(neg::Strategy::kRandom));
  EXPECT_FALSE(neg::uses_similarity_ranking(neg::Strategy::kRandom));
  EXPECT_FALSE(neg::picks_pool_row(neg::Strategy::kZero));
}

TEST(NegativesRandom, SplitMix64MatchesReferenceOutputs) {
  // First outputs of the reference splitmix64.c with state 0.
  EXPECT_EQ(neg::splitmix64(0, 1), 0xE220A8397B1DCDAFULL);
  EXPECT_EQ(neg::splitmix64(0, 2), 0x6E789E6AA1B965F4ULL);
  EXPECT_EQ(neg::splitmix64(0, 3), 0x06C45D188009454FULL);
  for (uint64_t k = 1; k < 50; ++k) EXPECT_EQ(neg::splitmix64(12345, k), brute::splitmix_kth_output(12345, k));
}

TEST(NegativesRandom, NeverSelfInRangeAndSpread) {
  const int64_t n = 7;
  std::vector<int64_t> hits(n, 0);
  for (int64_t i = 0; i < 700; ++i) {
    const int64_t j = neg::random_negative_index(static_cast<uint64_t>(i), i % n, n, true);  // vary the seed
    ASSERT_GE(j, 0);
    ASSERT_LT(j, n);
    ASSERT_NE(j, i % n);
    ++hits[static_cast<size_t>(j)];
    const int64_t k = neg::random_negative_index(99, i, n, false);  // separate pool: i may exceed n
    ASSERT_GE(k, 0);
    ASSERT_LT(k, n);
  }
  for (int64_t h : hits) EXPECT_GT(h, 50);  // 700 draws over 7 rows, 6 candidates each: ~100 per row
  EXPECT_THROW(neg::random_negative_index(1, 0, 1, true), InputError);
  EXPECT_THROW(neg::random_negative_index(1, 0, 0, false), InputError);
  EXPECT_THROW(neg::random_negative_index(1, 5, 5, true), InputError);
}

TEST(NegativesSelect, HandComputedCosines) {
  // e0 = (1,0), e1 = (0,1), e2 = (-1,0), e3 = (1,1): cos(e0,e1) = 0, cos(e0,e2) = -1, cos(e0,e3) = 1/sqrt2.
  const brute::Matrix ids{{1, 0}, {0, 1}, {-1, 0}, {1, 1}};
  const float inv_sqrt2 = static_cast<float>(1.0 / std::sqrt(2.0));
  const auto far = run(ids, 0, 4, ids, true, "far", 0, 1024);
  const auto close = run(ids, 0, 4, ids, true, "close", 0, 1024);
  const auto median = run(ids, 0, 4, ids, true, "median", 0, 1024);
  EXPECT_EQ(far.negative_index[0].item<int64_t>(), 2);
  EXPECT_EQ(far.negative_similarity[0].item<float>(), -1.0f);
  EXPECT_EQ(close.negative_index[0].item<int64_t>(), 3);
  EXPECT_EQ(close.negative_similarity[0].item<float>(), inv_sqrt2);
  // median (upstream): all 4 rows incl. self (cos 1), sorted by (cos, index), position 4 // 2 = 2.
  // e0: (-1, 2), (0, 1), (0.707, 3), (1, 0) -> e3.
  EXPECT_EQ(median.negative_index[0].item<int64_t>(), 3);
  EXPECT_EQ(median.negative_similarity[0].item<float>(), inv_sqrt2);
  // e2: cos to e0 -1, e1 0, e3 -0.707 -> far e0, close e1; median (-1,0), (-0.707,3), (0,1), (1,2) -> e1.
  EXPECT_EQ(far.negative_index[2].item<int64_t>(), 0);
  EXPECT_EQ(close.negative_index[2].item<int64_t>(), 1);
  EXPECT_EQ(median.negative_index[2].item<int64_t>(), 1);
  EXPECT_EQ(median.negative_similarity[2].item<float>(), 0.0f);
  // e1: cos to e0 0, e2 0, e3 0.707 -> far: tie between 0 and 2 -> 0; median (0,0),(0,2),(.7,3),(1,1) -> 3.
  EXPECT_EQ(far.negative_index[1].item<int64_t>(), 0);
  EXPECT_EQ(median.negative_index[1].item<int64_t>(), 3);
  // previous (upstream's "rand"): i - 1, identity 0 takes the last.
  const auto previous = run(ids, 0, 4, ids, true, "previous", 0, 1024);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(previous.negative_index[i].item<int64_t>(), (i + 3) % 4);
  EXPECT_EQ(previous.negative_similarity[0].item<float>(), inv_sqrt2);  // cos(e0, e3)
}

TEST(NegativesSelect, MatchesBruteForceOnRandomDataAllStrategiesAndBlockings) {
  const auto normal = brute::random_rows(37, 16, 7, true);
  const auto ints = brute::small_int_rows(30, 4, 8);
  for (const auto* ids : {&normal, &ints}) {
    const auto n = static_cast<int64_t>(ids->size());
    for (const auto& strategy : kAllStrategies) {
      const auto want_all = brute::select(*ids, *ids, true, strategy, 4242, 0, n);
      const auto want_slice = brute::select(*ids, *ids, true, strategy, 4242, 5, 11);
      for (int64_t block_rows : {1, 3, 8, 1024}) {
        SCOPED_TRACE(strategy + " n=" + std::to_string(n) + " block_rows=" + std::to_string(block_rows));
        EXPECT_TRUE(same_selection(run(*ids, 0, n, *ids, true, strategy, 4242, block_rows), want_all));
        EXPECT_TRUE(same_selection(run(*ids, 5, 11, *ids, true, strategy, 4242, block_rows), want_slice));
      }
    }
  }
}

TEST(NegativesSelect, SmallIntDataReallyHasTies) {
  // Guard for the test above: the data must contain exact ties at the chosen minimum, or it tests nothing.
  const auto ints = brute::small_int_rows(30, 4, 8);
  int ties = 0;
  for (size_t i = 0; i < ints.size(); ++i) {
    std::vector<float> sims;
    for (size_t j = 0; j < ints.size(); ++j)
      if (j != i) sims.push_back(brute::cosine(ints[i], ints[j]));
    const float lo = *std::min_element(sims.begin(), sims.end());
    ties += std::count(sims.begin(), sims.end(), lo) > 1 ? 1 : 0;
  }
  EXPECT_GT(ties, 5);
}

TEST(NegativesSelect, TiesGoToLowestIndexAcrossBlocks) {
  // Row 0 = q. Rows 5, 2 (x2) and 7 (x0.5) are the same direction, exactly opposite to q -> far ties.
  // Rows 3 and 6 equal q (x1, x4) -> close ties for row 0 between 3 and 6.
  brute::Matrix ids = brute::random_rows(9, 6, 11, false);
  const std::vector<float> q = ids[0];
  for (size_t k = 0; k < q.size(); ++k) {
    ids[5][k] = -q[k];
    ids[2][k] = -2.0f * q[k];
    ids[7][k] = -0.5f * q[k];
    ids[3][k] = q[k];
    ids[6][k] = 4.0f * q[k];
  }
  for (int64_t block_rows : {1, 2, 4, 100}) {
    const auto far = run(ids, 0, 9, ids, true, "far", 0, block_rows);
    const auto close = run(ids, 0, 9, ids, true, "close", 0, block_rows);
    EXPECT_EQ(far.negative_index[0].item<int64_t>(), 2) << block_rows;
    EXPECT_EQ(close.negative_index[0].item<int64_t>(), 3) << block_rows;
    EXPECT_EQ(close.negative_index[6].item<int64_t>(), 0) << block_rows;  // 0, 3 tie for row 6; self excluded
    EXPECT_EQ(close.negative_index[5].item<int64_t>(), 2) << block_rows;  // 2, 7 tie for row 5
  }
}

TEST(NegativesBest, UpdateBestIsIndependentOfBlockOrder) {
  // Similarities from a 3-value set: many ties. Feed column blocks in shuffled orders.
  const int64_t nq = 6, n = 20;
  std::mt19937 rng(3);
  torch::Tensor sims = torch::empty({nq, n}, torch::TensorOptions().dtype(torch::kFloat));
  for (int64_t a = 0; a < nq; ++a)
    for (int64_t j = 0; j < n; ++j) sims[a][j] = static_cast<float>(static_cast<int>(rng() % 3)) * 0.25f;
  for (auto strategy : {neg::Strategy::kFar, neg::Strategy::kClose}) {
    for (int trial = 0; trial < 5; ++trial) {
      neg::Best best = neg::make_best(nq, 4);  // queries are global identities 4..9
      const std::vector<int64_t> cuts{0, 3, 7, 8, 15, 20};
      std::vector<size_t> order{0, 1, 2, 3, 4};
      std::shuffle(order.begin(), order.end(), rng);
      for (size_t o : order) {
        neg::update_best(best, strategy, sims.narrow(1, cuts[o], cuts[o + 1] - cuts[o]), 0, cuts[o], true);
      }
      for (int64_t a = 0; a < nq; ++a) {
        int64_t want = -1;
        float want_sim = 0;
        for (int64_t j = 0; j < n; ++j) {
          if (j == 4 + a) continue;
          const float s = sims[a][j].item<float>();
          if (want < 0 || (strategy == neg::Strategy::kFar ? s < want_sim : s > want_sim)) {
            want = j;
            want_sim = s;
          }
        }
        EXPECT_EQ(best.index[static_cast<size_t>(a)], want) << "row " << a << " trial " << trial;
        EXPECT_EQ(best.similarity[static_cast<size_t>(a)], want_sim);
      }
    }
  }
  neg::Best best = neg::make_best(2, 0);
  EXPECT_THROW(neg::update_best(best, neg::Strategy::kMedian, sims.narrow(0, 0, 2), 0, 0, false), InputError);
  EXPECT_THROW(neg::update_best(best, neg::Strategy::kFar, sims.narrow(0, 0, 3), 0, 0, false), InputError);
}

TEST(NegativesMedian, DefinitionOnHandWrittenRows) {
  torch::Tensor rows = torch::tensor({0.5f, 0.1f, 0.5f, 0.3f, 0.2f, 0.2f, 0.2f, 0.9f}).reshape({2, 4});
  // Row 0: (0.1,1) (0.3,3) (0.5,0) (0.5,2): n = 4 -> position 2 -> 0 (the tie goes by index).
  // Row 1: (0.2,0) (0.2,1) (0.2,2) (0.9,3) -> position 2 -> 2.
  auto sel = neg::select_median(rows);
  EXPECT_EQ(sel.negative_index[0].item<int64_t>(), 0);
  EXPECT_EQ(sel.negative_similarity[0].item<float>(), 0.5f);
  EXPECT_EQ(sel.negative_index[1].item<int64_t>(), 2);
  EXPECT_EQ(sel.negative_similarity[1].item<float>(), 0.2f);
  // Two rows: position 1, the higher one (numpy's argsort(cos)[2 // 2]).
  sel = neg::select_median(torch::tensor({0.7f, 0.4f}).reshape({1, 2}));
  EXPECT_EQ(sel.negative_index[0].item<int64_t>(), 0);
  // Five rows: position 2, the middle one.
  sel = neg::select_median(torch::tensor({0.5f, 0.4f, 0.3f, 0.2f, 0.1f}).reshape({1, 5}));
  EXPECT_EQ(sel.negative_index[0].item<int64_t>(), 2);
}

TEST(NegativesPrevious, IsTheIdentityBeforeAndWrapsAround) {
  EXPECT_EQ(neg::previous_negative_index(0, 5), 4);
  EXPECT_EQ(neg::previous_negative_index(3, 5), 2);
  EXPECT_EQ(neg::previous_negative_index(7, 5), 1);  // a separate pool of 5 rows: (7 - 1) mod 5
  EXPECT_THROW(neg::previous_negative_index(0, 0), InputError);
  EXPECT_THROW(neg::previous_negative_index(-1, 5), InputError);
}

TEST(NegativesSelect, SeparatePoolOfAnotherSize) {
  const auto ids = brute::random_rows(9, 8, 21, false);
  auto pool = brute::random_rows(13, 8, 22, true);
  pool[7] = ids[2];  // not excluded: close for identity 2 must be pool row 7 (cos(x, x))
  for (const auto& strategy : kAllStrategies) {
    const auto want = brute::select(ids, pool, false, strategy, 5, 0, 9);
    for (int64_t block_rows : {2, 1024}) {
      SCOPED_TRACE(strategy + " block_rows=" + std::to_string(block_rows));
      EXPECT_TRUE(same_selection(run(ids, 0, 9, pool, false, strategy, 5, block_rows), want));
    }
  }
  const auto close = run(ids, 0, 9, pool, false, "close", 0, 4);
  EXPECT_EQ(close.negative_index[2].item<int64_t>(), 7);
  EXPECT_EQ(close.negative_similarity[2].item<float>(), brute::cosine(ids[2], ids[2]));
  // A separate pool of one row is enough.
  const brute::Matrix one{pool[4]};
  for (const auto& strategy : kPickingStrategies) {
    const auto sel = run(ids, 0, 9, one, false, strategy, 5, 3);
    EXPECT_TRUE(same_selection(sel, brute::select(ids, one, false, strategy, 5, 0, 9))) << strategy;
    EXPECT_EQ(sel.negative_index.max().item<int64_t>(), 0);
  }
}

TEST(NegativesSelect, ZeroAndNoneGiveMinusOneAndNaN) {
  const auto ids = brute::random_rows(3, 4, 1, false);
  for (const char* name : {"zero", "none"}) {
    for (int64_t n : {1, 3}) {
      const auto sel = run(ids, 0, n, ids, true, name, 0, 2);
      ASSERT_EQ(sel.negative_index.numel(), n);
      for (int64_t a = 0; a < n; ++a) {
        EXPECT_EQ(sel.negative_index[a].item<int64_t>(), neg::kNoNegative);
        EXPECT_TRUE(std::isnan(sel.negative_similarity[a].item<float>()));
      }
    }
  }
  // zero/none ignore the pool entirely (even an empty one).
  const auto sel = neg::select_negatives(brute::to_tensor(ids, 0, 3, 4), 0, torch::empty({0, 4}), false,
                                         neg::Strategy::kZero, 0);
  EXPECT_EQ(sel.negative_index.numel(), 3);
}

TEST(NegativesSelect, RandomDoesNotDependOnSlicingOrBlocks) {
  const auto ids = brute::random_rows(25, 4, 9, false);
  const auto whole = run(ids, 0, 25, ids, true, "random", 777, 4);
  for (int64_t first : {0, 3, 24}) {
    const auto part = run(ids, first, 25 - first, ids, true, "random", 777, 1);
    EXPECT_TRUE(torch::equal(part.negative_index, whole.negative_index.narrow(0, first, 25 - first)));
  }
  const auto other_seed = run(ids, 0, 25, ids, true, "random", 778, 4);
  EXPECT_FALSE(torch::equal(other_seed.negative_index, whole.negative_index));
}

TEST(NegativesSimilarity, BlockValueDependsOnlyOnTheTwoRows) {
  const auto rows = brute::random_rows(23, 37, 5, false);  // odd sizes: edge tiles everywhere
  const torch::Tensor hat = neg::normalize_rows(brute::to_tensor(rows, 0, 23, 37), "rows");
  const int saved_threads = at::get_num_threads();
  at::set_num_threads(2);
  const torch::Tensor full = neg::similarity_block(hat, hat);
  at::set_num_threads(saved_threads);
  ASSERT_EQ(full.sizes(), (std::vector<int64_t>{23, 23}));
  for (int64_t a = 0; a < 23; ++a) {
    for (int64_t b = 0; b < 23; ++b) {
      const float one = neg::similarity_block(hat.narrow(0, a, 1), hat.narrow(0, b, 1)).item<float>();
      const float want = brute::cosine(rows[static_cast<size_t>(a)], rows[static_cast<size_t>(b)]);
      ASSERT_TRUE(brute::same_float(full[a][b].item<float>(), want)) << a << "," << b;
      ASSERT_TRUE(brute::same_float(one, want)) << a << "," << b;
    }
  }
}

TEST(NegativesAccumulator, ShardsInAnyOrderAndMissingShardDetected) {
  const auto ids = brute::random_rows(17, 8, 13, true);
  const torch::Tensor hat = neg::normalize_rows(brute::to_tensor(ids, 0, 17, 8), "ids");
  const std::vector<int64_t> cuts{0, 4, 4, 11, 17};  // one empty shard
  for (const auto& strategy : kAllStrategies) {
    neg::SelectionAccumulator acc(neg::parse_strategy(strategy), hat.narrow(0, 2, 9), 2, 17, true, 31, 3);
    for (size_t s : {3, 1, 0, 2}) acc.add_candidates(hat.narrow(0, cuts[s], cuts[s + 1] - cuts[s]), cuts[s]);
    EXPECT_TRUE(same_selection(acc.finish(), brute::select(ids, ids, true, strategy, 31, 2, 9))) << strategy;
  }
  neg::SelectionAccumulator partial(neg::Strategy::kFar, hat, 0, 17, true, 0, 3);
  partial.add_candidates(hat.narrow(0, 0, 11), 0);
  EXPECT_THROW(partial.finish(), InputError);
  EXPECT_THROW(partial.add_candidates(hat.narrow(0, 10, 7), 11), InputError);  // past the pool end
}

// A pool built around query row 0 with cosines alpha + k * 1e-7 (k in -12..12): far (alpha < 0) and close
// (alpha > 0) winners differ from their rivals by less than float32 products resolve.
brute::Matrix near_tie_pool(const std::vector<float>& q, double alpha, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> qh(q.begin(), q.end());
  double qn = 0.0;
  for (double v : qh) qn += v * v;
  for (double& v : qh) v /= std::sqrt(qn);
  brute::Matrix pool;
  for (int64_t j = 0; j < n; ++j) {
    std::vector<double> w(qh.size());
    double dot = 0.0, wn = 0.0;
    for (size_t k = 0; k < w.size(); ++k) dot += (w[k] = normal(rng)) * qh[k];
    for (size_t k = 0; k < w.size(); ++k) wn += (w[k] -= dot * qh[k]) * w[k];
    const double a = alpha + 1e-7 * static_cast<double>(static_cast<int>(rng() % 25) - 12);
    std::vector<float> c(w.size());
    for (size_t k = 0; k < w.size(); ++k) c[k] = static_cast<float>(a * qh[k] + std::sqrt(1 - a * a) * w[k] / std::sqrt(wn));
    pool.push_back(c);
  }
  return pool;
}

TEST(NegativesScreened, NearTiesBelowFloat32ResolutionMatchBruteForce) {
  // The float32 products only shortlist; the exact re-check must give the defined answer. Guard: the naive
  // float32 argmin/argmax must be wrong in some trials, or the data would not test the re-check.
  const int64_t D = 512, n = 120;
  int naive_wrong = 0;
  for (uint32_t trial = 0; trial < 12; ++trial) {
    const brute::Matrix queries = brute::random_rows(3, D, 100 + trial, true);
    for (const auto& [strategy, alpha] : {std::pair<std::string, double>{"far", -0.3}, {"close", 0.3}}) {
      SCOPED_TRACE(strategy + " trial " + std::to_string(trial));
      const brute::Matrix pool = near_tie_pool(queries[0], alpha, n, 7 + trial);
      const auto want = brute::select(queries, pool, false, strategy, 0, 0, 3);
      EXPECT_TRUE(same_selection(run(queries, 0, 3, pool, false, strategy, 0, 1024), want));
      const torch::Tensor q32 = neg::normalize_rows(brute::to_tensor(queries, 0, 1, D), "q").to(torch::kFloat);
      const torch::Tensor p32 = neg::normalize_rows(brute::to_tensor(pool, 0, n, D), "p").to(torch::kFloat);
      const torch::Tensor s = torch::mm(q32, p32.t())[0];
      const int64_t naive = (strategy == "far" ? s.argmin() : s.argmax()).item<int64_t>();
      naive_wrong += naive != want.index[0] ? 1 : 0;
    }
  }
  EXPECT_GT(naive_wrong, 0);
}

TEST(NegativesScreened, MarginBoundsTheFloat32Error) {
  // The bound's delta (half the margin, less 2^-21) must cover the float32 product's error, measured against
  // a float64 product, on random unit rows, including the diagonal (cosines of 1).
  const auto rows = brute::random_rows(64, 512, 3, true);
  const torch::Tensor hat = neg::normalize_rows(brute::to_tensor(rows, 0, 64, 512), "rows");
  const torch::Tensor approx = torch::mm(hat.to(torch::kFloat), hat.to(torch::kFloat).t()).to(torch::kDouble);
  const torch::Tensor exact = torch::mm(hat, hat.t());
  EXPECT_LT((approx - exact).abs().max().item<double>(), (neg::screen_margin(512) - std::ldexp(1.0, -22)) / 2);
}

// update_best_screened_on_device with the CPU as the device (BLAS products) over a whole pool.
neg::Selection fold_on_device(const brute::Matrix& queries, int64_t first, int64_t count, const brute::Matrix& pool,
                              bool is_identity, const std::string& strategy) {
  const int64_t D = width(queries);
  neg::Best best = neg::make_best(count, first);
  const torch::Tensor pool_hat = neg::normalize_rows(brute::to_tensor(pool, 0, static_cast<int64_t>(pool.size()), D), "p");
  neg::update_best_screened_on_device(best, neg::parse_strategy(strategy),
                                      neg::normalize_rows(brute::to_tensor(queries, first, first + count, D), "q"),
                                      pool_hat, pool_hat.to(torch::kFloat), is_identity);
  return neg::finish_best(best);
}

// The GPU path's fold (one product over the whole pool, shortlist on the device) run on the CPU: the brute
// force's answer for near ties, for the identity set (its own row excluded) and for a separate pool, with more
// queries than one device block, starting at offsets other than 0.
TEST(NegativesScreened, DeviceVariantOnTheCpuMatchesBruteForce) {
  for (uint32_t trial = 0; trial < 4; ++trial) {
    const brute::Matrix queries = brute::random_rows(3, 512, 200 + trial, true);
    for (const auto& [strategy, alpha] : {std::pair<std::string, double>{"far", -0.3}, {"close", 0.3}}) {
      SCOPED_TRACE(strategy + " near ties, trial " + std::to_string(trial));
      const brute::Matrix pool = near_tie_pool(queries[0], alpha, 120, 17 + trial);
      EXPECT_TRUE(same_selection(fold_on_device(queries, 0, 3, pool, false, strategy),
                                 brute::select(queries, pool, false, strategy, 0, 0, 3)));
    }
  }
  const brute::Matrix ids = brute::random_rows(1500, 24, 5, false);
  const brute::Matrix other = brute::random_rows(700, 24, 6, false);
  for (const std::string strategy : {"far", "close"}) {
    SCOPED_TRACE(strategy);
    EXPECT_TRUE(same_selection(fold_on_device(ids, 0, 1500, ids, true, strategy),
                               brute::select(ids, ids, true, strategy, 0, 0, 1500)));
    EXPECT_TRUE(same_selection(fold_on_device(ids, 300, 1100, ids, true, strategy),
                               brute::select(ids, ids, true, strategy, 0, 300, 1100)));
    EXPECT_TRUE(same_selection(fold_on_device(ids, 40, 1200, other, false, strategy),
                               brute::select(ids, other, false, strategy, 0, 40, 1200)));
  }
  neg::Best best = neg::make_best(1, 0);
  EXPECT_THROW(neg::update_best_screened_on_device(best, neg::Strategy::kMedian, torch::zeros({1, 4}, torch::kDouble),
                                                   torch::zeros({2, 4}, torch::kDouble), torch::zeros({2, 4}), false),
               InputError);
}

TEST(NegativesErrors, BadInputsThrowInputError) {
  const auto ids = brute::random_rows(5, 4, 2, false);
  const torch::Tensor t = brute::to_tensor(ids, 0, 5, 4);
  const torch::Tensor one = t.narrow(0, 0, 1);
  for (const auto& name : kPickingStrategies) {
    const auto s = neg::parse_strategy(name);
    EXPECT_THROW(neg::select_negatives(one, 0, one, true, s, 0), InputError) << name;  // N = 1
    EXPECT_THROW(neg::select_negatives(one, 0, t.narrow(0, 0, 0), false, s, 0), InputError) << name;  // empty pool
    EXPECT_NO_THROW(neg::select_negatives(one, 0, one, false, s, 0)) << name;  // separate pool of 1 is fine
  }
  EXPECT_NO_THROW(neg::select_negatives(one, 0, one, true, neg::Strategy::kZero, 0));
  EXPECT_NO_THROW(neg::select_negatives(one, 0, one, true, neg::Strategy::kNone, 0));

  const auto far = neg::Strategy::kFar;
  torch::Tensor zero_row = t.clone();
  zero_row[3].zero_();
  EXPECT_THROW(neg::select_negatives(zero_row, 0, zero_row, true, far, 0), InputError);
  torch::Tensor nan_row = t.clone();
  nan_row[1][2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(neg::select_negatives(t, 0, nan_row, false, far, 0), InputError);
  torch::Tensor inf_row = t.clone();
  inf_row[0][0] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(neg::select_negatives(inf_row, 0, t, false, far, 0), InputError);
  EXPECT_THROW(neg::select_negatives(t.to(torch::kDouble), 0, t, false, far, 0), InputError);
  EXPECT_THROW(neg::select_negatives(t, 0, t.narrow(1, 0, 3).contiguous(), false, far, 0), InputError);  // widths
  EXPECT_THROW(neg::select_negatives(t.reshape({20}), 0, t, false, far, 0), InputError);
  EXPECT_THROW(neg::select_negatives(t, 0, t, true, far, 0, 0), InputError);              // block_rows 0
  EXPECT_THROW(neg::select_negatives(t.narrow(0, 1, 3), 3, t, true, far, 0), InputError);  // outside the set
  EXPECT_THROW(neg::select_negatives(t.narrow(0, 1, 3), 0, t, true, far, 0), InputError);  // rows differ
  EXPECT_THROW(neg::select_negatives(t, -1, t, false, far, 0), InputError);
  EXPECT_NO_THROW(neg::select_negatives(t.narrow(0, 1, 3), 1, t, true, far, 0));
}

}  // namespace
