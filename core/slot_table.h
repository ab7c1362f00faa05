#pragma once

// A table of reusable slots for the objects a shard owns (connections, children, sessions),
// each with a generation that changes when the slot is freed. Submissions carry {slot, gen}
// (core/user_data.h), so a completion or a message for an object that has gone, and whose slot
// now holds another, is recognised and dropped.

#include <cstdint>
#include <memory>
#include <vector>

#include "core/user_data.h"

namespace mcpgate::core {

// T must have `uint32_t slot`, `uint32_t gen` and `bool live` members (the table sets them).
// Objects stay where they are for the table's life (held by unique_ptr), so references to a
// live one remain valid while it is live.
template <typename T>
class slot_table {
 public:
  // A slot for a new object: a freed one (its object reused, not reconstructed: the caller
  // resets what it needs) or a fresh one. Marks it live.
  T& acquire() {
    uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = static_cast<uint32_t>(items_.size());
      items_.push_back(std::make_unique<T>());
      items_.back()->slot = slot;
    }
    T& item = *items_[slot];
    item.live = true;
    ++live_;
    return item;
  }

  // Frees the object's slot: its generation moves on, so {slot, old gen} no longer finds it.
  void release(T& item) {
    if (!item.live) return;
    item.live = false;
    item.gen = (item.gen + 1) & gen_mask;
    free_.push_back(item.slot);
    --live_;
  }

  // The live object at {slot, gen}, or null.
  T* find(uint32_t slot, uint32_t gen) {
    if (slot >= items_.size()) return nullptr;
    T* item = items_[slot].get();
    return item->live && item->gen == gen ? item : nullptr;
  }

  // The live object in `slot` whatever its generation (for lists of slots the owner keeps
  // consistent itself, such as an idle pool), or null.
  T* at_slot(uint32_t slot) {
    if (slot >= items_.size()) return nullptr;
    T* item = items_[slot].get();
    return item->live ? item : nullptr;
  }

  uint32_t live() const { return live_; }

  // Calls f on every live object, for sweeps (drain, shutdown, timers). f may acquire and
  // release: objects made during the sweep may or may not be visited.
  template <typename F>
  void for_each_live(F&& f) {
    for (size_t i = 0; i < items_.size(); ++i)
      if (items_[i]->live) f(*items_[i]);
  }

 private:
  std::vector<std::unique_ptr<T>> items_;
  std::vector<uint32_t> free_;
  uint32_t live_ = 0;
};

}  // namespace mcpgate::core
