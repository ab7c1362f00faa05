#pragma once

// An append-only line writer for one shard, on that shard's io_uring. It knows no protocol:
// the audit log hands it complete JSON lines, but any newline-terminated text works.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "core/ring.h"

namespace mcpgate::core {

// The file every shard's writer appends to: an fd opened with O_APPEND (or stdout for "-") and
// its path. Shared between shards; the fd is closed when the last writer lets go of it, which is
// after its last write completed, so no submission ever refers to a closed (or reused) fd.
class log_file {
 public:
  struct open_result {
    std::shared_ptr<log_file> file;  // null on failure
    std::string error;               // one line naming the path and the cause
  };

  // Control plane. "-" is stdout (never closed by us). Anything else is created if missing
  // (mode 0640) and opened O_WRONLY | O_APPEND | O_CLOEXEC.
  static open_result open(const std::string& path);
  // A fresh log_file for the same path (logrotate: the old file was renamed away). Hand the
  // result to every shard's writer with log_writer::set_file().
  open_result reopen() const { return open(path_); }

  ~log_file();
  log_file(const log_file&) = delete;
  log_file& operator=(const log_file&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // fdatasync means something only for regular files; on pipes and ttys it fails with EINVAL.
  bool syncable() const { return syncable_; }

  // At most one writer in the process has a write in flight on this file. O_APPEND alone
  // keeps whole writes from interleaving on regular files, but not a short write (ENOSPC
  // mid-buffer) followed by another shard's append, and not writes to a pipe larger than
  // PIPE_BUF. The holder keeps the token until the file ends at a line boundary again.
  bool try_acquire_writer() { return !writing_.exchange(true, std::memory_order_acquire); }
  void release_writer() { writing_.store(false, std::memory_order_release); }

  // Whether the last write or fsync any writer tried on this file failed. A writer waiting for
  // the token behind a failing holder reports unhealthy too, instead of buffering in silence.
  bool failing() const { return failing_.load(std::memory_order_relaxed); }
  void set_failing(bool failing) { failing_.store(failing, std::memory_order_relaxed); }

 private:
  log_file(int fd, std::string path, bool owned, bool syncable)
      : fd_(fd), path_(std::move(path)), owned_(owned), syncable_(syncable) {}

  int fd_;
  std::string path_;
  bool owned_;
  bool syncable_;
  std::atomic<bool> writing_{false};
  std::atomic<bool> failing_{false};
};

enum class fsync_mode : uint8_t {
  none,      // page cache only: a machine crash loses what the kernel had not written back
  interval,  // fdatasync about once a second: a crash loses at most the last second or so
  always,    // fdatasync after every write: a crash loses only lines not yet written
};

enum class failure_policy : uint8_t {
  fail_open,    // keep serving; past max_pending_bytes, new lines are dropped and counted
  fail_closed,  // the owner refuses new calls while !healthy(); nothing is ever dropped
};

struct log_writer_options {
  // A line waits at most this long (plus one tick) before it is written.
  int64_t flush_interval_ns = 50'000'000;
  // A write starts as soon as the fill buffer holds this many bytes.
  size_t buffer_bytes = 256 * 1024;
  fsync_mode fsync = fsync_mode::none;
  failure_policy on_failure = failure_policy::fail_closed;
  // Unwritten bytes this writer may hold. Past it, fail_open drops new lines (counted) and
  // fail_closed reports !healthy() so the owner stops taking calls until the backlog drains.
  size_t max_pending_bytes = 64 * 1024 * 1024;
  // How often failed writes are retried.
  int64_t retry_interval_ns = 50'000'000;
};

// Counters one writer updates (single writer: relaxed load + store, no locked instruction)
// and any thread may read (the metrics renderer).
struct log_writer_stats {
  struct counter {
    std::atomic<uint64_t> v{0};
    void add(uint64_t n = 1) {
      v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void set(uint64_t n) { v.store(n, std::memory_order_relaxed); }
    uint64_t get() const { return v.load(std::memory_order_relaxed); }
  };
  counter bytes_written;  // bytes the kernel accepted
  counter flushes;        // buffers written completely
  counter failures;       // failed writes and fsyncs (each attempt counts)
  counter dropped_lines;  // fail_open only, past max_pending_bytes
  counter pending_bytes;  // gauge: accepted by append() but not yet written
  std::atomic<bool> healthy{true};
};

// Outcome of one append() call.
enum class append_result : uint8_t {
  buffered,  // will be written (or retried until it is)
  dropped,   // fail_open past max_pending_bytes: counted in dropped_lines, not written
};

// Per-shard, append-only line writer on the shard's ring. Two buffers: one filled by append(),
// one being written by a single IORING_OP_WRITE at offset -1 (the O_APPEND end). Every write
// holds whole lines, so writers on different shards sharing one file never interleave inside a
// line. One write is in flight at a time, so this writer's lines reach the file in order.
//
// Lifecycle: construct on the shard thread after the ring; the owner forwards every completion
// whose op owns() claims, and calls on_tick() from its own tick. On drain, call
// flush_and_close() and keep the loop running while busy(); if the deadline passes first (the
// disk stays full), call abandon() and keep running while busy() to let in-flight submissions
// complete (they point into this object). Destroy only when !busy().
//
// Not thread-safe: every member function runs on the shard thread. stats() may be read
// anywhere.
class log_writer {
 public:
  // Ops op_base and op_base + 1 are this writer's (see core/user_data.h).
  static constexpr uint8_t op_count = 2;

  log_writer(ring& r, std::shared_ptr<log_file> file, const log_writer_options& options,
             uint8_t op_base);
  ~log_writer();
  log_writer(const log_writer&) = delete;
  log_writer& operator=(const log_writer&) = delete;

  bool owns(uint8_t op) const { return op >= op_base_ && op < op_base_ + op_count; }
  void on_completion(const io_uring_cqe& cqe);
  void on_tick(int64_t now_ns);

  // `complete_lines` is zero or more lines, each ending in '\n'. Never blocks; copies into the
  // fill buffer (no allocation unless the backlog outgrows the buffers) and queues a write
  // (submitted by the reactor's next submit) when the buffer passes buffer_bytes.
  append_result append(std::string_view complete_lines);

  // Switches to `file` (a reopened log) at the next write that starts at a line boundary; lines
  // not yet written go to the new file.
  void set_file(std::shared_ptr<log_file> file);

  // Writes whatever is buffered now, then stays closed: later appends are dropped and counted.
  void flush_and_close();
  // Gives up on unwritten lines (counted as dropped, reported on stderr). For a drain deadline.
  void abandon();
  // True while a submission is in flight, or after flush_and_close() while lines remain
  // unwritten. The shard loop must keep running while this is true.
  bool busy() const;

  // False from a failed write until a write succeeds again (this writer's or, for a shared file,
  // any writer's), and while the backlog is past max_pending_bytes. Under fail_closed the owner
  // refuses new calls while this is false.
  bool healthy() const { return healthy_; }
  size_t pending_bytes() const { return (out_.size() - out_done_) + fill_.size(); }
  const log_writer_stats& stats() const { return stats_; }
  const log_writer_options& options() const { return options_; }

 private:
  void pump();
  bool start_write();
  void submit_fsync();
  void on_write_done(int res);
  void on_fsync_done(int res);
  void failed(int err, const char* what);
  void update_health();
  bool out_at_line_boundary() const;
  void switch_file_if_due();
  void release_token();
  uint64_t drop_lines(std::string_view bytes);

  ring& ring_;
  log_writer_options options_;
  uint8_t op_base_;
  std::shared_ptr<log_file> file_;        // where the next write goes
  std::shared_ptr<log_file> next_file_;   // set_file() waiting for a line boundary
  std::shared_ptr<log_file> write_file_;  // target of the write in flight
  std::shared_ptr<log_file> sync_file_;   // target of the fsync in flight
  bool holds_writer_token_ = false;

  std::string fill_;     // appended to
  std::string out_;      // being written, from out_done_
  size_t out_done_ = 0;  // bytes of out_ the kernel accepted

  bool write_in_flight_ = false;
  bool fsync_in_flight_ = false;
  bool closing_ = false;
  bool abandoned_ = false;
  bool failing_ = false;  // the last write or fsync failed
  bool healthy_ = true;
  int64_t now_ns_ = 0;
  int64_t last_write_ns_ = 0;
  int64_t retry_at_ns_ = 0;
  int64_t last_sync_ns_ = 0;
  uint64_t unsynced_bytes_ = 0;
  log_writer_stats stats_;
};

}  // namespace mcpgate::core
