#include "core/child_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>

namespace mcpgate::core {
namespace {

using namespace std::chrono_literals;

// Everything the child writes on stdout until it closes it.
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// Waits (with a deadline) for the child to exit and returns its wait status.
int wait_exit(child_process& child) {
  pollfd p{child.pidfd, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 10'000), 1) << "the child did not exit within 10 s";
  std::optional<int> status = reap_child(child);
  EXPECT_TRUE(status.has_value());
  return status.value_or(-1);
}

void close_pipes(child_process& c) {
  for (int fd : {c.stdin_fd, c.stdout_fd, c.stderr_fd})
    if (fd >= 0) ::close(fd);
}

spawn_result start(std::vector<std::string> argv, std::vector<std::string> env = {},
                   std::string cwd = {}) {
  spawn_options o;
  o.argv = std::move(argv);
  o.env = std::move(env);
  o.cwd = std::move(cwd);
  return spawn_child(o);
}

TEST(SplitCommandLine, SplitsLikeAPosixShellWithoutExpanding) {
  split_result r =
      split_command_line(R"(python3  'my server.py' --name "a \"b\" \$HOME" x\ y '' $PATH)");
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(r.words, (std::vector<std::string>{"python3", "my server.py", "--name", "a \"b\" $HOME",
                                               "x y", "", "$PATH"}));
}

TEST(SplitCommandLine, KeepsBackslashesInsideSingleQuotesAndUnknownEscapesInDoubleQuotes) {
  split_result r = split_command_line(R"('a\b' "c\d")");
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(r.words, (std::vector<std::string>{"a\\b", "c\\d"}));
}

TEST(SplitCommandLine, RejectsUnclosedQuotesAndATrailingBackslashNamingTheOffset) {
  EXPECT_EQ(split_command_line("prog 'open").error, "unclosed ' at offset 5");
  EXPECT_EQ(split_command_line("prog \"open").error, "unclosed \" at offset 5");
  EXPECT_EQ(split_command_line("prog \\").error, "trailing \\ at offset 5");
  EXPECT_TRUE(split_command_line("   ").words.empty());
}

TEST(SpawnChild, RunsTheCommandWithPipesAndReportsItsExitStatus) {
  spawn_result r = start({"sh", "-c", "read line; echo \"got $line\"; echo oops >&2; exit 3"});
  ASSERT_EQ(r.error, "");
  ASSERT_EQ(::write(r.child.stdin_fd, "hello\n", 6), 6);
  EXPECT_EQ(read_all(r.child.stdout_fd), "got hello\n");
  EXPECT_EQ(read_all(r.child.stderr_fd), "oops\n");
  int status = wait_exit(r.child);
  EXPECT_EQ(describe_exit(status), "exited with status 3");
  EXPECT_EQ(r.child.pid, -1);
  EXPECT_EQ(r.child.pidfd, -1);
  close_pipes(r.child);
}

TEST(SpawnChild, ChildInheritsNoneOfTheGatewaysCloseOnExecDescriptors) {
  int stray[2];
  ASSERT_EQ(::pipe2(stray, O_CLOEXEC), 0);  // as every descriptor of the gateway is
  // The shell lists its own table ($$), so the directory ls opens is not in the listing; the
  // trailing command keeps the shell from exec'ing ls in its place.
  spawn_result r = start({"sh", "-c", "ls /proc/$$/fd; true"});
  ASSERT_EQ(r.error, "");
  std::string fds = "\n" + read_all(r.child.stdout_fd);
  wait_exit(r.child);
  // Neither the stray pipe nor the parent's ends of the child's own pipes (a test runner may
  // pass down descriptors of its own; those are not ours to judge).
  for (int fd : {stray[0], stray[1], r.child.stdin_fd, r.child.stdout_fd, r.child.stderr_fd})
    EXPECT_EQ(fds.find("\n" + std::to_string(fd) + "\n"), std::string::npos) << fd << " in" << fds;
  EXPECT_EQ(fds.substr(0, 5), "\n0\n1\n");
  close_pipes(r.child);
  ::close(stray[0]);
  ::close(stray[1]);
}

TEST(SpawnChild, ClearsTheBlockedSignalMaskTheGatewayRunsWith) {
  sigset_t blocked, old;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &blocked, &old), 0);
  spawn_result r = start({"sh", "-c", "grep SigBlk /proc/self/status"});
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(read_all(r.child.stdout_fd), "SigBlk:\t0000000000000000\n");
  wait_exit(r.child);
  close_pipes(r.child);
}

TEST(SpawnChild, UsesTheGivenEnvironmentAndWorkingDirectory) {
  spawn_result r =
      start({"sh", "-c", "echo \"$GREETING\"; pwd"}, {"GREETING=hi", "PATH=/usr/bin:/bin"}, "/tmp");
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(read_all(r.child.stdout_fd), "hi\n/tmp\n");
  wait_exit(r.child);
  close_pipes(r.child);
}

TEST(SpawnChild, NamesTheProgramWhenItCannotBeStarted) {
  spawn_result r = start({"/nonexistent/server", "--x"});
  EXPECT_EQ(r.child.pid, -1);
  EXPECT_EQ(r.error, "cannot start '/nonexistent/server': No such file or directory");
  spawn_result in_missing_dir = start({"sh"}, {}, "/nonexistent-dir");
  EXPECT_EQ(in_missing_dir.error,
            "cannot start 'sh' in '/nonexistent-dir': No such file or directory");
}

TEST(SignalChild, ReachesWhatTheChildStartedInItsGroup) {
  // A launcher that starts a grandchild and waits, as npx does.
  spawn_result r = start({"sh", "-c", "sleep 30 & echo $!; wait"});
  ASSERT_EQ(r.error, "");
  std::string line;
  char ch;
  while (::read(r.child.stdout_fd, &ch, 1) == 1 && ch != '\n') line += ch;
  pid_t grandchild = std::stoi(line);
  signal_child(r.child, SIGKILL);
  int status = wait_exit(r.child);
  EXPECT_EQ(describe_exit(status), "was killed by signal 9 (Killed)");
  // The grandchild got the signal too (it is reparented and reaped by init, so poll for it).
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (::kill(grandchild, 0) == 0 && std::chrono::steady_clock::now() < deadline)
    ::poll(nullptr, 0, 10);
  EXPECT_NE(::kill(grandchild, 0), 0) << "grandchild " << grandchild << " survived";
  close_pipes(r.child);
}

TEST(ReapChild, ReturnsNothingWhileTheChildRuns) {
  spawn_result r = start({"sh", "-c", "read x"});
  ASSERT_EQ(r.error, "");
  EXPECT_FALSE(reap_child(r.child).has_value());
  ::close(r.child.stdin_fd);  // EOF: the child's read ends, and so does the child
  r.child.stdin_fd = -1;
  EXPECT_EQ(describe_exit(wait_exit(r.child)), "exited with status 1");
  close_pipes(r.child);
}

}  // namespace
}  // namespace mcpgate::core
