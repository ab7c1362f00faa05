#pragma once

// A hashed timer wheel for one shard: deadlines of connections, exchanges and children fire
// from the tick without the tick scanning every object. Entries are never removed early:
// an owner whose deadline moved keeps at most one entry per deadline kind (see deadline_slot)
// and ignores an entry that no longer matches.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mcpgate::core {

class timer_wheel {
 public:
  // `tick_ns`: the granularity (deadlines fire up to one tick late). `buckets`: a power of two;
  // deadlines further than buckets * tick_ns away go round the wheel more than once.
  explicit timer_wheel(int64_t tick_ns, size_t buckets = 4096);

  // `tag` is the owner's (core/user_data.h encoding, say); it comes back to fire().
  void schedule(int64_t deadline_ns, uint64_t tag);

  // Calls fire(tag, deadline_ns) for every entry whose deadline is at or before now_ns. fire
  // may schedule new entries.
  template <typename F>
  void advance(int64_t now_ns, F&& fire) {
    int64_t until = now_ns / tick_ns_;
    if (next_tick_ < 0) next_tick_ = until;
    // After a long stall one pass over the whole wheel covers every bucket.
    if (until - next_tick_ >= static_cast<int64_t>(buckets_.size()))
      next_tick_ = until - static_cast<int64_t>(buckets_.size()) + 1;
    // The current tick's bucket is visited again next time: an entry may be added to it
    // (a deadline already due) after this pass.
    for (int64_t tick = next_tick_; tick <= until; ++tick) {
      std::vector<entry>& bucket = buckets_[static_cast<size_t>(tick) & mask_];
      if (bucket.empty()) continue;
      due_.clear();
      size_t kept = 0;
      for (const entry& e : bucket) {
        if (e.deadline_ns <= now_ns)
          due_.push_back(e);
        else
          bucket[kept++] = e;  // a later revolution
      }
      bucket.resize(kept);
      size_ -= due_.size();
      for (const entry& e : due_) fire(e.tag, e.deadline_ns);
    }
    next_tick_ = until;
  }

  size_t size() const { return size_; }

 private:
  struct entry {
    int64_t deadline_ns;
    uint64_t tag;
  };
  int64_t tick_ns_;
  size_t mask_;
  std::vector<std::vector<entry>> buckets_;
  std::vector<entry> due_;
  int64_t next_tick_ = -1;
  size_t size_ = 0;
};

// One deadline of an object, kept on a wheel with at most one live entry: moving the deadline
// later leaves the entry where it is (it re-arms itself when it fires early), moving it earlier
// adds one.
struct deadline_slot {
  int64_t deadline_ns = 0;  // 0: none
  int64_t armed_ns = 0;     // the deadline of this object's live wheel entry, 0: none

  // Sets the deadline; true when the caller must schedule an entry at `deadline_ns`.
  bool set(int64_t at_ns) {
    deadline_ns = at_ns;
    if (at_ns == 0 || (armed_ns != 0 && armed_ns <= at_ns)) return false;
    armed_ns = at_ns;
    return true;
  }
  void clear() { deadline_ns = 0; }

  enum class outcome : uint8_t { stale, rearm, expired };
  // An entry for this object fired at `fired_ns` (its deadline) with the clock at `now_ns`.
  // stale: not the live entry; rearm: the deadline moved later, schedule it at deadline_ns;
  // expired: the deadline has passed.
  outcome on_fire(int64_t fired_ns, int64_t now_ns) {
    if (fired_ns != armed_ns) return outcome::stale;
    armed_ns = 0;
    if (deadline_ns == 0) return outcome::stale;
    if (deadline_ns > now_ns) {
      armed_ns = deadline_ns;
      return outcome::rearm;
    }
    return outcome::expired;
  }
};

}  // namespace mcpgate::core
