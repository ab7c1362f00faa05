#include "policy/limits.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace mcpgate::policy {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

TEST(LimitCounter, AdmitsMaxCallsPerWindowThenReportsRetryAfter) {
  limit_counter c(3, window_unit::second);
  EXPECT_TRUE(c.try_admit(kSecond).admitted);
  EXPECT_TRUE(c.try_admit(kSecond + 100).admitted);
  EXPECT_TRUE(c.try_admit(kSecond + 200).admitted);
  auto denied = c.try_admit(kSecond + 300);
  EXPECT_FALSE(denied.admitted);
  EXPECT_EQ(denied.retry_after_ns, kSecond - 300);
  EXPECT_TRUE(c.try_admit(2 * kSecond).admitted);  // the first left the window
  EXPECT_FALSE(c.try_admit(2 * kSecond + 99).admitted);
  EXPECT_EQ(c.admitted_in_window(2 * kSecond + 99), 3);
}

TEST(LimitCounter, RefundRestoresTheCounterAsIfTheCallNeverHappened) {
  limit_counter c(1, window_unit::minute);
  auto first = c.try_admit(kSecond);
  ASSERT_TRUE(first.admitted);
  auto second = c.try_admit(kSecond + 61 * kSecond);  // reuses the slot after a window
  ASSERT_TRUE(second.admitted);
  c.refund(second);
  // The slot is back to the first admission, whose window has passed: admits again.
  EXPECT_TRUE(c.try_admit(kSecond + 62 * kSecond).admitted);
}

TEST(LimitCounter, RefundRestoringAnEarlierAdmissionKeepsItsWindow) {
  limit_counter c(1, window_unit::minute);
  ASSERT_TRUE(c.try_admit(100 * kSecond).admitted);
  auto late = c.try_admit(170 * kSecond);
  ASSERT_TRUE(late.admitted);
  c.refund(late);
  // Refunding to 0 instead would let a call at 120s in, two calls within one minute.
  EXPECT_FALSE(c.try_admit(120 * kSecond).admitted);
}

TEST(LimitCounter, ALateRefundAfterTheSlotWasReusedDoesNothing) {
  limit_counter c(1, window_unit::second);
  auto first = c.try_admit(kSecond);
  ASSERT_TRUE(c.try_admit(2 * kSecond).admitted);
  c.refund(first);
  EXPECT_FALSE(c.try_admit(2 * kSecond + 1).admitted);
}

TEST(LimitCounter, SeedFromKeepsTheNewestAdmissions) {
  limit_counter old(5, window_unit::hour);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(old.try_admit(kSecond + i).admitted);
  limit_counter smaller(3, window_unit::hour);
  smaller.seed_from(old);
  EXPECT_EQ(smaller.admitted_in_window(kSecond + 10), 3);
  EXPECT_FALSE(smaller.try_admit(kSecond + 10).admitted);
}

// Eight threads (more than the machine's cores) race on one counter with an injected clock
// that every call advances; every admission time is recorded and every window checked.
TEST(LimitCounter, NeverAdmitsMoreThanMaxInAnyWindowUnderARace) {
  constexpr int64_t kMax = 5;
  constexpr int kThreads = 8;
  constexpr int kCallsPerThread = 150'000;
  constexpr int64_t kTick = 1'000'000;  // 1 ms per call: about 1000 calls per window
  limit_counter counter(kMax, window_unit::second);
  std::atomic<int64_t> clock{kSecond};
  std::vector<std::vector<int64_t>> admitted(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      admitted[t].reserve(kCallsPerThread / 100);
      for (int i = 0; i < kCallsPerThread; ++i) {
        // Each thread's clock reading may be stale by the time it admits: the guarantee
        // must hold in the recorded times whatever the interleaving.
        int64_t now = clock.fetch_add(kTick, std::memory_order_relaxed);
        auto a = counter.try_admit(now);
        if (a.admitted) admitted[t].push_back(a.taken);
      }
    });
  }
  for (auto& th : threads) th.join();

  std::vector<int64_t> all;
  for (auto& v : admitted) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  const int64_t window = window_length_ns(window_unit::second);
  const int64_t windows = (clock.load() - kSecond) / window;
  ASSERT_GT(windows, 1000);
  // No max+1 admissions within one window: admission i and i+max are a window apart.
  size_t violations = 0;
  for (size_t i = 0; i + kMax < all.size(); ++i) {
    if (all[i + kMax] - all[i] < window) ++violations;
  }
  EXPECT_EQ(violations, 0u);
  // And the counter is not trivially denying: close to max per window.
  EXPECT_GE(static_cast<int64_t>(all.size()), (windows - 1) * kMax);
}

TEST(LimitCounter, RefundsRacingAdmissionsNeverBreakTheLimit) {
  constexpr int64_t kMax = 3;
  limit_counter counter(kMax, window_unit::second);
  std::atomic<int64_t> clock{kSecond};
  std::vector<std::vector<int64_t>> kept(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50'000; ++i) {
        int64_t now = clock.fetch_add(500'000, std::memory_order_relaxed);
        auto a = counter.try_admit(now);
        if (!a.admitted) continue;
        if (i % 3 == 0) {
          counter.refund(a);  // the upstream never handled it
        } else {
          kept[t].push_back(a.taken);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<int64_t> all;
  for (auto& v : kept) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + kMax < all.size(); ++i) {
    ASSERT_GE(all[i + kMax] - all[i], kSecond) << "at " << i;
  }
}

TEST(CounterStore, ReturnsTheSameCounterForTheSameNameWindowAndScopeKey) {
  counter_store store;
  auto a = store.fixed("c", window_unit::hour, 3, limit_scope::grant, "ops");
  EXPECT_EQ(a, store.fixed("c", window_unit::hour, 3, limit_scope::grant, "ops"));
  EXPECT_NE(a, store.fixed("c", window_unit::hour, 3, limit_scope::grant, "dev"));
  EXPECT_NE(a, store.fixed("c", window_unit::day, 3, limit_scope::grant, "ops"));
}

TEST(SessionCounters, CreatesOneCounterPerSessionAndSweepsIdleOnes) {
  counter_store store;
  auto family = store.sessions("s", window_unit::second, 1);
  auto one = family->find_or_create("a");
  EXPECT_EQ(one, family->find_or_create("a"));
  EXPECT_NE(one, family->find_or_create("b"));
  ASSERT_TRUE(one->try_admit(kSecond).admitted);
  one.reset();
  EXPECT_EQ(family->sweep_idle(kSecond), 1u);      // "b" never admitted
  EXPECT_EQ(family->sweep_idle(2 * kSecond), 1u);  // "a" aged out
}

TEST(LimitCounter, ARefundedSlotBehindTheCursorIsFoundByTheNextAdmission) {
  limit_counter c(4, window_unit::hour);
  std::vector<limit_counter::admission> taken;
  for (int i = 0; i < 4; ++i) taken.push_back(c.try_admit(kSecond + i));
  ASSERT_FALSE(c.try_admit(kSecond + 10).admitted);
  c.refund(taken[1]);  // not the newest: the cursor cannot step back onto it
  auto again = c.try_admit(kSecond + 11);
  EXPECT_TRUE(again.admitted);
  EXPECT_EQ(again.slot, 1u);
  EXPECT_FALSE(c.try_admit(kSecond + 12).admitted);
  EXPECT_EQ(c.admitted_in_window(kSecond + 12), 4);
}

TEST(LimitCounter, ADenialOfAMillionSlotCounterNamesWhenTheOldestLeaves) {
  limit_counter c(kMaxLimitMax, window_unit::day);
  for (int64_t i = 0; i < kMaxLimitMax; ++i) ASSERT_TRUE(c.try_admit(kSecond + i).admitted);
  auto denied = c.try_admit(2 * kSecond);
  EXPECT_FALSE(denied.admitted);
  EXPECT_EQ(denied.retry_after_ns, kSecond + window_length_ns(window_unit::day) - 2 * kSecond);
}

TEST(SessionCounters, AnIdentityHoldsAtMostItsShareOfSessionCounters) {
  session_counters family(1, window_unit::second, nullptr, 2);
  std::string alice = std::string("alice") + '\0';
  std::string bob = std::string("bob") + '\0';
  auto one = family.find_or_create(alice + "s1");
  ASSERT_TRUE(one);
  ASSERT_TRUE(family.find_or_create(alice + "s2"));
  EXPECT_EQ(family.find_or_create(alice + "s3"), nullptr);
  EXPECT_EQ(family.find_or_create(alice + "s1"), one) << "an existing one is still found";
  EXPECT_TRUE(family.find_or_create(bob + "s1")) << "bob is not held back by alice";
  ASSERT_TRUE(one->try_admit(kSecond).admitted);
  one.reset();
  family.sweep_idle(2 * kSecond);  // every counter idle: alice's share is free again
  EXPECT_TRUE(family.find_or_create(alice + "s3"));
}

TEST(Windows, ParseTheFourNames) {
  EXPECT_EQ(parse_window("second"), window_unit::second);
  EXPECT_EQ(parse_window("day"), window_unit::day);
  EXPECT_FALSE(parse_window("Hour"));
  EXPECT_EQ(window_length_ns(window_unit::day), 86400 * kSecond);
}

}  // namespace
}  // namespace mcpgate::policy
