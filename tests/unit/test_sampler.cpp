// Schedule constants, guidance weights, DDPM/DDIM updates and per-sample noise, checked against closed-form
// values computed independently in float64.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "sampler/guidance.hpp"
#include "sampler/noise.hpp"
#include "sampler/samplers.hpp"
#include "sampler/schedule.hpp"

namespace s = adaptdiff::sampler;

namespace {

double rel_err(const torch::Tensor& out, const torch::Tensor& ref) {
  const auto r = ref.to(torch::kFloat64);
  return (out.to(torch::kFloat64) - r).norm().item<double>() / r.norm().item<double>();
}

TEST(Schedule, LinearMatchesClosedForm) {
  const auto sch = s::Schedule::linear(1000, 1e-4, 0.02);
  // Independent float64 recomputation; float32 storage and log/cumsum/exp give ~1e-6 relative error.
  std::vector<double> beta(1000), abar(1000);
  double prod = 1.0;
  for (int i = 0; i < 1000; ++i) {
    beta[i] = 1e-4 + (0.02 - 1e-4) * i / 999.0;
    prod *= 1.0 - beta[i];
    abar[i] = prod;
  }
  const auto beta_t = torch::tensor(beta, torch::kFloat64);
  const auto abar_t = torch::tensor(abar, torch::kFloat64);
  EXPECT_LT(rel_err(sch.betas, beta_t), 1e-6);
  EXPECT_LT(rel_err(sch.alpha_bars, abar_t), 1e-5);
  EXPECT_LT(rel_err(sch.coef, beta_t / torch::sqrt(1 - abar_t)), 1e-5);
  EXPECT_LT(rel_err(sch.sqrt_alphas_inv, 1 / torch::sqrt(1 - beta_t)), 1e-6);
  EXPECT_FLOAT_EQ(sch.alpha_bar_prev(0), 1.0f);
  EXPECT_EQ(sch.alpha_bar_prev(500), sch.alpha_bar(499));
  // T scaling: betas for T = 500 are 2x larger at both ends.
  const auto half = s::Schedule::linear(500, 1e-4, 0.02);
  EXPECT_NEAR(half.betas[0].item<double>(), 2e-4, 1e-9);
  EXPECT_NEAR(half.betas[499].item<double>(), 0.04, 1e-8);
  EXPECT_THROW(s::Schedule::linear(1, 1e-4, 0.02), adaptdiff::ConfigError);
}

TEST(Guidance, WeightsFollowTheirFormulas) {
  const auto none = s::make_guidance_schedule("none", 0.5, 1.0);
  const auto constant = s::make_guidance_schedule("constant", 0.5, 1.0);
  const auto linear = s::make_guidance_schedule("linear", 0.5, 2.0);
  const auto reverse = s::make_guidance_schedule("reverse", 0.5, 2.0);
  for (int64_t i : {0, 1, 250, 999}) {
    EXPECT_EQ(none->weight(i, 1000), 0.0);
    EXPECT_EQ(constant->weight(i, 1000), 0.5);
    EXPECT_DOUBLE_EQ(linear->weight(i, 1000), 2.0 * (1.0 - i / 1000.0));
    EXPECT_DOUBLE_EQ(reverse->weight(i, 1000), 2.0 * (i / 1000.0));
  }
  EXPECT_DOUBLE_EQ(linear->weight(999, 1000), 0.002);  // weak at the first (noisiest) DDPM step
  EXPECT_TRUE(none->never_guides());
  EXPECT_FALSE(linear->never_guides());
  EXPECT_THROW(s::make_guidance_schedule("bogus", 0.5, 1.0), adaptdiff::ConfigError);
  EXPECT_THROW(s::make_guidance_schedule("constant", std::nan(""), 1.0), adaptdiff::ConfigError);
  EXPECT_THROW(s::make_guidance_schedule("linear", 0.5, -1.0), adaptdiff::ConfigError);
}

TEST(Guidance, CosineFollowsItsClosedForm) {
  // Wang et al. 2024: w_i = w_max (1 - cos(pi (1 - i/T))) / 2, increasing from 0 (i = T) to w_max (i = 0).
  const auto cosine = s::make_guidance_schedule("cosine", s::GuidanceParams{{"w_max", 1.5}});
  const double pi = std::acos(-1.0);
  double previous = -1.0;
  for (int64_t i = 999; i >= 0; --i) {
    const double w = cosine->weight(i, 1000);
    EXPECT_NEAR(w, 1.5 * (1.0 - std::cos(pi * (1000 - i) / 1000.0)) / 2.0, 1e-15) << i;
    EXPECT_GT(w, previous) << "not increasing at " << i;
    previous = w;
  }
  EXPECT_DOUBLE_EQ(cosine->weight(0, 1000), 1.5);
  EXPECT_DOUBLE_EQ(cosine->weight(500, 1000), 0.75);  // half way: (1 - cos(pi/2)) / 2 = 1/2
  EXPECT_NEAR(cosine->weight(1000, 1000), 0.0, 1e-16);
  EXPECT_EQ(cosine->fingerprint(), "schedule=cosine;w_max=1.5");
  EXPECT_TRUE(s::make_guidance_schedule("cosine", s::GuidanceParams{{"w_max", 0.0}})->never_guides());
}

TEST(Guidance, IntervalGuidesOnlyInsideItsWindow) {
  // Kynkaanniemi et al. 2024: w inside [t_start, t_end], 0 outside.
  const auto interval =
      s::make_guidance_schedule("interval", s::GuidanceParams{{"w", 2.0}, {"t_start", 200}, {"t_end", 600}});
  for (int64_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(interval->weight(i, 1000), i >= 200 && i <= 600 ? 2.0 : 0.0) << i;
  }
  EXPECT_EQ(interval->fingerprint(), "schedule=interval;w=2;t_start=200;t_end=600");
  EXPECT_NO_THROW(interval->check(1000));
  EXPECT_THROW(interval->check(600), adaptdiff::ConfigError);  // t_end beyond the model's T - 1
  // w defaults to 0.5; the window is required, whole and ordered.
  EXPECT_EQ(s::make_guidance_schedule("interval", s::GuidanceParams{{"t_start", 1}, {"t_end", 1}})->weight(1, 10), 0.5);
  EXPECT_THROW(s::make_guidance_schedule("interval", s::GuidanceParams{{"t_start", 1}}), adaptdiff::ConfigError);
  EXPECT_THROW(s::make_guidance_schedule("interval", s::GuidanceParams{{"t_start", 5}, {"t_end", 4}}),
               adaptdiff::ConfigError);
  EXPECT_THROW(s::make_guidance_schedule("interval", s::GuidanceParams{{"t_start", 0.5}, {"t_end", 4}}),
               adaptdiff::ConfigError);
}

TEST(Guidance, TableOfSchedulesKeysAndFingerprints) {
  EXPECT_EQ(s::guidance_schedule_names(),
            (std::vector<std::string>{"constant", "cosine", "interval", "linear", "none", "reverse"}));
  // Each schedule reads its own keys (defaults filled in) and fingerprints exactly those.
  EXPECT_EQ(s::make_guidance_schedule("linear", s::GuidanceParams{})->fingerprint(), "schedule=linear;w_max=1");
  EXPECT_EQ(s::make_guidance_schedule("constant", s::GuidanceParams{})->fingerprint(), "schedule=constant;w=0.5");
  EXPECT_EQ(s::make_guidance_schedule("none", s::GuidanceParams{})->fingerprint(), "schedule=none");
  std::vector<std::string> unused;
  const auto linear = s::make_guidance_schedule("linear", s::GuidanceParams{{"w", 0.3}, {"w_max", 2}}, &unused);
  EXPECT_EQ(unused, std::vector<std::string>{"w"});
  EXPECT_EQ(linear->param("w_max"), 2.0);
  // A key no schedule reads is a typo.
  EXPECT_THROW(s::make_guidance_schedule("linear", s::GuidanceParams{{"w_mx", 1}}), adaptdiff::ConfigError);
  // A guiding schedule needs a negative condition; the baseline and w = 0 do not.
  EXPECT_THROW(s::check_has_negative(*linear, false), adaptdiff::ConfigError);
  EXPECT_NO_THROW(s::check_has_negative(*s::make_guidance_schedule("none", s::GuidanceParams{}), false));
  EXPECT_NO_THROW(s::check_has_negative(*s::make_guidance_schedule("constant", 0.0, 0.0), false));
}

TEST(Ddim, TimestepsFollowUpstreamStride) {
  const auto t20 = s::ddim_timesteps(1000, 20);
  ASSERT_EQ(t20.size(), 20u);
  EXPECT_EQ(t20.front(), 950);
  EXPECT_EQ(t20[1], 900);
  EXPECT_EQ(t20.back(), 0);
  // ddim_step 15: skip 66, range(0, 1000, 66) has 16 entries: 990, 924, ..., 66, 0.
  const auto t15 = s::ddim_timesteps(1000, 15);
  ASSERT_EQ(t15.size(), 16u);
  EXPECT_EQ(t15.front(), 990);
  EXPECT_EQ(t15[1], 924);
  EXPECT_EQ(t15[14], 66);
  EXPECT_EQ(t15.back(), 0);
  EXPECT_EQ(s::ddim_timesteps(1000, 1000).size(), 1000u);
  EXPECT_THROW(s::ddim_timesteps(1000, 0), adaptdiff::ConfigError);
  EXPECT_THROW(s::ddim_timesteps(1000, 1001), adaptdiff::ConfigError);
}

TEST(Steps, DdpmAndDdimUpdatesMatchFloat64) {
  const auto sch = s::Schedule::linear(1000, 1e-4, 0.02);
  torch::manual_seed(3);
  const auto x = torch::randn({2, 3, 4, 4});
  const auto eps = torch::randn({2, 3, 4, 4});
  const auto z = torch::randn({2, 3, 4, 4});
  const auto xd = x.to(torch::kFloat64), ed = eps.to(torch::kFloat64), zd = z.to(torch::kFloat64);
  for (int64_t i : {999, 500, 2}) {
    const double beta = sch.betas[i].item<double>(), abar = sch.alpha_bars[i].item<double>();
    const auto ref = 1 / std::sqrt(1 - beta) * (xd - beta / std::sqrt(1 - abar) * ed) + std::sqrt(beta) * zd;
    EXPECT_LT(rel_err(s::ddpm_step(sch, x, eps, i, z), ref), 1e-6) << i;
  }
  // i <= 1: no noise term.
  const double beta1 = sch.betas[1].item<double>(), abar1 = sch.alpha_bars[1].item<double>();
  EXPECT_LT(rel_err(s::ddpm_step(sch, x, eps, 1, torch::Tensor()),
                    1 / std::sqrt(1 - beta1) * (xd - beta1 / std::sqrt(1 - abar1) * ed)),
            1e-6);
  // DDIM eta = 0 from i with skip 50: target alpha_bar_prev[i - skip] = alpha_bar[i - skip - 1].
  const int64_t i = 500, skip = 50;
  const double a = sch.alpha_bars[i].item<double>(), ap = sch.alpha_bars[i - skip - 1].item<double>();
  const auto x0 = (xd - std::sqrt(1 - a) * ed) / std::sqrt(a);
  const auto ref = std::sqrt(ap) * x0 + std::sqrt(1 - ap) * ed;
  // eps is re-derived from x0 in float32 (loses ~1e-6 relative), then recombined.
  EXPECT_LT(rel_err(s::ddim_step(sch, x, eps, i, skip, 0.0, torch::Tensor()), ref), 1e-5);
  // From i = skip and i = 0 the target is clean (a_prev = 1): the output is x0_hat.
  for (int64_t j : {int64_t{50}, int64_t{0}}) {
    const double aj = sch.alpha_bars[j].item<double>();
    EXPECT_LT(rel_err(s::ddim_step(sch, x, eps, j, skip, 0.0, torch::Tensor()),
                      (xd - std::sqrt(1 - aj) * ed) / std::sqrt(aj)),
              1e-5)
        << j;
  }
}

// A stand-in denoiser whose eps is a known function of (x, t, context), recording batch sizes. The sampler
// takes it as a DenoiseFn callback (fn()).
class AffineDenoiser {
 public:
  torch::Tensor eps(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& context) {
    batches.push_back(x_t.size(0));
    const auto c = context.sum(1).view({-1, 1, 1, 1});
    return 0.1 * x_t + c + 0.001 * t.to(torch::kFloat32).view({-1, 1, 1, 1});
  }
  s::DenoiseFn fn() {
    return [this](const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& c) { return eps(x_t, t, c); };
  }
  std::vector<int64_t> batches;
};

// A guiding schedule (never_guides() is false) whose weight is 0 at one timestep and w elsewhere.
class ZeroAtStep final : public s::GuidanceSchedule {
 public:
  ZeroAtStep(int64_t zero_step, double w) : s::GuidanceSchedule("zero-at-step", {}), zero_step_(zero_step), w_(w) {}
  double weight(int64_t i, int64_t) const override { return i == zero_step_ ? 0.0 : w_; }

 private:
  int64_t zero_step_;
  double w_;
};

torch::Tensor steps(int64_t i, int64_t B) { return torch::full({B}, i, torch::kInt64); }

TEST(Guidance, GuidedEpsCombinesOneDoubledForward) {
  AffineDenoiser net;
  const auto pos = torch::ones({3, 4});        // sum 4
  const auto neg = torch::full({3, 4}, 0.5);   // sum 2
  const auto linear = s::make_guidance_schedule("linear", 0.0, 1.0);
  s::ForwardCounter counter;
  const auto fn = s::guided_eps(net.fn(), pos, neg, *linear, 1000, &counter);
  const auto x = torch::randn({3, 2, 2, 2});
  const int64_t i = 250;
  const double w = 1.0 - 250.0 / 1000.0;
  const auto e_pos = 0.1 * x + 4 + 0.25, e_neg = 0.1 * x + 2 + 0.25;
  EXPECT_LT(rel_err(fn(x, i), (1 + w) * e_pos - w * e_neg), 1e-6);
  ASSERT_EQ(net.batches, std::vector<int64_t>{6});  // one forward of 2B rows
  EXPECT_EQ(counter.calls, 1);
  EXPECT_EQ(counter.rows, 6);
  // A guiding schedule without a negative is refused.
  EXPECT_THROW(s::guided_eps(net.fn(), pos, torch::Tensor(), *linear, 1000), adaptdiff::ConfigError);
}

TEST(Guidance, ZeroWeightAtAVisitedStepIsTheConditionalEpsBitForBit) {
  AffineDenoiser net;
  const auto pos = torch::ones({3, 4});
  const auto neg = torch::full({3, 4}, 0.5);
  const auto x = torch::randn({3, 2, 2, 2});
  // i = 500 of T = 1000 is visited by DDPM and by DDIM (steps 10, 20, 50, ...); i = 0 by every sampler.
  // The schedules below guide at other steps, so the negative is given and the w = 0 branch must still
  // return the positive-only forward unchanged: no (1 + 0)*e - 0*e recombination, no negative rows.
  const ZeroAtStep zero_at_500(500, 0.8);
  const auto reverse = s::make_guidance_schedule("reverse", 0.0, 1.5);  // w_i = 1.5 * i/T: 0 at i = 0
  const auto constant0 = s::make_guidance_schedule("constant", 0.0, 0.0);
  const std::vector<std::pair<const s::GuidanceSchedule*, int64_t>> cases{
      {&zero_at_500, 500}, {reverse.get(), 0}, {constant0.get(), 500}};
  for (const auto& [schedule, i] : cases) {
    ASSERT_EQ(schedule->weight(i, 1000), 0.0) << schedule->name();
    s::ForwardCounter counter;
    const auto fn = s::guided_eps(net.fn(), pos, neg, *schedule, 1000, &counter);
    net.batches.clear();
    const auto guided = fn(x, i);
    EXPECT_EQ(net.batches, std::vector<int64_t>{3}) << schedule->name() << ": only the positive half runs";
    EXPECT_EQ(counter.calls, 1) << schedule->name();
    EXPECT_EQ(counter.rows, 3) << schedule->name();
    EXPECT_TRUE(torch::equal(guided, net.eps(x, steps(i, 3), pos))) << schedule->name() << " at i = " << i;
  }
  // The same schedule guides at its other steps: the branch above is the w = 0 case, not a disabled schedule.
  const auto fn = s::guided_eps(net.fn(), pos, neg, zero_at_500, 1000);
  EXPECT_FALSE(torch::equal(fn(x, 499), net.eps(x, steps(499, 3), pos)));
}

TEST(Guidance, SameContextForBothHalvesGivesTheConditionalEps) {
  // p- = p+: (1 + w)*e - w*e = e in exact arithmetic. In float32 the scalars 1 + w and w are rounded (rel.
  // 2^-24 each), so are both products and the difference: the error is below (3 + 4w) * 2^-24 * |e|. The
  // bound used, 4 ulps(1) * (1 + 2w) * max|e| (ulp(1) = 2^-23), is at least twice that.
  AffineDenoiser net;
  const auto ctx = torch::tensor({{0.3f, -1.2f, 2.5f, 0.7f}, {-0.4f, 0.9f, 0.1f, -2.2f}, {1.0f, 1.0f, 1.0f, 1.0f}});
  const auto x = torch::randn({3, 2, 2, 2}) * 7.0;
  const auto check = [&](const s::GuidanceSchedule& schedule, int64_t i) {
    const double w = schedule.weight(i, 1000);
    const auto e = net.eps(x, steps(i, 3), ctx);
    const auto guided = s::guided_eps(net.fn(), ctx, ctx, schedule, 1000)(x, i);
    EXPECT_EQ(net.batches.back(), 6) << "the doubled forward runs at w = " << w;
    const double tol = 4.0 * std::numeric_limits<float>::epsilon() * (1.0 + 2.0 * w) * e.abs().max().item<double>();
    EXPECT_LE((guided - e).abs().max().item<double>(), tol) << schedule.name() << " w = " << w << " at i = " << i;
  };
  for (double w : {0.1, 0.3, 0.5, 1.0, 2.7, 10.0}) check(*s::make_guidance_schedule("constant", w, 0.0), 500);
  // The linear schedule at visited steps (w_i = 1 - i/T > 0 for every i < T).
  const auto linear = s::make_guidance_schedule("linear", 0.0, 1.0);
  for (int64_t i : {999, 500, 1, 0}) check(*linear, i);
}

TEST(Noise, PerSampleStreamsIgnoreBatchComposition) {
  const std::vector<uint64_t> seeds{s::sample_seed(42, 0, 0), s::sample_seed(42, 0, 1), s::sample_seed(42, 7, 3)};
  s::BatchNoise together(seeds, {3, 4, 4});
  s::BatchNoise alone({seeds[2]}, {3, 4, 4});
  s::BatchNoise reversed({seeds[2], seeds[1], seeds[0]}, {3, 4, 4});
  for (int step = 0; step < 3; ++step) {
    const auto a = together.next(), b = alone.next(), c = reversed.next();
    EXPECT_TRUE(torch::equal(a[2], b[0]));
    EXPECT_TRUE(torch::equal(a[0], c[2]));
    EXPECT_FALSE(torch::equal(a[0], a[1]));
  }
  // The stream of one seed equals LibTorch's generator stream for that seed.
  auto gen = at::detail::createCPUGenerator(seeds[0]);
  s::BatchNoise one({seeds[0]}, {3, 4, 4});
  EXPECT_TRUE(torch::equal(one.next()[0], torch::randn({3, 4, 4}, gen)));
  EXPECT_NE(s::sample_seed(42, 0, 1), s::sample_seed(42, 1, 0));
  EXPECT_NE(s::sample_seed(42, 0, 0), s::sample_seed(43, 0, 0));
}

TEST(Samplers, DdpmLoopUsesNoiseOnlyAboveOne) {
  const auto sch = s::Schedule::linear(10, 1e-4, 2e-3);  // betas scaled by 1000/T: 0.01 .. 0.2
  std::vector<int64_t> noise_steps, seen;
  const s::EpsFn zero_eps = [](const torch::Tensor& x, int64_t) { return torch::zeros_like(x); };
  const auto x_T = torch::ones({1, 1, 1, 1});
  const auto out = s::sample_ddpm(
      sch, zero_eps, x_T, [&](int64_t i) { noise_steps.push_back(i); return torch::zeros({1, 1, 1, 1}); },
      [&](int64_t i, const torch::Tensor&) { seen.push_back(i); });
  EXPECT_EQ(noise_steps, (std::vector<int64_t>{9, 8, 7, 6, 5, 4, 3, 2}));
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_EQ(seen.back(), 0);
  // With eps = 0 and z = 0 the result is x_T * prod(1/sqrt(alpha_i)) = 1/sqrt(alpha_bar_0..9).
  double expected = 1.0;
  for (int i = 0; i < 10; ++i) expected /= std::sqrt(1.0 - sch.betas[i].item<double>());
  EXPECT_NEAR(out.item<double>(), expected, 1e-5 * expected);
  using Kind = s::SamplerSpec::Kind;
  EXPECT_EQ(s::noise_draws_per_sample({Kind::kDdpm, 1000, 0.0}, 1000), 998);
  EXPECT_EQ(s::noise_draws_per_sample({Kind::kDdim, 20, 0.0}, 1000), 0);
  EXPECT_EQ(s::noise_draws_per_sample({Kind::kDdim, 20, 0.5}, 1000), 19);
}

}  // namespace
