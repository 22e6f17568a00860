#pragma once
// Progress lines for long runs: images done/total, rate, ETA. Plain lines (no carriage returns), so
// they read well in Slurm logs and terminals alike. Only the reporting rank prints.
#include <chrono>
#include <cstdint>

namespace adaptdiff {

class Progress {
 public:
  /// active: print at all (rank 0); total: samples of the whole run; done_before: samples already in the
  /// file when this run started; mine: samples of this rank in this run, used to extrapolate the global
  /// count without communication (ranks get equal shares up to one batch); interval_s: seconds between lines.
  Progress(bool active, int64_t total, int64_t done_before, int64_t mine, double interval_s);
  /// Reports that this rank has finished `done_mine` of its samples; prints when the interval passed or
  /// this rank is done.
  void update(int64_t done_mine);

 private:
  bool active_;
  int64_t total_, done_before_, mine_;
  double interval_s_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace adaptdiff
