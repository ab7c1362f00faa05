#include "core/shard.h"
#include "core/clock.h"
#include "core/stderr_log.h"

#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "core/user_data.h"

namespace mcpgate::core {
namespace {

constexpr uint8_t op_tick = reactor::core_op_base + 0;
constexpr uint8_t op_inbox = reactor::core_op_base + 1;

}  // namespace

reactor::reactor(unsigned id, unsigned shards, mailbox& inbox, unsigned ring_entries,
                 int64_t tick_ns)
    : id_(id), shards_(shards), inbox_(inbox), ring_(ring_entries), tick_ns_(tick_ns) {
  tick_ts_.tv_sec = tick_ns / 1'000'000'000;
  tick_ts_.tv_nsec = tick_ns % 1'000'000'000;
  now_ns_ = monotonic_ns();
}

void reactor::arm_tick() {
  io_uring_sqe* s = ring_.sqe();
  io_uring_prep_timeout(s, &tick_ts_, 0, 0);
  io_uring_sqe_set_data64(s, encode({op_tick, 0, 0}));
}

void reactor::arm_inbox() {
  io_uring_sqe* s = ring_.sqe();
  io_uring_prep_read(s, inbox_.event_fd(), &inbox_value_, sizeof inbox_value_, 0);
  io_uring_sqe_set_data64(s, encode({op_inbox, 0, 0}));
}

void reactor::run(shard_handler& handler) {
  arm_tick();
  arm_inbox();
  int64_t last_tick = now_ns_;
  while (!handler.finished()) {
    // Sends expected to complete inline are waited for too, so a turn that sent a reply sleeps
    // until the next request or response rather than waking for its own send completions.
    int rc = ring_.submit_and_wait(1 + ring_.take_inline_expected());
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
      core::logf(core::log_level::error, "mcpgate: shard %u: io_uring_enter failed: %d", id_, -rc);
    }
    now_ns_ = monotonic_ns();
    bool tick = false, inbox = false;
    ring_.drain([&](const io_uring_cqe& cqe) {
      op_tag t = decode(cqe.user_data);
      if (t.op == op_tick) {
        tick = true;
      } else if (t.op == op_inbox) {
        inbox = true;
      } else {
        handler.on_completion(cqe);
      }
    });
    if (inbox) {
      inbox_.receive([&](const message& m) { handler.on_message(m); });
      arm_inbox();
    }
    if (tick) arm_tick();
    if (now_ns_ - last_tick >= tick_ns_) {
      last_tick = now_ns_;
      handler.on_tick(now_ns_);
    }
    handler.on_batch_end();
  }
}

shard_group::shard_group(unsigned shards, unsigned ring_entries, int64_t tick_ns)
    : ring_entries_(ring_entries), tick_ns_(tick_ns) {
  for (unsigned i = 0; i < shards; ++i) inboxes_.push_back(std::make_unique<mailbox>(shards + 2));
}

shard_group::~shard_group() {
  join();
}

std::string shard_group::start(handler_factory make) {
  std::mutex mu;  // start-up only, never on the request path
  std::condition_variable cv;
  unsigned started = 0;
  std::string first_error;
  unsigned n = size();
  for (unsigned i = 0; i < n; ++i) {
    threads_.emplace_back([this, i, n, &make, &mu, &cv, &started, &first_error] {
      char name[16];
      std::snprintf(name, sizeof name, "mcpgate-%u", i);
      pthread_setname_np(pthread_self(), name);
      std::unique_ptr<reactor> r;
      std::unique_ptr<shard_handler> h;
      std::string error;
      try {
        r = std::make_unique<reactor>(i, n, *inboxes_[i], ring_entries_, tick_ns_);
        h = make(i);
        h->on_start(*r);
      } catch (const std::exception& e) {
        error = e.what();
      }
      {
        std::lock_guard lock(mu);
        ++started;
        if (!error.empty() && first_error.empty()) first_error = error;
      }
      cv.notify_all();
      if (!error.empty()) return;
      r->run(*h);
      h.reset();
    });
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return started == n; });
  return first_error;
}

void shard_group::broadcast(message m) {
  for (auto& inbox : inboxes_) {
    while (!inbox->post(size(), m))
      sched_yield();  // control messages are rare; a full queue drains fast
  }
}

void shard_group::join() {
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

}  // namespace mcpgate::core
