// The catalogue's MCP client over stdio: a child started in its own process group, spoken to
// with newline-delimited JSON-RPC, its stderr kept for the error message when it fails.

#include "tools/mcpgate/mcp_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "core/build_info.h"
#include "core/child_process.h"
#include "net/address.h"
#include "net/http/chunked.h"
#include "net/http/parser.h"
#include "net/http/sse.h"
#include "policy/json_writer.h"
#include "tools/mcpgate/mcp_transport_parts.h"

extern char** environ;

namespace mcpgate::tools {

using namespace transport_detail;

namespace {

class stdio_transport final : public mcp_transport {
 public:
  stdio_transport(const core::spawn_options& command, mcp_deadline deadline,
                  std::int64_t timeout_ms)
      : deadline_(deadline), timeout_ms_(timeout_ms) {
    for (const std::string& a : command.argv) {
      if (!command_line_.empty()) command_line_ += ' ';
      command_line_ += a;
    }
    spawn(command);
  }

  ~stdio_transport() override { stop(); }

  std::string request(const std::string& message, std::int64_t id,
                      std::string_view method) override {
    write_line(message, method);
    for (;;) {
      std::string line = read_line(method);
      received r = sort_message(line, id);
      switch (r.kind) {
        case message_kind::awaited_response:
          return line;
        case message_kind::server_request:
          // The client declared no capabilities, so the server has nothing to ask; answer so
          // that it does not wait.
          write_line("{\"jsonrpc\":\"2.0\",\"id\":" + r.server_request_id +
                         ",\"error\":{\"code\":-32601,\"message\":\"Method not found\"}}",
                     method);
          break;
        case message_kind::notification:
        case message_kind::other_response:
          break;
        case message_kind::garbage:
          fail("the server wrote something that is not JSON-RPC on stdout: '" + excerpt(line) +
               "'");
      }
    }
  }

  void notify(const std::string& message) override {
    write_line(message, "notifications/initialized");
  }

  std::string describe() const override { return "stdio: " + command_line_; }

 private:
  [[noreturn]] void fail(std::string why) {
    std::string tail = last_stderr_line();
    if (!tail.empty()) why += " (its stderr: '" + excerpt(tail, 160) + "')";
    throw mcp_client_error(why);
  }

  void spawn(const core::spawn_options& options) {
    if (options.argv.empty()) throw mcp_client_error("no server command after --");
    core::spawn_result started = core::spawn_child(options);
    if (!started.error.empty()) throw mcp_client_error(started.error);
    pid_ = started.child.pid;
    pgid_ = started.child.pid;  // the server leads a group of its own
    pidfd_ = started.child.pidfd;
    in_ = started.child.stdin_fd;
    out_ = started.child.stdout_fd;
    err_ = started.child.stderr_fd;
    for (int fd : {in_, out_, err_}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }

  // The stderr line most likely to hold the cause: the last one naming an error (Node ends a
  // crash report with its version line, after the error), else the last one.
  std::string last_stderr_line() const {
    std::string_view t = stderr_tail_;
    std::string_view last, last_error;
    while (!t.empty()) {
      std::size_t nl = t.find('\n');
      std::string_view line = t.substr(0, nl);
      t.remove_prefix(nl == std::string_view::npos ? t.size() : nl + 1);
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
      if (line.find_first_not_of(' ') == std::string_view::npos) continue;
      last = line;
      if (line.find("rror") != std::string_view::npos) last_error = line;
    }
    return std::string(last_error.empty() ? last : last_error);
  }

  void drain_stderr() {
    char chunk[4096];
    for (;;) {
      ssize_t n = ::read(err_, chunk, sizeof chunk);
      if (n <= 0) {
        if (n == 0) stderr_open_ = false;
        return;
      }
      stderr_tail_.append(chunk, static_cast<std::size_t>(n));
      if (stderr_tail_.size() > kStderrTailBytes)
        stderr_tail_.erase(0, stderr_tail_.size() - kStderrTailBytes);
    }
  }

  // The server's end, described: "exited with status 3", "was killed by signal 9", or that it
  // closed its stdout and is still running.
  std::string how_it_ended() {
    if (exit_status_ < 0 && pid_ > 0) {
      if (pidfd_ >= 0) {
        // Give an exiting server a moment to finish, so the message can say how it ended.
        pollfd p{pidfd_, POLLIN, 0};
        ::poll(&p, 1, std::min(ms_left(deadline_), 1000));
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_status_ = status;
        pid_ = -1;
      }
    }
    // Whatever it said last is in the pipe by now.
    if (stderr_open_) drain_stderr();
    if (exit_status_ < 0) return "closed its stdout";
    if (WIFEXITED(exit_status_))
      return "exited with status " + std::to_string(WEXITSTATUS(exit_status_));
    if (WIFSIGNALED(exit_status_))
      return "was killed by signal " + std::to_string(WTERMSIG(exit_status_));
    return "ended";
  }

  void write_line(const std::string& message, std::string_view method) {
    std::string bytes = message + "\n";
    std::string_view left = bytes;
    while (!left.empty()) {
      ssize_t n = ::write(in_, left.data(), left.size());
      if (n > 0) {
        left.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EPIPE)
        fail("the server " + how_it_ended() + " before answering " + std::string(method));
      if (n < 0 && errno != EAGAIN && errno != EINTR)
        fail("write to the server: " + errno_text(errno));
      pollfd p[2] = {{in_, POLLOUT, 0}, {err_, static_cast<short>(stderr_open_ ? POLLIN : 0), 0}};
      if (::poll(p, 2, ms_left(deadline_)) == 0) timed_out(method);
      if (p[1].revents) drain_stderr();
    }
  }

  [[noreturn]] void timed_out(std::string_view method) {
    fail("no answer to " + std::string(method) + " within " + std::to_string(timeout_ms_) + " ms");
  }

  std::string read_line(std::string_view method) {
    for (;;) {
      std::size_t nl = stdout_buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = stdout_buf_.substr(0, nl);
        stdout_buf_.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        return line;
      }
      if (stdout_buf_.size() > kMaxMessageBytes) fail("the server wrote a line longer than 64 MiB");
      pollfd p[2] = {{out_, POLLIN, 0}, {err_, static_cast<short>(stderr_open_ ? POLLIN : 0), 0}};
      int n = ::poll(p, 2, ms_left(deadline_));
      if (n == 0) timed_out(method);
      if (n < 0 && errno != EINTR) fail("poll: " + errno_text(errno));
      if (p[1].revents) drain_stderr();
      if (p[0].revents) {
        char chunk[16384];
        ssize_t got = ::read(out_, chunk, sizeof chunk);
        if (got > 0) {
          stdout_buf_.append(chunk, static_cast<std::size_t>(got));
        } else if (got == 0) {
          if (!stdout_buf_.empty())
            fail("the server " + how_it_ended() + " after writing an unterminated line: '" +
                 excerpt(stdout_buf_) + "'");
          fail("the server " + how_it_ended() + " before answering " + std::string(method));
        } else if (errno != EAGAIN && errno != EINTR) {
          fail("read from the server: " + errno_text(errno));
        }
      }
    }
  }

  // Waits up to `ms` for the server to exit; true once it is reaped.
  bool reap_within(int ms) {
    if (pid_ <= 0) return true;
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      ::poll(&p, 1, ms);
    }
    int status = 0;
    if (::waitpid(pid_, &status, pidfd_ >= 0 ? WNOHANG : 0) == pid_) {
      exit_status_ = status;
      pid_ = -1;
      return true;
    }
    return false;
  }

  // Closing stdin asks a stdio server to exit (the MCP stdio shutdown sequence); the group
  // is signalled even after the leader exits, since it may have left children behind.
  void stop() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
    pid_t group = pgid_;
    if (!reap_within(300)) {
      ::kill(-group, SIGTERM);
      if (!reap_within(1000)) {
        ::kill(-group, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
      }
    }
    if (group > 0) ::kill(-group, SIGKILL);
    for (int* fd : {&out_, &err_, &pidfd_}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
  }

  mcp_deadline deadline_;
  std::int64_t timeout_ms_;
  std::string command_line_;
  pid_t pid_ = -1;
  pid_t pgid_ = -1;
  int pidfd_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  bool stderr_open_ = true;
  int exit_status_ = -1;
  std::string stdout_buf_;
  std::string stderr_tail_;
};

}  // namespace

std::unique_ptr<mcp_transport> start_stdio(const core::spawn_options& command,
                                           mcp_deadline deadline, std::int64_t timeout_ms) {
  return std::make_unique<stdio_transport>(command, deadline, timeout_ms);
}

std::unique_ptr<mcp_transport> start_stdio(const std::vector<std::string>& command,
                                           mcp_deadline deadline, std::int64_t timeout_ms) {
  core::spawn_options options;
  options.argv = command;
  return start_stdio(options, deadline, timeout_ms);
}

}  // namespace mcpgate::tools
