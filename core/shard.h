#pragma once

#include <linux/time_types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/mailbox.h"
#include "core/ring.h"

namespace mcpgate::core {

class reactor;

// What a shard runs. Implemented by the wire layer; core knows no protocol. Every callback runs
// on the shard's own thread.
class shard_handler {
 public:
  virtual ~shard_handler() = default;
  // Called once, before any other callback; the place to arm accepts.
  virtual void on_start(reactor& r) = 0;
  // Every completion whose op is not one of core's own (see reactor::core_op_base).
  virtual void on_completion(const io_uring_cqe& cqe) = 0;
  // About every tick interval: timeouts, flushes.
  virtual void on_tick(int64_t now_ns) = 0;
  virtual void on_message(const message& m) = 0;
  // After each batch of completions (and messages), before the next submission: where work
  // queued during the batch is submitted at once (several writes to one socket become one send).
  virtual void on_batch_end() {}
  // The loop ends when this returns true after a loop turn.
  virtual bool finished() const = 0;
};

// One shard's event loop: its ring, its inbox, its tick.
class reactor {
 public:
  // Ops at or above this value are the reactor's own.
  static constexpr uint8_t core_op_base = 0xf0;

  reactor(unsigned id, unsigned shards, mailbox& inbox, unsigned ring_entries, int64_t tick_ns);
  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  unsigned id() const { return id_; }
  unsigned shards() const { return shards_; }
  ring& io() { return ring_; }
  int64_t now_ns() const { return now_ns_; }

  // Runs until handler.finished().
  void run(shard_handler& handler);

 private:
  void arm_tick();
  void arm_inbox();

  unsigned id_;
  unsigned shards_;
  mailbox& inbox_;
  ring ring_;
  int64_t tick_ns_;
  int64_t now_ns_ = 0;
  __kernel_timespec tick_ts_{};
  uint64_t inbox_value_ = 0;
};

// The shards of the process: one thread and one reactor each. The control thread (main) is
// producer number `shards` in every inbox; producer `shards + 1` is free for one other thread
// of the owner's (the approvals registry: net/approval/registry.h).
class shard_group {
 public:
  using handler_factory = std::function<std::unique_ptr<shard_handler>(unsigned shard)>;

  shard_group(unsigned shards, unsigned ring_entries, int64_t tick_ns);
  ~shard_group();

  // Starts every shard; each builds its handler with `make` on its own thread and calls
  // on_start. Returns once all have started, or the first error as a one-line message.
  std::string start(handler_factory make);
  // Sends m from the control thread to every shard.
  void broadcast(message m);
  void join();

  unsigned size() const { return static_cast<unsigned>(inboxes_.size()); }
  mailbox& inbox(unsigned shard) { return *inboxes_[shard]; }

 private:
  unsigned ring_entries_;
  int64_t tick_ns_;
  std::vector<std::unique_ptr<mailbox>> inboxes_;
  std::vector<std::thread> threads_;
};

}  // namespace mcpgate::core
