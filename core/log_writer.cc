#include "core/log_writer.h"
#include "core/clock.h"
#include "core/stderr_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/shard.h"
#include "core/user_data.h"

namespace mcpgate::core {
namespace {

constexpr int64_t second_ns = 1'000'000'000;

// Failures are reported on stderr at most once per second for the whole process: a full disk
// fails every shard's every retry, and stderr must stay readable (and cheap to write).
std::atomic<int64_t> last_report_ns{0};

bool may_report(int64_t now_ns) {
  int64_t last = last_report_ns.load(std::memory_order_relaxed);
  if (last != 0 && now_ns - last < second_ns) return false;
  return last_report_ns.compare_exchange_strong(last, now_ns, std::memory_order_relaxed);
}

uint64_t count_lines(std::string_view bytes) {
  return static_cast<uint64_t>(std::count(bytes.begin(), bytes.end(), '\n'));
}

}  // namespace

log_file::open_result log_file::open(const std::string& path) {
  if (path == "-") {
    struct stat st {};
    bool regular = fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode);
    return {std::shared_ptr<log_file>(new log_file(STDOUT_FILENO, path, false, regular)), {}};
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    return {nullptr, "cannot open audit log '" + path + "': " + std::strerror(errno)};
  }
  struct stat st {};
  bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  return {std::shared_ptr<log_file>(new log_file(fd, path, true, regular)), {}};
}

log_file::~log_file() {
  if (owned_) ::close(fd_);
}

log_writer::log_writer(ring& r, std::shared_ptr<log_file> file, const log_writer_options& options,
                       uint8_t op_base)
    : ring_(r), options_(options), op_base_(op_base), file_(std::move(file)) {
  // Both buffers get their steady-state size now, and swapping keeps the capacities, so
  // append() does not allocate until a backlog outgrows them.
  fill_.reserve(options_.buffer_bytes + options_.buffer_bytes / 4);
  out_.reserve(options_.buffer_bytes + options_.buffer_bytes / 4);
  now_ns_ = monotonic_ns();
  last_write_ns_ = now_ns_;
  last_sync_ns_ = now_ns_;
}

log_writer::~log_writer() {
  release_token();
}

append_result log_writer::append(std::string_view complete_lines) {
  if (complete_lines.empty()) return append_result::buffered;
  if (closing_ || abandoned_) {
    // A line after flush_and_close() is the owner's bug; it is still counted, never lost quietly.
    drop_lines(complete_lines);
    return append_result::dropped;
  }
  if (options_.on_failure == failure_policy::fail_open &&
      pending_bytes() + complete_lines.size() > options_.max_pending_bytes) {
    drop_lines(complete_lines);
    return append_result::dropped;
  }
  fill_.append(complete_lines);
  if (fill_.size() >= options_.buffer_bytes) pump();
  update_health();
  return append_result::buffered;
}

uint64_t log_writer::drop_lines(std::string_view bytes) {
  uint64_t n = count_lines(bytes);
  stats_.dropped_lines.add(n);
  return n;
}

void log_writer::on_tick(int64_t now_ns) {
  now_ns_ = now_ns;
  if (options_.fsync == fsync_mode::interval && !fsync_in_flight_ && unsynced_bytes_ > 0 &&
      file_->syncable() && now_ns_ - last_sync_ns_ >= second_ns) {
    submit_fsync();
  }
  pump();
  update_health();
}

void log_writer::on_completion(const io_uring_cqe& cqe) {
  uint8_t op = decode(cqe.user_data).op;
  if (op == op_base_) {
    on_write_done(cqe.res);
  } else {
    on_fsync_done(cqe.res);
  }
  pump();
  update_health();
}

void log_writer::set_file(std::shared_ptr<log_file> file) {
  next_file_ = std::move(file);
  pump();
}

void log_writer::flush_and_close() {
  closing_ = true;
  // A write that failed (a full disk, since freed) is retried now rather than after the retry
  // interval, which a drain may not outlast: the rest of a half-written line would be lost
  // and the file left ending inside it. Further failures wait the interval again.
  retry_at_ns_ = now_ns_;
  pump();
}

void log_writer::abandon() {
  if (abandoned_) return;
  abandoned_ = true;
  uint64_t lost = drop_lines(fill_);
  fill_.clear();
  if (!write_in_flight_) {
    lost += drop_lines(std::string_view(out_).substr(out_done_));
    out_.clear();
    out_done_ = 0;
    release_token();
  }
  if (lost > 0) {
    core::logf(core::log_level::warn,
               "mcpgate: audit log %s: gave up on %llu unwritten lines at shutdown",
               file_->path().c_str(), static_cast<unsigned long long>(lost));
  }
  update_health();
}

bool log_writer::busy() const {
  if (write_in_flight_ || fsync_in_flight_) return true;
  return closing_ && !abandoned_ && pending_bytes() > 0;
}

bool log_writer::out_at_line_boundary() const {
  return out_done_ == 0 || out_[out_done_ - 1] == '\n';
}

void log_writer::release_token() {
  if (holds_writer_token_) {
    (write_file_ ? write_file_ : file_)->release_writer();
    holds_writer_token_ = false;
  }
}

void log_writer::switch_file_if_due() {
  if (!next_file_ || write_in_flight_ || holds_writer_token_ || !out_at_line_boundary()) return;
  // What was written to the old file gets its last fdatasync before the switch, so rotating
  // does not weaken the promise fsync makes.
  if (options_.fsync != fsync_mode::none && unsynced_bytes_ > 0 && !fsync_in_flight_ &&
      file_->syncable()) {
    submit_fsync();
  }
  file_ = std::move(next_file_);
  next_file_.reset();
}

// Starts the next write when one is due and none is in flight. Called after every event that
// can make one due: an append past buffer_bytes, a completion, a tick, set_file, close.
void log_writer::pump() {
  if (abandoned_ || write_in_flight_) return;
  // In always mode the fdatasync is linked behind its write; the next write waits for it so a
  // completed write is also a durable one before more are queued.
  if (options_.fsync == fsync_mode::always && fsync_in_flight_) return;
  if (out_done_ == out_.size()) {
    out_.clear();
    out_done_ = 0;
    switch_file_if_due();
    if (fill_.empty()) {
      if (closing_ && options_.fsync != fsync_mode::none && unsynced_bytes_ > 0 &&
          !fsync_in_flight_ && file_->syncable()) {
        submit_fsync();
      }
      return;
    }
    bool due = closing_ || fill_.size() >= options_.buffer_bytes ||
               now_ns_ - last_write_ns_ >= options_.flush_interval_ns;
    if (!due) return;
    out_.swap(fill_);
  } else {
    // Unwritten bytes from a failed or short write go first, before anything newer.
    if (failing_ && now_ns_ < retry_at_ns_) return;
    switch_file_if_due();
  }
  start_write();
}

bool log_writer::start_write() {
  if (!holds_writer_token_) {
    if (!file_->try_acquire_writer()) return false;  // another shard is writing; next event
    holds_writer_token_ = true;
  }
  bool linked_sync = options_.fsync == fsync_mode::always && file_->syncable();
  // A link must not straddle a submission boundary, or the fsync would run unordered.
  if (linked_sync && io_uring_sq_space_left(ring_.raw()) < 2) io_uring_submit(ring_.raw());
  io_uring_sqe* s = ring_.sqe();
  io_uring_prep_write(s, file_->fd(), out_.data() + out_done_,
                      static_cast<unsigned>(out_.size() - out_done_), static_cast<uint64_t>(-1));
  io_uring_sqe_set_data64(s, encode({op_base_, 0, 0}));
  write_in_flight_ = true;
  write_file_ = file_;
  last_write_ns_ = now_ns_;
  if (linked_sync) {
    s->flags |= IOSQE_IO_LINK;
    io_uring_sqe* f = ring_.sqe();
    io_uring_prep_fsync(f, file_->fd(), IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(f, encode({static_cast<uint8_t>(op_base_ + 1), 0, 0}));
    fsync_in_flight_ = true;
    sync_file_ = file_;
  }
  return true;
}

void log_writer::submit_fsync() {
  io_uring_sqe* f = ring_.sqe();
  io_uring_prep_fsync(f, file_->fd(), IORING_FSYNC_DATASYNC);
  io_uring_sqe_set_data64(f, encode({static_cast<uint8_t>(op_base_ + 1), 0, 0}));
  fsync_in_flight_ = true;
  sync_file_ = file_;
  unsynced_bytes_ = 0;
  last_sync_ns_ = now_ns_;
}

void log_writer::on_write_done(int res) {
  write_in_flight_ = false;
  size_t asked = out_.size() - out_done_;
  if (res > 0) {
    out_done_ += static_cast<size_t>(res);
    stats_.bytes_written.add(static_cast<uint64_t>(res));
    if (options_.fsync != fsync_mode::always) unsynced_bytes_ += static_cast<uint64_t>(res);
    if (out_done_ == out_.size()) {
      stats_.flushes.add();
      failing_ = false;
      write_file_->set_failing(false);
    }
    // else: a short write. The rest goes out at once (pump), still holding the token, so no
    // other shard can append between the two halves of a line.
  } else {
    failed(res < 0 ? -res : EIO, res == 0 && asked > 0 ? "write (0 bytes written)" : "write");
  }
  if (abandoned_) {
    drop_lines(std::string_view(out_).substr(out_done_));
    out_.clear();
    out_done_ = 0;
  }
  if (out_done_ == out_.size() || out_at_line_boundary() || abandoned_) {
    // The file ends at a line boundary (or we give up on it): another shard may write.
    if (holds_writer_token_) {
      write_file_->release_writer();
      holds_writer_token_ = false;
    }
  }
  write_file_.reset();
}

void log_writer::on_fsync_done(int res) {
  fsync_in_flight_ = false;
  std::shared_ptr<log_file> synced = std::move(sync_file_);
  // ECANCELED: the linked write before it failed or was short, and is retried with its own
  // fsync. EINVAL: the file turned out not to support syncing (a pipe behind a symlink).
  if (res < 0 && res != -ECANCELED && res != -EINVAL) failed(-res, "fdatasync");
}

void log_writer::failed(int err, const char* what) {
  stats_.failures.add();
  failing_ = true;
  file_->set_failing(true);
  retry_at_ns_ = now_ns_ + options_.retry_interval_ns;
  int64_t now = monotonic_ns();
  if (may_report(now)) {
    core::logf(core::log_level::warn,
               "mcpgate: audit log %s: %s failed: %s; %zu bytes waiting, %llu failures on this "
               "shard, retrying (%s)",
               file_->path().c_str(), what, std::strerror(err), pending_bytes(),
               static_cast<unsigned long long>(stats_.failures.get()),
               options_.on_failure == failure_policy::fail_open
                   ? "fail_open: still serving"
                   : "fail_closed: refusing new calls");
  }
}

void log_writer::update_health() {
  bool ok = !failing_ && !abandoned_ && !file_->failing() &&
            pending_bytes() <= options_.max_pending_bytes;
  healthy_ = ok;
  stats_.healthy.store(ok, std::memory_order_relaxed);
  stats_.pending_bytes.set(pending_bytes());
}

}  // namespace mcpgate::core
