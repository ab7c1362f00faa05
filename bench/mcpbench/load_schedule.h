#pragma once

// When each request of a load run is due, and from when its latency counts.
//
// Closed loop (fixed concurrency): a connection sends its next request as soon as the previous
// reply is in; latency runs from the actual send. Open loop (fixed arrival rate): request i is
// due at start + i / rate whatever happened before it. A connection that is free takes the next
// due request; when that time is still ahead it waits, and when it is already past (the target
// stalled, every connection was busy) it sends at once, but the request's latency still runs
// from the time it was due. That is how a stall shows in the percentiles instead of silently
// lowering the offered load ("coordinated omission").

#include <chrono>
#include <cstdint>

namespace mcpgate::bench {

using load_clock = std::chrono::steady_clock;

struct send_ticket {
  std::uint64_t sequence = 0;         // 0, 1, 2, ... in the order tickets were taken
  load_clock::time_point intended{};  // when the request is due
};

class load_schedule {
 public:
  static load_schedule closed_loop();
  // `rate_per_second` > 0; request 0 is due at `start`.
  static load_schedule open_loop(double rate_per_second, load_clock::time_point start);

  bool is_open_loop() const { return open_loop_; }
  double rate() const { return rate_; }

  // The next request for a connection that became free at `now`. Closed loop: due now. Open
  // loop: due at its slot on the timeline, which may be after `now` (wait until then) or
  // before it (behind schedule: send now).
  send_ticket next(load_clock::time_point now);

  // The latency to record for a request with `ticket`, sent at `sent`, answered at `answered`.
  // Closed loop: answered - sent. Open loop: answered - ticket.intended, which includes the
  // time the request waited behind a stall.
  std::chrono::nanoseconds latency(const send_ticket& ticket, load_clock::time_point sent,
                                   load_clock::time_point answered) const;

  // Open loop: how many requests were due by `now` (the offered load so far).
  std::uint64_t due_by(load_clock::time_point now) const;

 private:
  load_schedule(bool open_loop, double rate, load_clock::time_point start)
      : open_loop_(open_loop), rate_(rate), start_(start) {}

  bool open_loop_;
  double rate_;
  load_clock::time_point start_;
  std::uint64_t next_sequence_ = 0;
};

}  // namespace mcpgate::bench
