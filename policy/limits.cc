#include "policy/limits.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "policy/json_writer.h"

namespace mcpgate::policy {

int64_t window_length_ns(window_unit window) {
  constexpr int64_t kSecond = 1'000'000'000;
  switch (window) {
    case window_unit::second:
      return kSecond;
    case window_unit::minute:
      return 60 * kSecond;
    case window_unit::hour:
      return 3600 * kSecond;
    case window_unit::day:
      return 86400 * kSecond;
  }
  return kSecond;
}

std::string_view window_name(window_unit window) {
  switch (window) {
    case window_unit::second:
      return "second";
    case window_unit::minute:
      return "minute";
    case window_unit::hour:
      return "hour";
    case window_unit::day:
      return "day";
  }
  return "second";
}

std::optional<window_unit> parse_window(std::string_view name) {
  for (auto w : {window_unit::second, window_unit::minute, window_unit::hour, window_unit::day}) {
    if (window_name(w) == name) return w;
  }
  return std::nullopt;
}

std::string_view scope_name(limit_scope scope) {
  switch (scope) {
    case limit_scope::grant:
      return "grant";
    case limit_scope::identity:
      return "identity";
    case limit_scope::session:
      return "session";
    case limit_scope::global:
      return "global";
  }
  return "grant";
}

std::optional<limit_scope> parse_scope(std::string_view name) {
  for (auto s :
       {limit_scope::grant, limit_scope::identity, limit_scope::session, limit_scope::global}) {
    if (scope_name(s) == name) return s;
  }
  return std::nullopt;
}

limit_counter::limit_counter(int64_t max, window_unit window)
    : max_(std::clamp<int64_t>(max, 1, kMaxLimitMax)),
      window_(window),
      window_ns_(window_length_ns(window)),
      slots_(new std::atomic<int64_t>[static_cast<size_t>(max_)]) {
  for (int64_t i = 0; i < max_; ++i) slots_[i].store(0, std::memory_order_relaxed);
}

limit_counter::admission limit_counter::try_admit(int64_t now_ns) {
  admission result;
  // 0 marks a never-used slot, so an admission is never recorded at time 0.
  const int64_t now = std::max<int64_t>(now_ns, 1);
  const int64_t free_before = now - window_ns_;  // a slot at or before this has aged out
  const uint32_t n = static_cast<uint32_t>(max_);
  auto take = [&](uint32_t i, int64_t seen) {
    // A failed CAS reloads `seen`; retry while the slot still looks free.
    while (seen == 0 || seen <= free_before) {
      if (slots_[i].compare_exchange_weak(seen, now, std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
        result.admitted = true;
        result.slot = i;
        result.taken = now;
        result.previous = seen;
        return true;
      }
    }
    return false;
  };
  // Slots are taken at the cursor and age out in the order they were taken, so the slot at the
  // cursor is the oldest: free if any is. A few more cover shards racing for the same slot.
  uint32_t start = cursor_.load(std::memory_order_relaxed);
  if (start >= n) start = 0;
  uint32_t i = start;
  for (uint32_t scanned = 0; scanned < std::min(n, kScanSlots); ++scanned) {
    if (take(i, slots_[i].load(std::memory_order_acquire))) {
      cursor_.store(i + 1 == n ? 0 : i + 1, std::memory_order_relaxed);
      return result;
    }
    i = (i + 1 == n) ? 0 : i + 1;
  }
  // Slots given back by refunds lie behind the cursor.
  for (auto& entry : refunded_) {
    uint32_t held = entry.load(std::memory_order_acquire);
    if (held == 0) continue;
    uint32_t slot = held - 1;
    if (take(slot, slots_[slot].load(std::memory_order_acquire))) {
      entry.compare_exchange_strong(held, 0, std::memory_order_acq_rel);
      return result;
    }
  }
  // Denied without a scan of every slot: the oldest admission is the one at the cursor.
  int64_t oldest = slots_[start].load(std::memory_order_acquire);
  result.retry_after_ns = std::max<int64_t>(oldest + window_ns_ - now, 0);
  return result;
}

void limit_counter::refund(const admission& taken) {
  if (!taken.admitted || taken.slot >= static_cast<uint64_t>(max_)) return;
  int64_t expected = taken.taken;
  if (!slots_[taken.slot].compare_exchange_strong(
          expected, taken.previous, std::memory_order_acq_rel, std::memory_order_relaxed))
    return;  // reused since: the count had expired anyway
  // The slot is free again. When it was the last one taken, the cursor steps back onto it;
  // otherwise it is remembered for the next admissions to find.
  const uint32_t n = static_cast<uint32_t>(max_);
  uint32_t after = taken.slot + 1 == n ? 0 : taken.slot + 1;
  if (cursor_.compare_exchange_strong(after, taken.slot, std::memory_order_relaxed)) return;
  for (auto& entry : refunded_) {
    uint32_t empty = 0;
    if (entry.compare_exchange_strong(empty, taken.slot + 1, std::memory_order_acq_rel)) return;
  }
  // More refunds outstanding than entries: this slot is found again when the cursor comes
  // round to it (until then the counter admits fewer, never more).
}

int64_t limit_counter::admitted_in_window(int64_t now_ns) const {
  int64_t count = 0;
  for (int64_t i = 0; i < max_; ++i) {
    int64_t t = slots_[i].load(std::memory_order_acquire);
    if (t != 0 && t > now_ns - window_ns_ && t <= now_ns) ++count;
  }
  return count;
}

int64_t limit_counter::next_free_in_ns(int64_t now_ns) const {
  int64_t count = 0;
  int64_t oldest = INT64_MAX;
  for (int64_t i = 0; i < max_; ++i) {
    int64_t t = slots_[i].load(std::memory_order_acquire);
    if (t != 0 && t > now_ns - window_ns_ && t <= now_ns) {
      ++count;
      oldest = std::min(oldest, t);
    }
  }
  return count < max_ ? 0 : oldest + window_ns_ - now_ns;
}

void limit_counter::seed_from(const limit_counter& older) {
  std::vector<int64_t> times;
  times.reserve(static_cast<size_t>(older.max_));
  for (int64_t i = 0; i < older.max_; ++i) {
    int64_t t = older.slots_[i].load(std::memory_order_acquire);
    if (t != 0) times.push_back(t);
  }
  std::sort(times.begin(), times.end(), std::greater<>());
  if (static_cast<int64_t>(times.size()) > max_) times.resize(static_cast<size_t>(max_));
  // Oldest first, so the cursor ends after the newest as it would have in normal use.
  std::reverse(times.begin(), times.end());
  for (size_t i = 0; i < times.size(); ++i) slots_[i].store(times[i], std::memory_order_release);
  cursor_.store(static_cast<uint32_t>(times.size() % static_cast<size_t>(max_)),
                std::memory_order_relaxed);
}

session_counters::session_counters(int64_t max, window_unit window,
                                   std::shared_ptr<session_counters> older, size_t max_per_identity)
    : max_(max), window_(window), older_(std::move(older)), max_per_identity_(max_per_identity) {}

std::string_view session_counters::owner_of(std::string_view key) {
  return key.substr(0, key.find('\0'));
}

std::shared_ptr<limit_counter> session_counters::find_existing(std::string_view key) {
  stripe& s = stripes_[std::hash<std::string_view>{}(key) % kStripes];
  std::lock_guard lock(s.mutex);
  auto it = s.counters.find(key);
  return it == s.counters.end() ? nullptr : it->second;
}

std::shared_ptr<limit_counter> session_counters::find_or_create(std::string_view key) {
  stripe& s = stripes_[std::hash<std::string_view>{}(key) % kStripes];
  {
    std::lock_guard lock(s.mutex);
    auto it = s.counters.find(key);
    if (it != s.counters.end()) return it->second;
  }
  // First call of this session under this family. Each identity holds a bounded number of
  // session counters, so minting sessions cannot grow memory without end.
  {
    std::lock_guard lock(owners_mutex_);
    size_t& held = owners_[std::string(owner_of(key))];
    if (held >= max_per_identity_) return nullptr;
    ++held;
  }
  auto fresh = std::make_shared<limit_counter>(max_, window_);
  if (older_) {
    if (auto old = older_->find_existing(key)) fresh->seed_from(*old);
  }
  std::lock_guard lock(s.mutex);
  auto [it, inserted] = s.counters.try_emplace(std::string(key), fresh);
  if (!inserted) {
    // Another shard created it meanwhile: this one was never kept.
    std::lock_guard owners(owners_mutex_);
    --owners_[std::string(owner_of(key))];
  }
  return it->second;
}

size_t session_counters::sweep_idle(int64_t now_ns) {
  size_t dropped = 0;
  for (stripe& s : stripes_) {
    std::lock_guard lock(s.mutex);
    for (auto it = s.counters.begin(); it != s.counters.end();) {
      // use_count() == 1: no decision holds it, and none can pick it up while we hold the
      // stripe lock.
      if (it->second.use_count() == 1 && it->second->admitted_in_window(now_ns) == 0) {
        {
          std::lock_guard owners(owners_mutex_);
          auto held = owners_.find(owner_of(it->first));
          if (held != owners_.end() && --held->second == 0) owners_.erase(held);
        }
        it = s.counters.erase(it);
        ++dropped;
      } else {
        ++it;
      }
    }
  }
  return dropped;
}

namespace {

std::string counter_key(std::string_view counter, window_unit window) {
  std::string key(counter);
  key.push_back('\0');
  key += window_name(window);
  return key;
}

}  // namespace

std::shared_ptr<limit_counter> counter_store::fixed(std::string_view counter, window_unit window,
                                                    int64_t max, limit_scope scope,
                                                    std::string_view scope_key) {
  std::string key = counter_key(counter, window);
  key.push_back('\0');
  key += scope_name(scope);
  key.push_back('\0');
  key += scope_key;
  std::lock_guard lock(mutex_);
  auto& slot = fixed_[key];
  if (slot && slot->max() == max) return slot;
  auto fresh = std::make_shared<limit_counter>(max, window);
  if (slot) fresh->seed_from(*slot);
  slot = fresh;
  return fresh;
}

size_t session_counters::size() {
  size_t n = 0;
  for (stripe& s : stripes_) {
    std::lock_guard lock(s.mutex);
    n += s.counters.size();
  }
  return n;
}

std::string counter_store::report_json(int64_t now_ns) {
  std::lock_guard lock(mutex_);
  std::string out = "{\"limits\":[";
  bool first = true;
  for (const auto& [key, counter] : fixed_) {
    // counter \0 window \0 scope \0 scope key
    std::string_view rest = key;
    std::string_view parts[4];
    for (int i = 0; i < 3; ++i) {
      size_t nul = rest.find('\0');
      parts[i] = rest.substr(0, nul);
      rest.remove_prefix(nul == std::string_view::npos ? rest.size() : nul + 1);
    }
    parts[3] = rest;
    if (!first) out += ',';
    first = false;
    out += "{\"counter\":";
    append_json_string(out, parts[0]);
    out += ",\"window\":";
    append_json_string(out, parts[1]);
    out += ",\"scope\":";
    append_json_string(out, parts[2]);
    out += ",\"key\":";
    append_json_string(out, parts[3]);
    out += ",\"used\":";
    append_json_int(out, counter->admitted_in_window(now_ns));
    out += ",\"max\":";
    append_json_int(out, counter->max());
    out += ",\"next_free_ms\":";
    append_json_int(out, (counter->next_free_in_ns(now_ns) + 999'999) / 1'000'000);
    out += '}';
  }
  out += "],\"session_limits\":[";
  first = true;
  for (const auto& [key, family] : sessions_) {
    std::string_view k = key;
    size_t nul = k.find('\0');
    if (!first) out += ',';
    first = false;
    out += "{\"counter\":";
    append_json_string(out, k.substr(0, nul));
    out += ",\"window\":";
    append_json_string(out, nul == std::string_view::npos ? "" : k.substr(nul + 1));
    out += ",\"max\":";
    append_json_int(out, family->max());
    out += ",\"sessions\":";
    append_json_int(out, static_cast<int64_t>(family->size()));
    out += '}';
  }
  out += "]}";
  return out;
}

std::shared_ptr<session_counters> counter_store::sessions(std::string_view counter,
                                                          window_unit window, int64_t max) {
  std::string key = counter_key(counter, window);
  std::lock_guard lock(mutex_);
  auto& slot = sessions_[key];
  if (slot && slot->max() == max) return slot;
  slot = std::make_shared<session_counters>(max, window, slot, max_session_counters_per_identity);
  return slot;
}

size_t counter_store::sweep_idle_sessions(int64_t now_ns) {
  std::lock_guard lock(mutex_);
  size_t dropped = 0;
  for (auto& [key, family] : sessions_) dropped += family->sweep_idle(now_ns);
  return dropped;
}

}  // namespace mcpgate::policy
