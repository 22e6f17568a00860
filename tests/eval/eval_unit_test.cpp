// eval: metrics on hand-worked score sets (both conventions), the comparison pairs against brute force, the
// embedding checks, the cosine scorer and the face preprocessing against closed forms.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include <torch/torch.h>

#include "core/error.hpp"
#include "eval/embed.hpp"
#include "eval/metrics.hpp"
#include "eval/pairs.hpp"
#include "eval/scores.hpp"
#include "support/expect_error.hpp"

namespace {

using adaptdiff::InputError;
using adaptdiff::test::expect_error;
namespace eval = adaptdiff::eval;
constexpr eval::Convention kPyeer = eval::Convention::kPyeer;
constexpr eval::Convention kStrict = eval::Convention::kStrict;

TEST(EvalMetrics, PerfectSeparationHasZeroErrorRates) {
  const std::vector<double> g{0.7, 0.8, 0.9}, i{0.1, 0.2, 0.3, 0.4};
  for (auto c : {kPyeer, kStrict}) {
    const eval::Metrics m = eval::compute_metrics(g, i, c);
    EXPECT_EQ(m.eer, 0.0);
    EXPECT_EQ(m.fmr100, 0.0);
    EXPECT_EQ(m.fmr1000, 0.0);
    EXPECT_EQ(m.n_genuine, 3);
    EXPECT_EQ(m.n_impostor, 4);
  }
}

TEST(EvalMetrics, IdenticalDistributionsHaveEerOneHalf) {
  const std::vector<double> s{0.1, 0.2, 0.3};
  // Sweep: t = 0.1, 0.2, 0.3 (+inf): FMR 1, 2/3, 1/3 (0); FNMR 0, 1/3, 2/3 (1).
  // pyeer: t2 = 2 (first FMR <= FNMR), t1 = 1, both sums 1 -> 0.5. strict: crossing halfway between -> 0.5.
  EXPECT_DOUBLE_EQ(eval::compute_metrics(s, s, kPyeer).eer, 0.5);
  EXPECT_DOUBLE_EQ(eval::compute_metrics(s, s, kStrict).eer, 0.5);
}

TEST(EvalMetrics, ConventionsDifferWhereTheWordingDiffers) {
  // G = {0.5, 0.7, 0.9}, I = {0.2, 0.6}: t = .2 .5 .6 .7 .9 (+inf); FMR 1 .5 .5 0 0 (0); FNMR 0 0 1/3 1/3 2/3 (1).
  // pyeer: t2 = 3, t1 = 2; sum at t2 (1/3) < at t1 (5/6) -> EER = 1/6.
  // strict: FMR - FNMR goes 1/6 -> -1/3 between t = .6 and .7: alpha = 1/3, EER = .5 - .5/3 = 1/3.
  const std::vector<double> g{0.5, 0.7, 0.9}, i{0.2, 0.6};
  EXPECT_NEAR(eval::compute_metrics(g, i, kPyeer).eer, 1.0 / 6, 1e-15);
  EXPECT_NEAR(eval::compute_metrics(g, i, kStrict).eer, 1.0 / 3, 1e-15);
  // The order of the scores does not matter.
  EXPECT_EQ(eval::compute_metrics({0.9, 0.5, 0.7}, {0.6, 0.2}, kStrict).eer, eval::compute_metrics(g, i, kStrict).eer);
}

TEST(EvalMetrics, OperatingPointPyeerTakesTheClosestFmrStrictTheLowestFnmrAtOrBelow) {
  // 90 impostors 0.00 .. 0.89, genuine {0.885, 0.95}: at t = 0.885 FMR = 1/90 (0.0111, closest to 0.01), FNMR 0;
  // the first point with FMR <= 0.01 is t = 0.95 with FNMR 1/2.
  std::vector<double> imp;
  for (int k = 0; k < 90; ++k) imp.push_back(k / 100.0);
  const std::vector<double> g{0.885, 0.95};
  EXPECT_EQ(eval::compute_metrics(g, imp, kPyeer).fmr100, 0.0);
  EXPECT_EQ(eval::compute_metrics(g, imp, kStrict).fmr100, 0.5);
  // FMR1000: pyeer's closest FMR to 0.001 is 0 (t = 0.95 first), FNMR 1/2; strict the same.
  EXPECT_EQ(eval::compute_metrics(g, imp, kPyeer).fmr1000, 0.5);
  EXPECT_EQ(eval::compute_metrics(g, imp, kStrict).fmr1000, 0.5);
}

TEST(EvalMetrics, PyeerReturnsOneWhenTheCurvesNeverMeet) {
  // One threshold only: FMR 1, FNMR 0. pyeer warns and returns 1; strict reaches FMR = FNMR = 1/2 halfway to +inf.
  const eval::Metrics p = eval::compute_metrics({0.5, 0.5}, {0.5}, kPyeer);
  EXPECT_EQ(p.eer, 1.0);
  EXPECT_FALSE(p.curves_meet);
  EXPECT_EQ(eval::compute_metrics({0.5, 0.5}, {0.5}, kStrict).eer, 0.5);
}

TEST(EvalMetrics, MeansStdsAndFdrInClosedForm) {
  // G = {1, 3}: mean 2, population std 1; I = {0, 0.5}: mean 0.25, std 0.25. FDR = 1.75^2 / (1 + 0.0625).
  const eval::Metrics m = eval::compute_metrics({1.0, 3.0}, {0.0, 0.5}, kStrict);
  EXPECT_DOUBLE_EQ(m.genuine_mean, 2.0);
  EXPECT_DOUBLE_EQ(m.genuine_std, 1.0);
  EXPECT_DOUBLE_EQ(m.impostor_mean, 0.25);
  EXPECT_DOUBLE_EQ(m.impostor_std, 0.25);
  EXPECT_DOUBLE_EQ(m.fdr, 1.75 * 1.75 / 1.0625);
}

TEST(EvalMetrics, RejectsEmptyAndNonFiniteScores) {
  expect_error<InputError>([] { eval::compute_metrics({}, {0.1}, kPyeer); }, {"no genuine scores"});
  expect_error<InputError>([] { eval::compute_metrics({0.1}, {NAN}, kPyeer); }, {"impostor score 0", "not finite"});
  expect_error<InputError>([] { eval::parse_convention("loose"); }, {"'loose'", "pyeer, strict"});
}

// Brute force: every pair i < j, split by label.
void brute_pairs(const std::vector<int64_t>& id, std::vector<eval::Pair>& gen, std::vector<eval::Pair>& imp) {
  for (int64_t i = 0; i < static_cast<int64_t>(id.size()); ++i) {
    for (int64_t j = i + 1; j < static_cast<int64_t>(id.size()); ++j) (id[i] == id[j] ? gen : imp).emplace_back(i, j);
  }
}

TEST(EvalPairs, AllPairsMatchBruteForce) {
  const std::vector<int64_t> id{7, 3, 7, 3, 3, 9, 7};
  std::vector<eval::Pair> gen, imp;
  brute_pairs(id, gen, imp);
  const eval::PairPlan plan = eval::plan_pairs(id, 0, 0);
  EXPECT_EQ(plan.genuine, gen);
  EXPECT_EQ(plan.identities, 3);
  EXPECT_EQ(plan.single_image_identities, 1);
  ASSERT_TRUE(plan.all_impostors);
  EXPECT_EQ(plan.n_impostor, static_cast<int64_t>(imp.size()));
  EXPECT_EQ(plan.total_impostor_pairs, static_cast<int64_t>(imp.size()));
  // row_offset counts the impostor partners j > i of each row.
  for (size_t i = 0; i < id.size(); ++i) {
    int64_t c = 0;
    for (const auto& p : imp) c += p.first == static_cast<int64_t>(i);
    EXPECT_EQ(plan.row_offset[i + 1] - plan.row_offset[i], c) << "row " << i;
  }
}

TEST(EvalPairs, SampledImpostorsAreDistinctSortedImpostorsAndSeeded) {
  std::vector<int64_t> id;
  for (int k = 0; k < 60; ++k) id.push_back(k / 4);  // 15 identities x 4
  std::vector<eval::Pair> gen, imp;
  brute_pairs(id, gen, imp);
  const std::set<eval::Pair> all_imp(imp.begin(), imp.end());
  for (int64_t wanted : {int64_t{10}, int64_t{1000}, static_cast<int64_t>(imp.size()) - 3}) {  // rejection, Algorithm S
    const eval::PairPlan a = eval::plan_pairs(id, wanted, 5);
    ASSERT_FALSE(a.all_impostors);
    ASSERT_EQ(static_cast<int64_t>(a.impostor.size()), wanted);
    EXPECT_TRUE(std::is_sorted(a.impostor.begin(), a.impostor.end()));
    EXPECT_EQ(std::set<eval::Pair>(a.impostor.begin(), a.impostor.end()).size(), a.impostor.size());
    for (const auto& p : a.impostor) EXPECT_TRUE(all_imp.count(p)) << p.first << "," << p.second;
    EXPECT_EQ(eval::plan_pairs(id, wanted, 5).impostor, a.impostor);
    EXPECT_NE(eval::plan_pairs(id, wanted, 6).impostor, a.impostor);
  }
  EXPECT_TRUE(eval::plan_pairs(id, static_cast<int64_t>(imp.size()), 1).all_impostors);
}

TEST(EvalPairs, SamplingIsUniformOverImpostorPairs) {
  // 1 of 11 impostor pairs (rejection) and 10 of 11 (Algorithm S), over 4400 seeds: every pair is drawn
  // 400 resp. 4000 times in expectation; allow 5 standard deviations.
  const std::vector<int64_t> id{0, 0, 1, 1, 1, 2};
  for (int64_t wanted : {int64_t{1}, int64_t{10}}) {
    std::map<eval::Pair, int> count;
    const int seeds = 4400;
    for (int s = 0; s < seeds; ++s) {
      for (const auto& p : eval::plan_pairs(id, wanted, static_cast<uint64_t>(s)).impostor) ++count[p];
    }
    ASSERT_EQ(count.size(), 11u);
    const double p = static_cast<double>(wanted) / 11, expect = seeds * p, sd = std::sqrt(seeds * p * (1 - p));
    for (const auto& [pair, c] : count) EXPECT_NEAR(c, expect, 5 * sd) << pair.first << "," << pair.second;
  }
}

TEST(EvalPairs, RejectsTooFewIdentitiesAndNoGenuinePair) {
  expect_error<InputError>([] { eval::plan_pairs({4, 4, 4}, 0, 0); }, {"1 identity label", "at least 2"});
  expect_error<InputError>([] { eval::plan_pairs({1, 2, 3}, 0, 0); }, {"no genuine pair", "3 rows"});
  expect_error<InputError>([] { eval::plan_pairs({1, 1, 2, 2}, -1, 0); }, {"--impostor-pairs"});
}

TEST(EvalScores, CosineInClosedForm) {
  const torch::Tensor e = torch::tensor({3.0f, 4.0f, 1.0f, 0.0f, -2.0f, 0.0f}).view({3, 2});
  const eval::CosineScorer s(e);
  EXPECT_DOUBLE_EQ(s(0, 1), 3.0 / 5.0);
  EXPECT_DOUBLE_EQ(s(1, 2), -1.0);
  EXPECT_DOUBLE_EQ(s(0, 0), 1.0);
}

TEST(EvalScores, ValidationNamesFileDatasetAndRows) {
  const torch::Tensor id = torch::tensor({0, 0, 1}, torch::kInt64);
  torch::Tensor e = torch::ones({3, 4});
  EXPECT_NO_THROW(eval::validate_embeddings(e, id, "E.h5"));
  e[1][2] = NAN;
  expect_error<InputError>([&] { eval::validate_embeddings(e, id, "E.h5"); },
                           {"'E.h5'", "'embeddings'", "NaN or Inf", "rows 1"});
  e = torch::ones({3, 4});
  e[2].zero_();
  expect_error<InputError>([&] { eval::validate_embeddings(e, id, "E.h5"); }, {"zero-norm", "rows 2"});
  expect_error<InputError>([&] { eval::validate_embeddings(torch::ones({3, 4}, torch::kFloat64), id, "E.h5"); },
                           {"'embeddings' must be float32 [N, D]", "Double"});
  expect_error<InputError>([&] { eval::validate_embeddings(torch::ones({3, 4}), id.slice(0, 0, 2), "E.h5"); },
                           {"'identity' must be int64 [3]", "[2]"});
}

TEST(EvalEmbed, PreprocessNormalisesAndOrdersChannels) {
  torch::Tensor img = torch::zeros({1, 112, 112, 3}, torch::kUInt8);
  img.select(3, 0).fill_(255);
  img.select(3, 2).fill_(51);
  const torch::Tensor rgb = eval::preprocess_faces(img, false);
  ASSERT_EQ(rgb.sizes(), (std::vector<int64_t>{1, 3, 112, 112}));
  EXPECT_FLOAT_EQ(rgb[0][0][5][7].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(rgb[0][1][5][7].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(rgb[0][2][5][7].item<float>(), (51 - 127.5f) / 127.5f);
  const torch::Tensor bgr = eval::preprocess_faces(img, true);
  EXPECT_FLOAT_EQ(bgr[0][0][5][7].item<float>(), (51 - 127.5f) / 127.5f);
  EXPECT_FLOAT_EQ(bgr[0][2][5][7].item<float>(), 1.0f);
}

TEST(EvalEmbed, ResizeKeepsALinearRampInTheInterior) {
  // 224 -> 112 with a symmetric, normalised (antialiased bilinear) filter: a ramp v(x) = x stays linear; output
  // column c is centred on input coordinate 2c + 0.5, so it holds 2c + 0.5 (away from the borders).
  torch::Tensor img = torch::arange(224, torch::kInt64).to(torch::kUInt8).view({1, 1, 224, 1}).expand({1, 224, 224, 3});
  const torch::Tensor x = eval::preprocess_faces(img.contiguous(), false);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{1, 3, 112, 112}));
  for (int c = 2; c < 110; ++c) {
    EXPECT_NEAR(x[0][1][50][c].item<float>() * 127.5 + 127.5, 2 * c + 0.5, 1e-3) << "column " << c;
  }
  expect_error<InputError>([] { eval::preprocess_faces(torch::zeros({1, 8, 8, 3}), false); }, {"uint8 [B, H, W, 3]"});
}

}  // namespace
