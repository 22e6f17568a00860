#pragma once
// Where a rank's time goes: wall seconds per phase of the job, summed by scoped timers, reported at the end
// of a run (shares of the wall time, mean and max over ranks) so that a slow part shows without a profiler.
#include <array>
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace adaptdiff::job {

/// The phases of a rank's work. kWait is time in the per-round agreement (waiting for slower ranks).
enum class Phase : size_t {
  kNegatives,   ///< distributed negative selection
  kVerify,      ///< reading and checking the record of an existing output
  kNoise,       ///< drawing x_T and the per-step noise
  kDenoiser,    ///< network evaluations (on a GPU kernels run asynchronously: the split between denoiser,
                ///< update and decoder is then approximate, their sum is not)
  kUpdate,      ///< guidance combination and sampler updates
  kDecoder,     ///< decoding latents to images and the uint8 conversion
  kWrite,       ///< writing samples and records to the output
  kWait,        ///< agreements at the end of each round: waiting for the other ranks
  kCheckpoint,  ///< collective flushes (durable checkpoints)
  kCount
};

/// Short lower-case names of the phases, in enum order ("negatives", "verify", ...).
inline const std::array<const char*, static_cast<size_t>(Phase::kCount)>& phase_names() {
  static const std::array<const char*, static_cast<size_t>(Phase::kCount)> names{
      "negatives", "verify", "noise", "denoiser", "update", "decoder", "write", "wait", "checkpoint"};
  return names;
}

/// Seconds per phase of one rank.
struct PhaseTimes {
  std::array<double, static_cast<size_t>(Phase::kCount)> seconds{};
  double& operator[](Phase p) { return seconds[static_cast<size_t>(p)]; }
  double operator[](Phase p) const { return seconds[static_cast<size_t>(p)]; }
  std::vector<double> to_vector() const { return {seconds.begin(), seconds.end()}; }
};

/// Adds the wall time from construction to destruction to times[phase].
class PhaseTimer {
 public:
  PhaseTimer(PhaseTimes& times, Phase phase) : times_(times), phase_(phase), start_(Clock::now()) {}
  ~PhaseTimer() { times_[phase_] += std::chrono::duration<double>(Clock::now() - start_).count(); }
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

 private:
  using Clock = std::chrono::steady_clock;
  PhaseTimes& times_;
  Phase phase_;
  Clock::time_point start_;
};

}  // namespace adaptdiff::job
