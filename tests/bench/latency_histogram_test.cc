#include "bench/mcpbench/latency_histogram.h"

#include <cmath>
#include <cstdint>

#include <gtest/gtest.h>

namespace mcpgate::bench {
namespace {

// Within the histogram's promised precision of the true value, and never below it.
void expect_within_precision(std::uint64_t reported, double truth) {
  EXPECT_GE(static_cast<double>(reported), std::floor(truth));
  EXPECT_LE(static_cast<double>(reported),
            truth * (1.0 + 1.0 / latency_histogram::sub_buckets) + 1);
}

TEST(LatencyHistogram, ReportsPercentilesOfAUniformDistributionWithinOnePercent) {
  latency_histogram h;
  // 1 .. 1,000,000 once each: the p-th percentile is p * 10,000.
  for (std::uint64_t v = 1; v <= 1'000'000; ++v) h.record(v);
  EXPECT_EQ(h.count(), 1'000'000u);
  for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99})
    expect_within_precision(h.percentile(p), p * 10'000);
  EXPECT_EQ(h.percentile(100), 1'000'000u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 1'000'000u);
  EXPECT_NEAR(h.mean(), 500'000.5, 0.01);
}

TEST(LatencyHistogram, ReportsPercentilesOfAnExponentialDistributionWithinOnePercent) {
  latency_histogram h;
  // Exact quantiles of an exponential with a mean of 100 us, in ns: the p-th percentile of
  // the recorded values is -ln(1 - p) * mean.
  constexpr int n = 200'000;
  constexpr double mean_ns = 100'000;
  for (int i = 1; i <= n; ++i)
    h.record(
        static_cast<std::uint64_t>(-std::log(1.0 - static_cast<double>(i) / (n + 1)) * mean_ns));
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    double truth = -std::log(1.0 - p / 100.0) * mean_ns;
    EXPECT_NEAR(static_cast<double>(h.percentile(p)), truth, truth * 0.01) << "p" << p;
  }
  EXPECT_NEAR(h.mean(), mean_ns, mean_ns * 0.01);
}

TEST(LatencyHistogram, KeepsSmallValuesExactly) {
  latency_histogram h;
  for (std::uint64_t v : {3, 3, 7, 200, 255}) h.record(v);
  EXPECT_EQ(h.percentile(20), 3u);
  EXPECT_EQ(h.percentile(40), 3u);
  EXPECT_EQ(h.percentile(60), 7u);
  EXPECT_EQ(h.percentile(80), 200u);
  EXPECT_EQ(h.percentile(100), 255u);
}

TEST(LatencyHistogram, NeverReportsAPercentileAboveTheMaximum) {
  latency_histogram h;
  h.record(1'000'001);  // in a bucket whose upper bound is higher
  EXPECT_EQ(h.percentile(50), 1'000'001u);
  EXPECT_EQ(h.percentile(99.9), 1'000'001u);
}

TEST(LatencyHistogram, BucketsCoverEverySixtyFourBitValueInOrder) {
  EXPECT_EQ(latency_histogram::bucket_of(0), 0u);
  EXPECT_EQ(latency_histogram::bucket_of(UINT64_MAX), latency_histogram::bucket_of(UINT64_MAX - 1));
  EXPECT_EQ(latency_histogram::highest_in_bucket(latency_histogram::bucket_of(UINT64_MAX)),
            UINT64_MAX);
  std::size_t previous = 0;
  for (std::uint64_t v = 1; v < (std::uint64_t{1} << 40); v = v * 3 / 2 + 1) {
    std::size_t b = latency_histogram::bucket_of(v);
    EXPECT_GE(b, previous);
    EXPECT_GE(latency_histogram::highest_in_bucket(b), v);
    previous = b;
  }
  latency_histogram h;
  h.record(0);
  h.record(UINT64_MAX);
  EXPECT_EQ(h.percentile(50), 0u);
  EXPECT_EQ(h.percentile(100), UINT64_MAX);
}

TEST(LatencyHistogram, MergedHistogramsReportTheUnionOfTheirValues) {
  latency_histogram low, high, all;
  for (std::uint64_t v = 1; v <= 1000; ++v) {
    (v <= 500 ? low : high).record(v * 1000);
    all.record(v * 1000);
  }
  low.merge(high);
  EXPECT_EQ(low.count(), all.count());
  for (double p : {1.0, 50.0, 75.0, 99.0, 100.0}) EXPECT_EQ(low.percentile(p), all.percentile(p));
  EXPECT_EQ(low.min(), 1000u);
  EXPECT_EQ(low.max(), 1'000'000u);
}

TEST(LatencyHistogram, EmptyHistogramReportsZero) {
  latency_histogram h;
  EXPECT_EQ(h.percentile(50), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
}

}  // namespace
}  // namespace mcpgate::bench
