#include "core/progress.hpp"

#include "core/log.hpp"

namespace adaptdiff {

Progress::Progress(bool active, int64_t total, int64_t done_before, int64_t mine, double interval_s)
    : active_(active && mine > 0), total_(total), done_before_(done_before), mine_(mine), interval_s_(interval_s),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

void Progress::update(int64_t done_mine) {
  if (!active_) return;
  const auto now = std::chrono::steady_clock::now();
  const bool finished = done_mine >= mine_;
  if (!finished && std::chrono::duration<double>(now - last_).count() < interval_s_) return;
  last_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double fraction = static_cast<double>(done_mine) / static_cast<double>(mine_);
  const auto new_est = static_cast<int64_t>(fraction * static_cast<double>(total_ - done_before_) + 0.5);
  const int64_t done_est = done_before_ + new_est;
  const double rate = elapsed > 0 ? static_cast<double>(new_est) / elapsed : 0.0;
  const double eta = fraction > 0 ? elapsed * (1.0 - fraction) / fraction : 0.0;
  log::info("progress: ~{}/{} images ({:.1f}%), {:.2f} images/s, elapsed {:.0f} s, ETA {:.0f} s", done_est, total_,
            100.0 * static_cast<double>(done_est) / static_cast<double>(total_), rate, elapsed, eta);
}

}  // namespace adaptdiff
