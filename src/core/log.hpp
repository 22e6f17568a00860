#pragma once
// Rank-aware logging (spdlog underneath). Every line is prefixed with "[rank N]" once the rank is known.
#include <spdlog/spdlog.h>

#include <string>

namespace adaptdiff::log {

/// Sets the rank shown in the prefix of every following line and the minimum level.
/// level: "debug" | "info" | "warn" | "error".
void configure(int rank, const std::string& level = "info");

/// The configured rank (0 before configure()).
int rank();

using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;

}  // namespace adaptdiff::log
