// Fuzz target: the TOML run configuration (src/config/run_config.cpp, toml_reader.cpp).
// Input: TOML text; leading lines "#set section.key=value" are also passed as --set overrides (up to four).
// The text is written to run.toml in the target's temporary folder and loaded with config::load_run_config,
// which only resolves the paths it names (relative to that folder) and never opens them. A configuration that
// loads must also survive the round trip to_toml -> load -> to_toml unchanged (the output file stores that text
// so that a run can be reproduced); a difference aborts.
// Expected: ConfigError for bad text, never a crash, a hang or another exception type.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/run_config.hpp"
#include "core/error.hpp"
#include "fuzz_support.hpp"

namespace config = adaptdiff::config;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = adaptdiff::fuzz::temp_path("run.toml");
  static const std::string again = adaptdiff::fuzz::temp_path("round_trip.toml");
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  size_t pos = 0;
  while (overrides.size() < 4 && text.compare(pos, 5, "#set ") == 0) {
    const size_t end = text.find('\n', pos);
    overrides.push_back(text.substr(pos + 5, (end == std::string::npos ? text.size() : end) - pos - 5));
    pos = end == std::string::npos ? text.size() : end + 1;
  }
  adaptdiff::fuzz::write_file(path, data, size);
  std::string first;
  try {
    first = config::to_toml(config::load_run_config(path, overrides));
  } catch (const adaptdiff::Error&) {
    return 0;
  }
  adaptdiff::fuzz::write_file(again, reinterpret_cast<const uint8_t*>(first.data()), first.size());
  std::string second;
  try {
    second = config::to_toml(config::load_run_config(again));
  } catch (const adaptdiff::Error& e) {
    std::fprintf(stderr, "round trip: to_toml output does not load again: %s\n--- to_toml:\n%s\n", e.what(),
                 first.c_str());
    std::abort();
  }
  if (second != first) {
    std::fprintf(stderr, "round trip: to_toml changed\n--- first:\n%s\n--- second:\n%s\n", first.c_str(),
                 second.c_str());
    std::abort();
  }
  return 0;
}
