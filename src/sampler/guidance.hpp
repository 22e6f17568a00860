#pragma once
// Negative-condition guidance (NegFaceDiff) with step-dependent weights (AdaptDiff).
//
//   eps_hat(x_t, i) = (1 + w_i) * eps(x_t, i, p+) - w_i * eps(x_t, i, p-)
//
// Ref: NegFaceDiff (Caldeira et al.), guidance equation; AdaptDiff: w_i = w_max * (1 - i/T).
// Upstream: NegFaceDiff diffusion/ddpm.py sample_ddpm / sample_ddim; ../shared/docs/idiff-face-model.md 6.2.
//
// Each schedule is one small class below plus one row in make_guidance_schedule()'s table (guidance.cpp).
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace adaptdiff::sampler {

/// Maps a visited timestep i (0..T-1, counting down during sampling) to the guidance weight w_i >= 0.
class GuidanceSchedule {
 public:
  virtual ~GuidanceSchedule() = default;
  /// w_i for timestep i of T. i/T is computed as a double-precision division, as upstream does.
  virtual double weight(int64_t i, int64_t T) const = 0;
  /// The config name ("none", "constant", ...).
  virtual std::string name() const = 0;
  /// True when weight() is 0 for every step (the negative branch is never evaluated).
  virtual bool never_guides() const { return false; }
};

/// IDiff-Face baseline: w_i = 0 (single forward per step).
class NoGuidance final : public GuidanceSchedule {
 public:
  double weight(int64_t, int64_t) const override { return 0.0; }
  std::string name() const override { return "none"; }
  bool never_guides() const override { return true; }
};

/// NegFaceDiff: w_i = w.
class ConstantGuidance final : public GuidanceSchedule {
 public:
  explicit ConstantGuidance(double w) : w_(w) {}
  double weight(int64_t, int64_t) const override { return w_; }
  std::string name() const override { return "constant"; }
  bool never_guides() const override { return w_ == 0.0; }

 private:
  double w_;
};

/// AdaptDiff: w_i = w_max * (1 - i/T): ~0 at the first (noisiest) step, w_max at i = 0.
class LinearGuidance final : public GuidanceSchedule {
 public:
  explicit LinearGuidance(double w_max) : w_max_(w_max) {}
  double weight(int64_t i, int64_t T) const override {
    return w_max_ * (1.0 - static_cast<double>(i) / static_cast<double>(T));
  }
  std::string name() const override { return "linear"; }
  bool never_guides() const override { return w_max_ == 0.0; }

 private:
  double w_max_;
};

/// Reverse adaptive (ablation): w_i = w_max * i/T: strong early, 0 at i = 0.
class ReverseGuidance final : public GuidanceSchedule {
 public:
  explicit ReverseGuidance(double w_max) : w_max_(w_max) {}
  double weight(int64_t i, int64_t T) const override {
    return w_max_ * (static_cast<double>(i) / static_cast<double>(T));
  }
  std::string name() const override { return "reverse"; }
  bool never_guides() const override { return w_max_ == 0.0; }

 private:
  double w_max_;
};

/// Builds a schedule by config name: "none" | "constant" (uses w) | "linear" | "reverse" (use w_max).
/// Throws ConfigError for an unknown name (listing the known ones) or a negative/non-finite weight.
std::unique_ptr<GuidanceSchedule> make_guidance_schedule(const std::string& name, double w, double w_max);
/// The names make_guidance_schedule() accepts.
std::vector<std::string> guidance_schedule_names();

/// A denoiser evaluation, supplied by the caller (the sampler knows no model):
///   x_t [R,C,H,W] float32, t [R] int64 (the timestep of each row), context [R,D] float32 -> eps [R,C,H,W] float32.
/// Rows are independent; R is B or 2B.
using DenoiseFn =
    std::function<torch::Tensor(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& context)>;

/// Noise prediction for the batch at timestep i: x_t [B,C,H,W] f32 -> eps [B,C,H,W] f32.
using EpsFn = std::function<torch::Tensor(const torch::Tensor& x_t, int64_t i)>;

/// Counts network evaluations (rows of batch) so that plans and summaries report real work.
struct ForwardCounter {
  int64_t calls = 0;  ///< forward passes
  int64_t rows = 0;   ///< total batch rows evaluated
};

/// The guided noise predictor of one batch.
///   context_pos [B,Dctx] f32: identity condition p+ per row.
///   context_neg [B,Dctx] f32 or undefined: negative condition p- per row (undefined = no negative; then
///     every w_i must be 0, else ConfigError at construction via `check`).
/// At steps with w_i = 0 only the positive half runs (batch B); otherwise p+ and p- are evaluated in ONE
/// forward of batch 2B (rows are independent in the UNet) and combined as (1+w_i)*eps+ - w_i*eps-,
/// with the scalars applied to float32 tensors as upstream does.
/// `counter` (optional, lent) accumulates forward statistics.
EpsFn guided_eps(DenoiseFn denoise, torch::Tensor context_pos, torch::Tensor context_neg,
                 const GuidanceSchedule& schedule, int64_t T, ForwardCounter* counter = nullptr);

}  // namespace adaptdiff::sampler
