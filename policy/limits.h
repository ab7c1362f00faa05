#pragma once

// Rate-limit counters shared by every shard of the process.
//
// Guarantee: for each (counter, scope key), no interval of length `window` (half-open, in the
// clock the gateway passes as now_ns) ever contains more than `max` admissions, whatever the
// interleaving of the shards. Sliding, not fixed buckets, and exact, not an estimate.
//
// How: a limit_counter is an array of `max` atomic slots, each holding the admission time of
// the call that occupies it (0 = never used). An admission at time t takes a slot whose time
// is <= t - window with one compare-and-swap, so a slot's successive admissions are at least
// one window apart; an interval shorter than a window can hold at most one admission per
// slot, hence at most `max`. A refund swaps the slot back from t to the time it replaced, so a
// refunded call leaves the counter exactly as if it had never been admitted. The scan starts
// at a shared cursor that points after the last slot taken; because slots are taken in time
// order that slot is normally the oldest, so an admission is one load and one CAS.
//
// Cost: 8 bytes per unit of `max` per scope key (a 30-per-hour counter is 240 bytes; a
// 100000-per-day counter is 800 KB, so max is capped at 1,000,000). Every admission writes a
// cache line shared by all shards (about 20-60 ns under contention on two cores); per-core
// counters merged later could not keep the guarantee, and quota leases would only divide
// that traffic at the price of stranding quota on idle shards. A denial reads a handful of
// slots (the oldest is at the cursor), never all `max`. No locks: grant, identity and global
// counters are resolved to limit_counter objects at load; session counters are created at run time
// behind a striped mutex held only for find-or-insert.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "policy/tool_pins.h"

namespace mcpgate::policy {

enum class window_unit : uint8_t { second, minute, hour, day };

int64_t window_length_ns(window_unit window);
std::string_view window_name(window_unit window);
std::optional<window_unit> parse_window(std::string_view name);

// Whose calls a limit counts together.
enum class limit_scope : uint8_t { grant, identity, session, global };

std::string_view scope_name(limit_scope scope);
std::optional<limit_scope> parse_scope(std::string_view name);

inline constexpr int64_t kMaxLimitMax = 1'000'000;

class limit_counter {
 public:
  // The outcome of one try_admit(); keep it to refund the call later.
  struct admission {
    bool admitted = false;
    uint32_t slot = 0;
    int64_t taken = 0;           // the time written into the slot
    int64_t previous = 0;        // the time it replaced, restored by refund()
    int64_t retry_after_ns = 0;  // when denied: until the oldest admission leaves the window
  };

  // max in [1, kMaxLimitMax]; the window is fixed for the counter's life.
  limit_counter(int64_t max, window_unit window);

  limit_counter(const limit_counter&) = delete;
  limit_counter& operator=(const limit_counter&) = delete;

  // Admits a call at now_ns (> 0, from one clock for the whole process) when fewer than max
  // calls were admitted in (now_ns - window, now_ns]. Lock-free, never allocates.
  admission try_admit(int64_t now_ns);

  // Gives back an admission that the upstream never handled. A refund that arrives after the
  // slot was reused (the window has passed) does nothing: the count had expired anyway.
  void refund(const admission& taken);

  // Admissions whose time is in (now_ns - window, now_ns]; for tests and metrics.
  int64_t admitted_in_window(int64_t now_ns) const;
  // How long until a call would be admitted: 0 while fewer than max are in the window, else
  // until the oldest of them leaves it. For /admin/limits.
  int64_t next_free_in_ns(int64_t now_ns) const;

  // Copies the newest admission times of `older` into this (fresh) counter, so a reload
  // that changes max keeps the history. Calls admitted by `older` while the copy runs are
  // not carried over.
  void seed_from(const limit_counter& older);

  int64_t max() const { return max_; }
  window_unit window() const { return window_; }

 private:
  // Slots tried from the cursor before an admission is refused (shards racing for one slot).
  static constexpr uint32_t kScanSlots = 4;

  const int64_t max_;
  const window_unit window_;
  const int64_t window_ns_;
  std::unique_ptr<std::atomic<int64_t>[]> slots_;
  // Its own cache line: every shard writes it on admission.
  alignas(64) std::atomic<uint32_t> cursor_{0};
  // Slots a refund freed behind the cursor, as index + 1 (0: empty).
  std::array<std::atomic<uint32_t>, 4> refunded_{};
};

// Session-scoped counters of one (counter name, window, max): created on first use per
// session key. Find-or-insert takes one of kStripes mutexes chosen by the key's hash; that is
// the only lock on the decide() path, and only for session-scoped limits.
class session_counters {
 public:
  // `max_per_identity`: counters one identity may hold at once (keys are "<identity>\0...").
  session_counters(int64_t max, window_unit window, std::shared_ptr<session_counters> older,
                   size_t max_per_identity = 256);

  // The counter for `key`, created (seeded from the previous family after a reload that
  // changed max) on first use. Allocates only when a session is first seen. Null when the
  // key's identity already holds max_per_identity counters (freed by sweep_idle()).
  std::shared_ptr<limit_counter> find_or_create(std::string_view key);

  // Drops counters nobody holds whose admissions have all left the window.
  size_t sweep_idle(int64_t now_ns);

  int64_t max() const { return max_; }
  window_unit window() const { return window_; }
  // Counters held now, over every session.
  size_t size();

 private:
  static constexpr size_t kStripes = 16;
  struct stripe {
    std::mutex mutex;
    std::map<std::string, std::shared_ptr<limit_counter>, std::less<>> counters;
  };
  std::shared_ptr<limit_counter> find_existing(std::string_view key);
  static std::string_view owner_of(std::string_view key);

  const int64_t max_;
  const window_unit window_;
  const std::shared_ptr<session_counters> older_;
  const size_t max_per_identity_;
  std::array<stripe, kStripes> stripes_;
  std::mutex owners_mutex_;  // taken only when a session's first counter is made or swept
  std::map<std::string, size_t, std::less<>> owners_;
};

// All counters of the process. Created once, before the first access_config, and kept across
// reloads: a config that names a counter with the same name, window and scope key gets the
// same limit_counter (counts survive); if only max changed it gets a new counter seeded with
// the old one's recent admissions. Its methods are control plane (called while loading) and
// thread-safe.
class counter_store {
 public:
  std::shared_ptr<limit_counter> fixed(std::string_view counter, window_unit window, int64_t max,
                                       limit_scope scope, std::string_view scope_key);
  std::shared_ptr<session_counters> sessions(std::string_view counter, window_unit window,
                                             int64_t max);

  // Forgets idle session counters; call it now and then (e.g. once a minute per process).
  size_t sweep_idle_sessions(int64_t now_ns);

  // GET /admin/limits: every grant-, identity- and global-scoped counter with its use now
  // ({"limits":[{"counter","window","scope","key","used","max","next_free_ms"}...]}, sorted by
  // counter and key), and per session-scoped counter the number of sessions holding one.
  std::string report_json(int64_t now_ns);

  // Session-scoped counters one identity may hold per counter (each max x 8 bytes); set before
  // loading (config limits.max_session_counters_per_identity).
  size_t max_session_counters_per_identity = 256;

  // The counts of pinned tools that changed, per server (policy/tool_pins.h): they too outlive
  // reloads.
  pin_counts_store pins;

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<limit_counter>, std::less<>> fixed_;
  std::map<std::string, std::shared_ptr<session_counters>, std::less<>> sessions_;
};

}  // namespace mcpgate::policy
