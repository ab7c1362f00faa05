#include "bench/mcpbench/load_schedule.h"

#include <chrono>

#include <gtest/gtest.h>

#include "bench/mcpbench/latency_histogram.h"

namespace mcpgate::bench {
namespace {

using namespace std::chrono_literals;
using ns = std::chrono::nanoseconds;

// One connection against a simulated upstream that answers in `service` except for the first
// request, which it holds for `stall`. Returns the latency histogram the schedule produces.
latency_histogram simulate(load_schedule schedule, load_clock::time_point start, int requests,
                           ns service, ns stall) {
  latency_histogram h;
  auto now = start;
  for (int i = 0; i < requests; ++i) {
    auto ticket = schedule.next(now);
    // A free connection waits for a request that is not due yet.
    auto sent = std::max(now, ticket.intended);
    auto answered = sent + (i == 0 ? stall : service);
    h.record(static_cast<std::uint64_t>(schedule.latency(ticket, sent, answered).count()));
    now = answered;
  }
  return h;
}

TEST(LoadSchedule, OpenLoopSpacesRequestsAtTheRate) {
  auto start = load_clock::time_point{} + 1s;
  auto s = load_schedule::open_loop(1000, start);
  EXPECT_EQ(s.next(start).intended, start);
  EXPECT_EQ(s.next(start).intended, start + 1ms);
  // Due times come from the timeline, not from when the connection asked.
  EXPECT_EQ(s.next(start + 50ms).intended, start + 2ms);
  auto t = s.next(start);
  EXPECT_EQ(t.sequence, 3u);
  EXPECT_EQ(t.intended, start + 3ms);
}

TEST(LoadSchedule, OpenLoopDoesNotDriftOverAMillionRequests) {
  auto start = load_clock::time_point{} + 1s;
  auto s = load_schedule::open_loop(3, start);  // 333.33... ms apart
  send_ticket last;
  for (int i = 0; i < 1'000'000; ++i) last = s.next(start);
  EXPECT_NEAR(std::chrono::duration<double>(last.intended - start).count(), 999'999.0 / 3, 1e-6);
}

TEST(LoadSchedule, OpenLoopCountsAStalledUpstreamsDelayInTheRequestsThatWaitedBehindIt) {
  // 1000 requests/s on one connection; the upstream answers in 100 us, but holds the first
  // request for 100 ms. Requests 1..99 were due during the stall and are sent late: each one's
  // latency must include the time it waited, (100 - i) ms, not just its 100 us of service.
  auto start = load_clock::time_point{} + 1s;
  auto h = simulate(load_schedule::open_loop(1000, start), start, 1000, 100us, 100ms);
  // Request i < 111 is answered at 100 + 0.1 i ms and was due at i ms, so it records
  // 100 - 0.9 i ms: p95 (the 51st slowest, i = 50) is 55 ms, p99 (i = 10) 91 ms.
  EXPECT_GE(h.percentile(95), 54'000'000u);
  EXPECT_LE(h.percentile(95), 56'000'000u);
  EXPECT_GE(h.percentile(99), 89'000'000u);
  EXPECT_EQ(h.max(), 100'000'000u);
  // Once the backlog is cleared the schedule is kept again and latency is the service time.
  EXPECT_LE(h.percentile(50), 101'000u);
}

TEST(LoadSchedule, ClosedLoopHidesTheSameStallInOneRequest) {
  // The contrast that open loop exists for: closed loop records one slow request and 999 fast
  // ones, as if the stall had hurt one caller only.
  auto start = load_clock::time_point{} + 1s;
  auto h = simulate(load_schedule::closed_loop(), start, 1000, 100us, 100ms);
  EXPECT_LE(h.percentile(99.9), 101'000u);
  EXPECT_EQ(h.max(), 100'000'000u);
}

TEST(LoadSchedule, OpenLoopLatencyStartsAtTheDueTimeNotTheSendTime) {
  auto start = load_clock::time_point{} + 1s;
  auto s = load_schedule::open_loop(10, start);
  s.next(start);
  auto ticket = s.next(start);  // due at start + 100 ms
  auto sent = start + 400ms;    // sent 300 ms late
  EXPECT_EQ(s.latency(ticket, sent, sent + 5ms), 305ms);
  auto closed = load_schedule::closed_loop();
  auto ct = closed.next(start);
  EXPECT_EQ(closed.latency(ct, start, start + 5ms), 5ms);
}

TEST(LoadSchedule, OpenLoopCountsTheRequestsDueByATime) {
  auto start = load_clock::time_point{} + 1s;
  auto s = load_schedule::open_loop(100, start);
  EXPECT_EQ(s.due_by(start - 1ms), 0u);
  EXPECT_EQ(s.due_by(start), 1u);
  EXPECT_EQ(s.due_by(start + 1s - 1ns), 100u);
}

}  // namespace
}  // namespace mcpgate::bench
