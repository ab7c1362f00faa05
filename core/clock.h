#pragma once

// The two clocks the gateway reads: monotonic for every duration and deadline, real time only
// for the timestamps people read (audit lines). Both are vDSO calls, a few nanoseconds.

#include <time.h>

#include <cstdint>

namespace mcpgate::core {

inline int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

inline int64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

inline constexpr int64_t ns_per_ms = 1'000'000;

}  // namespace mcpgate::core
