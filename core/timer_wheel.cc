#include "core/timer_wheel.h"

namespace mcpgate::core {

timer_wheel::timer_wheel(int64_t tick_ns, size_t buckets)
    : tick_ns_(tick_ns), mask_(buckets - 1), buckets_(buckets) {}

void timer_wheel::schedule(int64_t deadline_ns, uint64_t tag) {
  int64_t tick = deadline_ns / tick_ns_;
  // A deadline already behind the wheel's hand goes in the next bucket it will visit.
  if (next_tick_ >= 0 && tick < next_tick_) tick = next_tick_;
  buckets_[static_cast<size_t>(tick) & mask_].push_back({deadline_ns, tag});
  ++size_;
}

}  // namespace mcpgate::core
