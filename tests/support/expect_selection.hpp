#pragma once
// GoogleTest predicate: a negatives::Selection equals a brute-force answer exactly (indices, and
// similarity bit patterns; NaN == NaN).
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "brute_force.hpp"
#include "negatives/selection.hpp"

inline ::testing::AssertionResult same_selection(const adaptdiff::negatives::Selection& got,
                                                 const brute::Expected& want) {
  const auto n = static_cast<int64_t>(want.index.size());
  if (!got.negative_index.defined() || got.negative_index.numel() != n || got.negative_similarity.numel() != n) {
    return ::testing::AssertionFailure() << "expected " << n << " rows, got "
                                         << (got.negative_index.defined() ? got.negative_index.numel() : -1);
  }
  if (got.negative_index.scalar_type() != torch::kLong || got.negative_similarity.scalar_type() != torch::kFloat) {
    return ::testing::AssertionFailure() << "wrong dtypes";
  }
  const torch::Tensor index = got.negative_index.contiguous();
  const torch::Tensor sim = got.negative_similarity.contiguous();
  for (int64_t a = 0; a < n; ++a) {
    const int64_t gi = index.data_ptr<int64_t>()[a];
    const float gs = sim.data_ptr<float>()[a];
    if (gi != want.index[static_cast<size_t>(a)] || !brute::same_float(gs, want.similarity[static_cast<size_t>(a)])) {
      char buf[256];
      std::snprintf(buf, sizeof buf, "row %lld: got (%lld, %.9g [0x%08x]) want (%lld, %.9g [0x%08x])",
                    static_cast<long long>(a), static_cast<long long>(gi), gs, brute::bits(gs),
                    static_cast<long long>(want.index[static_cast<size_t>(a)]), want.similarity[static_cast<size_t>(a)],
                    brute::bits(want.similarity[static_cast<size_t>(a)]));
      return ::testing::AssertionFailure() << buf;
    }
  }
  return ::testing::AssertionSuccess();
}
