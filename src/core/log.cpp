#include "core/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

namespace adaptdiff::log {
namespace {
int g_rank = 0;  // written once at start-up, before any worker thread exists
}

void configure(int rank, const std::string& level) {
  g_rank = rank;
  auto logger = spdlog::stderr_logger_mt("adaptdiff_r" + std::to_string(rank));
  logger->set_pattern("[%Y-%m-%d %H:%M:%S] [rank " + std::to_string(rank) + "] %^%l%$: %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

int rank() { return g_rank; }

}  // namespace adaptdiff::log
