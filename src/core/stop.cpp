#include "core/stop.hpp"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <chrono>
#include <csignal>
#include <thread>

#include "core/error.hpp"

namespace adaptdiff::stop {
namespace {

std::atomic<int> g_signal{0};
std::atomic<int64_t> g_first_ns{0};

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // async-signal-safe
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// A launcher may deliver one stop request twice (mpiexec forwards the SIGTERM it got while the ranks got
// it too): repeats within this window are the same request.
constexpr int64_t kSameRequestNs = 2000000000;

extern "C" void on_signal(int sig) {
  const int64_t now = now_ns();
  int64_t expected = 0;
  if (!g_first_ns.compare_exchange_strong(expected, now) && now - expected > kSameRequestNs) {
    // Second signal: leave now. Async-signal-safe calls only.
    static const char msg[] = "adaptdiff: second stop signal, exiting at once (the output stays resumable)\n";
    [[maybe_unused]] const ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(static_cast<int>(ExitCode::kCheckpointed));
  }
  g_signal.store(sig);
}

}  // namespace

std::atomic<double> g_deadline_s{20.0};

void set_deadline(double deadline_s) { g_deadline_s.store(deadline_s); }

void install_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
  std::thread([] {
    while (g_signal.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      const double deadline = g_deadline_s.load();
      if (deadline > 0 && std::chrono::steady_clock::now() - start >= std::chrono::duration<double>(deadline)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    static const char msg[] = "adaptdiff: stop deadline passed, exiting at once (the output stays resumable)\n";
    [[maybe_unused]] const ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(static_cast<int>(ExitCode::kCheckpointed));
  }).detach();
}

bool requested() { return g_signal.load(std::memory_order_relaxed) != 0; }

int signal_number() { return g_signal.load(); }

void request_for_testing() { g_signal.store(SIGUSR1); }

}  // namespace adaptdiff::stop
