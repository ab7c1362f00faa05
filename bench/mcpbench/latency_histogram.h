#pragma once

// A latency histogram in the manner of HdrHistogram: log-linear buckets, so every recorded
// value is kept to within 1/128 (0.8%) of itself from nanoseconds to centuries, in a fixed
// 59 KiB array. Recording is one index computation and one increment, cheap enough to do for
// every request of a load run; histograms of several load threads merge by addition.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mcpgate::bench {

class latency_histogram {
 public:
  // Values below this are kept exactly; above it, to within 1/sub_buckets of the value.
  static constexpr unsigned sub_bucket_bits = 7;
  static constexpr std::uint64_t sub_buckets = std::uint64_t{1} << sub_bucket_bits;

  latency_histogram();

  void record(std::uint64_t value);
  void merge(const latency_histogram& other);
  void clear();

  std::uint64_t count() const { return count_; }
  // min() and max() are exact; both are 0 when nothing was recorded.
  std::uint64_t min() const { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const { return max_; }
  double mean() const;

  // The value at `percentile` (0 to 100): the smallest bucket such that at least that share of
  // the recorded values fall in it or below, reported as the highest value the bucket holds
  // (so a percentile never understates), capped at max(). percentile(100) is max(); 0 when
  // nothing was recorded.
  std::uint64_t percentile(double percentile) const;

  // The bucket a value falls in, and the highest value of a bucket; public for tests.
  static std::size_t bucket_of(std::uint64_t value);
  static std::uint64_t highest_in_bucket(std::size_t bucket);

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
  // Sum in long double: 10^9 values of 10^9 ns would overflow 64 bits.
  long double sum_ = 0;
};

}  // namespace mcpgate::bench
