#include "bench/histogram.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace wsedge::bench {
namespace {

TEST(Histogram, SmallValuesAreExact) {
  Histogram h;
  for (std::uint64_t v = 0; v < 32; ++v) h.record(v);
  EXPECT_EQ(h.count(), 32u);
  EXPECT_EQ(h.percentile(50), 15u);
  EXPECT_EQ(h.percentile(100), 31u);
  EXPECT_EQ(h.max(), 31u);
}

// Each reported percentile is the upper bound of its bucket: never below the true value, and
// at most one bucket (1/32) above it.
TEST(Histogram, PercentilesAreWithinOneBucket) {
  Histogram h;
  for (std::uint64_t v = 1; v <= 100'000; ++v) h.record(v * 1000);  // 1 us .. 100 ms
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    auto truth = static_cast<double>(p / 100.0 * 100'000) * 1000;
    auto got = static_cast<double>(h.percentile(p));
    EXPECT_GE(got, truth) << p;
    EXPECT_LE(got, truth * (1 + 1.0 / 32) + 1000) << p;
  }
  EXPECT_EQ(h.percentile(100), 100'000'000u);  // capped at the largest value seen
}

TEST(Histogram, EmptyReportsZero) {
  Histogram h;
  EXPECT_EQ(h.percentile(99), 0u);
  EXPECT_EQ(h.max(), 0u);
}

// The threaded loader sums its threads' histograms: the sum must equal one histogram that saw
// every value.
TEST(Histogram, MergeEqualsRecordingEverything) {
  Histogram a, b, all;
  for (std::uint64_t v = 1; v < 5000; ++v) {
    std::uint64_t ns = v * v * 37;
    (v % 3 ? a : b).record(ns);
    all.record(ns);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.max(), all.max());
  for (double p : {1.0, 50.0, 99.0, 99.99}) EXPECT_EQ(a.percentile(p), all.percentile(p)) << p;
}

}  // namespace
}  // namespace wsedge::bench
