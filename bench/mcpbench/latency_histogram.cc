#include "bench/mcpbench/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace mcpgate::bench {
namespace {

// Values below 2 * sub_buckets map to themselves; above, each power of two [2^k, 2^(k+1)) is
// split into sub_buckets equal parts. 64-bit values need (64 - sub_bucket_bits) such ranges.
constexpr std::size_t bucket_count =
    (64 - latency_histogram::sub_bucket_bits + 1) * latency_histogram::sub_buckets;

}  // namespace

latency_histogram::latency_histogram() : counts_(bucket_count, 0) {}

std::size_t latency_histogram::bucket_of(std::uint64_t value) {
  if (value < 2 * sub_buckets) return static_cast<std::size_t>(value);
  unsigned msb = 63 - static_cast<unsigned>(std::countl_zero(value));
  unsigned shift = msb - sub_bucket_bits;   // >= 1
  std::uint64_t mantissa = value >> shift;  // in [sub_buckets, 2 * sub_buckets)
  return static_cast<std::size_t>(shift * sub_buckets + mantissa);
}

std::uint64_t latency_histogram::highest_in_bucket(std::size_t bucket) {
  if (bucket < 2 * sub_buckets) return bucket;
  std::uint64_t shift = bucket / sub_buckets - 1;
  std::uint64_t mantissa = bucket - shift * sub_buckets;
  // The top bucket's upper bound is 2^64 - 1; compute it without overflowing.
  return (mantissa << shift) + ((std::uint64_t{1} << shift) - 1);
}

void latency_histogram::record(std::uint64_t value) {
  ++counts_[bucket_of(value)];
  ++count_;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += static_cast<long double>(value);
}

void latency_histogram::merge(const latency_histogram& other) {
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void latency_histogram::clear() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
  sum_ = 0;
}

double latency_histogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
}

std::uint64_t latency_histogram::percentile(double percentile) const {
  if (count_ == 0) return 0;
  if (percentile >= 100.0) return max_;
  percentile = std::max(percentile, 0.0);
  // The rank of the value asked for, 1-based; at least the first value.
  // The relative nudge keeps binary rounding from pushing an exact rank up by one: 99.9% of
  // 1000 values is 999.0000000000001 in doubles, and must be the 999th value.
  auto rank = static_cast<std::uint64_t>(
      std::ceil(percentile / 100.0 * static_cast<double>(count_) * (1.0 - 1e-12)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(highest_in_bucket(i), max_);
  }
  return max_;
}

}  // namespace mcpgate::bench
