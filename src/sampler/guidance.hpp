#pragma once
// Negative-condition guidance (NegFaceDiff) with step-dependent weights (AdaptDiff).
//
//   eps_hat(x_t, i) = (1 + w_i) * eps(x_t, i, p+) - w_i * eps(x_t, i, p-)
//
// Ref: NegFaceDiff (Caldeira et al.), guidance equation; AdaptDiff: w_i = w_max * (1 - i/T).
// Upstream: NegFaceDiff diffusion/ddpm.py sample_ddpm / sample_ddim; ../shared/docs/idiff-face-model.md 6.2.
//
// Schedules: one class per file in sampler/guidance/ (none, constant, linear, reverse, cosine, interval).
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace adaptdiff::sampler {

/// The [guidance] keys of a run other than `schedule` (name -> value; finite, >= 0).
using GuidanceParams = std::map<std::string, double>;

/// Maps a visited timestep i (0..T-1, counting down during sampling) to the guidance weight w_i >= 0.
/// Each schedule is one class in its own file under sampler/guidance/, whose GuidanceEntry declares its name,
/// the keys it reads (with defaults) and how to make it (with its validation); nothing else changes to add one.
class GuidanceSchedule {
 public:
  virtual ~GuidanceSchedule() = default;
  /// w_i for timestep i of T. i/T is computed as a double-precision division, as upstream does.
  virtual double weight(int64_t i, int64_t T) const = 0;
  /// True when weight() is 0 for every step (the negative branch is never evaluated).
  virtual bool never_guides() const { return false; }
  /// Throws ConfigError when the schedule cannot run on a model of T steps (e.g. a window beyond T).
  virtual void check(int64_t /*T*/) const {}

  /// The config name ("none", "constant", ...).
  const std::string& name() const { return name_; }
  /// Value of a key the schedule reads (given or its default).
  double param(const std::string& key) const { return params_.at(key); }
  /// Its part of the run's fingerprint: "schedule=<name>" then ";<key>=<value>" for every key it reads, in
  /// the order it declares them (values with 17 significant digits), e.g. "schedule=linear;w_max=1".
  std::string fingerprint() const;

 protected:
  /// params: the keys the schedule reads, in its declared order, with their values.
  GuidanceSchedule(std::string name, std::vector<std::pair<std::string, double>> params);

 private:
  std::string name_;
  std::vector<std::pair<std::string, double>> ordered_;
  std::map<std::string, double> params_;
};

/// A key a schedule reads: its name and its default (NaN: required).
struct GuidanceKey {
  const char* name;
  double default_value;
};

/// One row of the table of schedules.
struct GuidanceEntry {
  const char* name;
  std::vector<GuidanceKey> keys;
  /// Makes the schedule from the values of its keys (in the order of `keys`); throws ConfigError for values it
  /// cannot take.
  std::unique_ptr<GuidanceSchedule> (*make)(const std::vector<std::pair<std::string, double>>& values);
};

/// The table of schedules: one entry `schedules::<name>` defined in each file sampler/guidance/<name>.cpp,
/// listed by a source that CMake generates from that folder (so adding a schedule is adding its file).
const std::vector<const GuidanceEntry*>& guidance_table();

/// Builds schedule `name` from `given` (the [guidance] keys). Keys the schedule reads take their default when
/// absent. Throws ConfigError for an unknown name (listing the known ones), a missing required key, a key no
/// schedule reads (a typo), or values the schedule refuses. `unused` (optional) receives the given keys that
/// other schedules read but this one ignores.
std::unique_ptr<GuidanceSchedule> make_guidance_schedule(const std::string& name, const GuidanceParams& given,
                                                         std::vector<std::string>* unused = nullptr);
/// Shorthand for the classic keys: make_guidance_schedule(name, {{"w", w}, {"w_max", w_max}}), ignoring the
/// one the schedule does not read.
std::unique_ptr<GuidanceSchedule> make_guidance_schedule(const std::string& name, double w, double w_max);
/// The names make_guidance_schedule() accepts, sorted.
std::vector<std::string> guidance_schedule_names();

/// Throws ConfigError when `schedule` guides at some step but there is no negative condition
/// (negatives.strategy = "none").
void check_has_negative(const GuidanceSchedule& schedule, bool has_negative);

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
