#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mcpgate::core {

// What to start: argv[0] is looked up in PATH as execvp would.
struct spawn_options {
  std::vector<std::string> argv;
  // The child's whole environment ("NAME=value"); empty: the gateway's own.
  std::vector<std::string> env;
  std::string cwd;  // empty: the gateway's
};

// A child process with its stdin, stdout and stderr on pipes. Every descriptor here is
// O_CLOEXEC, so later children inherit none of them. The child leads a process group of its
// own, so that a launcher (npx, a shell script) and what it starts are signalled together.
struct child_process {
  pid_t pid = -1;
  int pidfd = -1;      // readable once the child has exited
  int stdin_fd = -1;   // the child's stdin (we write)
  int stdout_fd = -1;  // the child's stdout (we read)
  int stderr_fd = -1;  // the child's stderr (we read)
};

struct spawn_result {
  child_process child;
  std::string error;  // one line, empty on success
};

// posix_spawn (vfork-style: the caller waits only until exec), with the signal mask emptied and
// SIGPIPE back to default, since the gateway blocks and ignores signals that would otherwise be
// inherited through exec. Never throws.
spawn_result spawn_child(const spawn_options& options);

// Sends `sig` to the child's process group.
void signal_child(const child_process& child, int sig);

// Reaps the child if it has exited, without blocking: its wait status (WIFEXITED, WEXITSTATUS,
// WIFSIGNALED apply), after which the pidfd is closed and pid is -1; nothing while it runs. The
// pipes are left to their owner.
std::optional<int> reap_child(child_process& child);

// "exited with status 3", "was killed by signal 9 (Killed)".
std::string describe_exit(int status);

// Splits a command line into words as a POSIX shell would (quotes, backslashes), without
// running a shell: no expansion, no operators. An unclosed quote or a trailing backslash is an
// error (one line, naming the offset).
struct split_result {
  std::vector<std::string> words;
  std::string error;
};
split_result split_command_line(std::string_view text);

}  // namespace mcpgate::core
