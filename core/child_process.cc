#include "core/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

extern char** environ;

namespace mcpgate::core {
namespace {

// Closes what it holds unless released; spawn_child's error paths stay one line each.
class fd_holder {
 public:
  fd_holder() = default;
  fd_holder(const fd_holder&) = delete;
  fd_holder& operator=(const fd_holder&) = delete;
  ~fd_holder() {
    if (fd_ >= 0) ::close(fd_);
  }
  int* put() { return &fd_; }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

std::string errno_text(int e) {
  return std::strerror(e);
}

}  // namespace

spawn_result spawn_child(const spawn_options& options) {
  spawn_result out;
  if (options.argv.empty()) {
    out.error = "no command to start";
    return out;
  }
  fd_holder in_r, in_w, out_r, out_w, err_r, err_w;
  int p[2];
  for (auto [r, w] :
       {std::pair{&in_r, &in_w}, std::pair{&out_r, &out_w}, std::pair{&err_r, &err_w}}) {
    if (::pipe2(p, O_CLOEXEC) != 0) {
      out.error = "pipe: " + errno_text(errno);
      return out;
    }
    *r->put() = p[0];
    *w->put() = p[1];
  }

  // dup2 leaves the child's 0, 1 and 2 without O_CLOEXEC; every other descriptor of ours is
  // close-on-exec, so the child inherits nothing else.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), 2);
  if (!options.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, options.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);

  std::vector<char*> argv;
  for (const std::string& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (!options.env.empty()) {
    for (const std::string& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(),
                          envp.empty() ? environ : envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    out.error = "cannot start '" + options.argv[0] + "'" +
                (options.cwd.empty() ? "" : " in '" + options.cwd + "'") + ": " + errno_text(rc);
    return out;
  }
  out.child.pid = pid;
  out.child.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (out.child.pidfd < 0) {
    // Without a pidfd the exit cannot be watched; do not leave a child nobody reaps.
    int e = errno;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    out.child = {};
    out.error = "pidfd_open: " + errno_text(e);
    return out;
  }
  ::fcntl(out.child.pidfd, F_SETFD, FD_CLOEXEC);
  out.child.stdin_fd = in_w.release();
  out.child.stdout_fd = out_r.release();
  out.child.stderr_fd = err_r.release();
  return out;
}

void signal_child(const child_process& child, int sig) {
  if (child.pid > 0) ::kill(-child.pid, sig);
}

std::optional<int> reap_child(child_process& child) {
  if (child.pid <= 0) return std::nullopt;
  int status = 0;
  pid_t r = ::waitpid(child.pid, &status, WNOHANG);
  if (r != child.pid) return std::nullopt;
  if (child.pidfd >= 0) ::close(child.pidfd);
  child.pidfd = -1;
  child.pid = -1;
  return status;
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = ::sigdescr_np(sig);
    return "was killed by signal " + std::to_string(sig) +
           (name ? std::string(" (") + name + ")" : "");
  }
  return "ended with wait status " + std::to_string(status);
}

split_result split_command_line(std::string_view text) {
  split_result out;
  std::string word;
  bool in_word = false;
  size_t i = 0;
  while (i < text.size()) {
    char ch = text[i];
    if (ch == ' ' || ch == '\t' || ch == '\n') {
      if (in_word) out.words.push_back(std::exchange(word, {}));
      in_word = false;
      ++i;
    } else if (ch == '\'') {
      size_t end = text.find('\'', i + 1);
      if (end == std::string_view::npos) {
        out.error = "unclosed ' at offset " + std::to_string(i);
        return out;
      }
      word.append(text.substr(i + 1, end - i - 1));
      in_word = true;
      i = end + 1;
    } else if (ch == '"') {
      // Inside double quotes a backslash escapes only $ ` " \ and newline.
      size_t j = i + 1;
      for (;; ++j) {
        if (j >= text.size()) {
          out.error = "unclosed \" at offset " + std::to_string(i);
          return out;
        }
        if (text[j] == '"') break;
        if (text[j] == '\\' && j + 1 < text.size() &&
            std::string_view("$`\"\\\n").find(text[j + 1]) != std::string_view::npos) {
          if (text[j + 1] != '\n') word += text[j + 1];
          ++j;
          continue;
        }
        word += text[j];
      }
      in_word = true;
      i = j + 1;
    } else if (ch == '\\') {
      if (i + 1 >= text.size()) {
        out.error = "trailing \\ at offset " + std::to_string(i);
        return out;
      }
      if (text[i + 1] != '\n') {
        word += text[i + 1];
        in_word = true;
      }
      i += 2;
    } else {
      word += ch;
      in_word = true;
      ++i;
    }
  }
  if (in_word) out.words.push_back(std::move(word));
  return out;
}

}  // namespace mcpgate::core
