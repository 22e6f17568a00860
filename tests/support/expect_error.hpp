#pragma once
// Test helper shared by the GoogleTest binaries: expect an exception of a given type whose message contains
// given strings (messages are part of the user interface: they name files, keys, rows and ranks).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace adaptdiff::test {

/// Runs fn, expects exception E whose message contains every string of `needles`.
template <class E>
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "no exception thrown; expected one containing '" << (needles.empty() ? "" : needles[0]) << "'";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

}  // namespace adaptdiff::test
