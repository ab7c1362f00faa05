#include "core/timer_wheel.h"

#include <gtest/gtest.h>

#include <vector>

namespace mcpgate::core {
namespace {

constexpr int64_t ms = 1'000'000;

std::vector<uint64_t> fire_until(timer_wheel& w, int64_t now) {
  std::vector<uint64_t> fired;
  w.advance(now, [&](uint64_t tag, int64_t) { fired.push_back(tag); });
  return fired;
}

TEST(TimerWheel, FiresEachEntryOnceAtOrAfterItsDeadline) {
  timer_wheel w(10 * ms, 16);
  w.advance(0, [](uint64_t, int64_t) {});
  w.schedule(25 * ms, 1);
  w.schedule(5 * ms, 2);
  EXPECT_EQ(fire_until(w, 9 * ms), std::vector<uint64_t>{2});
  EXPECT_TRUE(fire_until(w, 24 * ms).empty());
  EXPECT_EQ(fire_until(w, 30 * ms), std::vector<uint64_t>{1});
  EXPECT_TRUE(fire_until(w, 100 * ms).empty());
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, KeepsDeadlinesBeyondOneRevolution) {
  timer_wheel w(10 * ms, 4);  // one revolution is 40 ms
  w.advance(0, [](uint64_t, int64_t) {});
  w.schedule(95 * ms, 7);
  EXPECT_TRUE(fire_until(w, 50 * ms).empty());
  EXPECT_TRUE(fire_until(w, 90 * ms).empty());
  EXPECT_EQ(fire_until(w, 100 * ms), std::vector<uint64_t>{7});
}

TEST(TimerWheel, ALongStallStillFiresEverythingDue) {
  timer_wheel w(10 * ms, 8);
  w.advance(0, [](uint64_t, int64_t) {});
  for (uint64_t i = 0; i < 20; ++i) w.schedule(static_cast<int64_t>(i) * 7 * ms, i);
  EXPECT_EQ(fire_until(w, 10'000 * ms).size(), 20u);
}

TEST(DeadlineSlot, MovingLaterKeepsOneEntryAndRearmsWhenItFires) {
  deadline_slot d;
  EXPECT_TRUE(d.set(100));
  EXPECT_FALSE(d.set(200));  // later: the entry at 100 stays
  EXPECT_EQ(d.on_fire(100, 100), deadline_slot::outcome::rearm);
  EXPECT_EQ(d.on_fire(200, 200), deadline_slot::outcome::expired);
}

TEST(DeadlineSlot, MovingEarlierAddsAnEntryAndTheOldOneIsStale) {
  deadline_slot d;
  EXPECT_TRUE(d.set(200));
  EXPECT_TRUE(d.set(100));
  EXPECT_EQ(d.on_fire(100, 100), deadline_slot::outcome::expired);
  EXPECT_EQ(d.on_fire(200, 200), deadline_slot::outcome::stale);
  d.clear();
  EXPECT_TRUE(d.set(300));
  d.clear();
  EXPECT_EQ(d.on_fire(300, 300), deadline_slot::outcome::stale);
}

}  // namespace
}  // namespace mcpgate::core
