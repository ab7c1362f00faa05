#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace mcpgate::core {

// A message between threads: small and trivially copyable. `ptr` carries ownership only when
// the kind's documentation says so.
struct message {
  uint32_t kind = 0;
  uint32_t from = 0;
  uint64_t value = 0;
  uint64_t extra = 0;
  void* ptr = nullptr;
};

// The one message kind every shard handler understands: stop accepting, finish what is in
// flight, then let the loop end. Other kinds are the handler's own.
inline constexpr uint32_t message_drain = 1;

// Single-producer single-consumer ring of messages with a fixed capacity (a power of two).
// Lock-free: the producer owns tail_, the consumer owns head_; each reads the other's index
// with acquire and publishes its own with release.
class spsc_queue {
 public:
  explicit spsc_queue(size_t capacity) : slots_(capacity), mask_(capacity - 1) {}

  bool push(const message& m) {
    size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_.load(std::memory_order_acquire) == slots_.size()) return false;
    slots_[tail & mask_] = m;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  bool pop(message& out) {
    size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_.load(std::memory_order_acquire)) return false;
    out = slots_[head & mask_];
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

 private:
  std::vector<message> slots_;
  size_t mask_;
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
};

// A shard's inbox: one SPSC queue per producer (every shard plus the control thread), so no
// producer ever contends with another, and an eventfd the owner's ring reads to wake up.
class mailbox {
 public:
  explicit mailbox(unsigned producers, size_t capacity = 1024)
      : efd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    for (unsigned i = 0; i < producers; ++i)
      queues_.push_back(std::make_unique<spsc_queue>(capacity));
  }
  ~mailbox() { close(efd_); }
  mailbox(const mailbox&) = delete;
  mailbox& operator=(const mailbox&) = delete;

  // Called only by producer `from`. False when that producer's queue is full.
  bool post(unsigned from, message m) {
    m.from = from;
    if (!queues_[from]->push(m)) return false;
    uint64_t one = 1;
    // A non-blocking write to an eventfd never waits; EAGAIN only when the counter would
    // overflow, which means the owner has a wake-up pending anyway.
    [[maybe_unused]] ssize_t n = ::write(efd_, &one, sizeof one);
    return true;
  }

  // Called only by the owner: hands every queued message to f.
  template <typename F>
  void receive(F&& f) {
    message m;
    for (auto& q : queues_)
      while (q->pop(m)) f(m);
  }

  int event_fd() const { return efd_; }

 private:
  int efd_;
  std::vector<std::unique_ptr<spsc_queue>> queues_;
};

}  // namespace mcpgate::core
