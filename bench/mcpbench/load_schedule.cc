#include "bench/mcpbench/load_schedule.h"

#include <cmath>

namespace mcpgate::bench {

load_schedule load_schedule::closed_loop() {
  return load_schedule(false, 0.0, {});
}

load_schedule load_schedule::open_loop(double rate_per_second, load_clock::time_point start) {
  return load_schedule(true, rate_per_second, start);
}

send_ticket load_schedule::next(load_clock::time_point now) {
  send_ticket t{.sequence = next_sequence_++, .intended = now};
  if (open_loop_) {
    // Computed from the sequence number, not by adding intervals, so rounding never drifts.
    auto offset = std::chrono::nanoseconds(
        static_cast<std::int64_t>(std::llround(static_cast<double>(t.sequence) * 1e9 / rate_)));
    t.intended = start_ + offset;
  }
  return t;
}

std::chrono::nanoseconds load_schedule::latency(const send_ticket& ticket,
                                                load_clock::time_point sent,
                                                load_clock::time_point answered) const {
  auto from = open_loop_ ? ticket.intended : sent;
  return answered > from ? answered - from : std::chrono::nanoseconds(0);
}

std::uint64_t load_schedule::due_by(load_clock::time_point now) const {
  if (!open_loop_ || now < start_) return 0;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  return static_cast<std::uint64_t>(std::floor(elapsed * rate_)) + 1;
}

}  // namespace mcpgate::bench
