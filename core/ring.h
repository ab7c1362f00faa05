#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/uring_compat.h"

namespace mcpgate::core {

// One io_uring, owned by one shard thread. Construct it on that thread: SINGLE_ISSUER binds the
// ring to its creator, and DEFER_TASKRUN runs completion work only when that thread waits, so a
// shard never has kernel work interleaved behind its back.
class ring {
 public:
  // Throws std::runtime_error with one line naming the cause (io_uring disabled by sysctl,
  // blocked by seccomp, kernel too old, an opcode missing) and what to change.
  explicit ring(unsigned entries);
  ~ring();
  ring(const ring&) = delete;
  ring& operator=(const ring&) = delete;

  // A free submission entry; submits what is queued when the SQ is full, so never null.
  io_uring_sqe* sqe();
  // Submits everything queued and waits for at least `wait_nr` completions.
  int submit_and_wait(unsigned wait_nr);

  // The SQE just taken is a send to a socket with nothing else queued, whose completion the
  // kernel almost always posts during the submission itself. The loop's next wait asks for one
  // completion more for each, so it sleeps until something new happens instead of returning at
  // once for the sends' own completions and entering again (two io_uring_enter per call at low
  // load saved). A send that does not complete inline makes that wait end one event later, or
  // at the next tick; see reactor::run.
  void expect_inline_completion() { ++inline_expected_; }
  // How many were marked since the last call, and starts counting again.
  unsigned take_inline_expected() { return std::exchange(inline_expected_, 0u); }

  // Calls f(const io_uring_cqe&) for every ready completion, then advances the CQ once.
  template <typename F>
  unsigned drain(F&& f) {
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      f(*cqe);
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    return seen;
  }

  io_uring* raw() { return &ring_; }

 private:
  io_uring ring_{};
  unsigned inline_expected_ = 0;
};

// Checks once per process that this kernel lets us create a ring with the flags and opcodes
// the gateway depends on. Returns an empty string when it does, otherwise the one-line reason.
std::string probe_io_uring();

// A provided-buffer ring (kernel 5.19+): the kernel picks a free buffer for each multishot recv
// completion. liburing 2.3 has no io_uring_setup_buf_ring, so the ring memory is mapped and
// registered here. Buffers are given back in batches: give_back() queues, publish() makes the
// queued ones visible to the kernel with one store.
class buffer_ring {
 public:
  // count must be a power of two, at most 32768.
  buffer_ring(ring& r, uint16_t group, unsigned count, unsigned size);
  ~buffer_ring();
  buffer_ring(const buffer_ring&) = delete;
  buffer_ring& operator=(const buffer_ring&) = delete;

  uint16_t group() const { return group_; }
  unsigned buffer_size() const { return size_; }
  const char* buffer(uint16_t id) const { return storage_ + size_t{id} * size_; }

  void give_back(uint16_t id);
  void publish();

 private:
  ring& ring_;
  io_uring_buf_ring* br_ = nullptr;
  char* storage_ = nullptr;
  size_t ring_bytes_ = 0;
  uint16_t group_;
  unsigned size_;
  unsigned mask_;
  int pending_ = 0;
};

}  // namespace mcpgate::core
