// The mcpgate binary as an operator meets it: start-up errors name the flag, key or cause.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <fstream>
#include <string>
#include <vector>

namespace {

struct run_result {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs mcpgate with args; with refuse_io_uring, under a seccomp filter that fails
// io_uring_setup with EPERM, as Docker's default profile does.
run_result run_mcpgate(std::vector<std::string> args, bool refuse_io_uring = false) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], 1);
    dup2(pipe_fds[1], 2);
    if (refuse_io_uring) {
      sock_filter filter[] = {
          BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
          BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
          BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
          BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      };
      sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
      prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
    }
    std::vector<char*> argv;
    std::string bin = MCPGATE_BIN_PATH;
    argv.push_back(bin.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  run_result r;
  char buf[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buf, sizeof buf)) > 0) r.output.append(buf, static_cast<size_t>(n));
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string write_temp(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

// A config that must not start: exit 1, and the output holds "<file>: " + `expected`.
void expect_config_error(const std::string& name, const std::string& text,
                         const std::string& expected) {
  std::string file = write_temp(name, text);
  run_result r = run_mcpgate({"--config", file});
  EXPECT_EQ(r.exit_code, 1) << name;
  EXPECT_NE(r.output.find(file + ": " + expected), std::string::npos) << r.output;
}

TEST(MCPGateCli, ExitsAtOnceWithOneLineWhenSeccompRefusesIoUring) {
  run_result r =
      run_mcpgate({"--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9/mcp"}, true);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("seccomp"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("listening"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

TEST(MCPGateCli, NamesTheFlagAndValueOfAnUnsupportedUpstream) {
  run_result r = run_mcpgate({"--upstream", "https://example.test/mcp"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--upstream"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("https://example.test/mcp"), std::string::npos) << r.output;
}

TEST(MCPGateCli, NamesTheFileAndKeyOfAnUnknownConfigKey) {
  std::string file =
      write_temp("typo.json", R"({"listen":"127.0.0.1:0","upstraem":"http://127.0.0.1:9/mcp"})");
  run_result r = run_mcpgate({"--config", file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find(file + ": $.upstraem: unknown key"), std::string::npos) << r.output;
}

TEST(MCPGateCli, NamesTheKeyPathOfAWrongTypeInLimits) {
  std::string file = write_temp("limits.json", R"({"limits":{"max_body_bytes":"big"}})");
  run_result r = run_mcpgate({"--config", file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("$.limits.max_body_bytes: expected a whole number, got a string"),
            std::string::npos)
      << r.output;
}

TEST(MCPGateCli, NamesTheKeyPathOfAStdioUpstreamMistake) {
  std::string no_command =
      write_temp("stdio_missing.json", R"({"upstream":{"cwd":"/tmp","shared":true}})");
  run_result r = run_mcpgate({"--config", no_command});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find(no_command +
                          ": $.upstream.command: missing: a stdio upstream needs the program "
                          "to start"),
            std::string::npos)
      << r.output;

  std::string typo =
      write_temp("stdio_typo.json", R"({"upstream":{"command":["cat"],"max_process":2}})");
  r = run_mcpgate({"--config", typo});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find(typo + ": $.upstream.max_process: unknown key"), std::string::npos)
      << r.output;

  std::string words =
      write_temp("stdio_words.json", R"({"upstream":{"command":"python3 server.py"}})");
  r = run_mcpgate({"--config", words});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find(words + ": $.upstream.command: expected an array of strings"),
            std::string::npos)
      << r.output;

  std::string env =
      write_temp("stdio_env.json", R"({"upstream":{"command":["cat"],"env":{"A=B":"c"}}})");
  r = run_mcpgate({"--config", env});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find(env + ": $.upstream.env: expected variable names without '='"),
            std::string::npos)
      << r.output;
}

TEST(MCPGateCli, NamesTheKeyPathOfAServersMistake) {
  expect_config_error("servers_none.json", R"({"servers":{"files":{"path":"/f"}}})",
                      "$.servers.files.upstream: missing: a server needs its upstream");
  expect_config_error(
      "servers_typo.json",
      R"({"servers":{"files":{"upstream":"http://127.0.0.1:9/mcp","response_timeout":5}}})",
      "$.servers.files.response_timeout: unknown key (known for a server: upstream, path, "
      "forward_authorization");
  expect_config_error("servers_nested.json",
                      R"({"servers":{"py":{"upstream":{"command":["cat"],"max_process":2}}}})",
                      "$.servers.py.upstream.max_process: unknown key");
  std::string twice =
      write_temp("servers_twice.json",
                 R"({"servers":{"files":{"upstream":"http://127.0.0.1:9/mcp"}},)"
                 R"("upstreams":{"files":{"url":"http://127.0.0.1:9/mcp","path":"/x"}}})");
  run_result r = run_mcpgate({"--config", twice});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("\"files\" is also servers.files; a name is one upstream's"),
            std::string::npos)
      << r.output;
  expect_config_error("servers_name.json",
                      R"({"servers":{"Files":{"upstream":"http://127.0.0.1:9/mcp"}}})",
                      "$.servers.Files: expected a name of lowercase letters");
}

TEST(MCPGateCli, NamesTheKeyOfAFederationMistake) {
  const std::string server = R"("servers":{"files":{"upstream":"http://127.0.0.1:9/mcp"}})";
  expect_config_error("federation_separator.json",
                      "{" + server + R"(,"federation":{"separator":"-x-"}})",
                      "$.federation.separator: expected 1 to 8 characters with one that a "
                      "server's name cannot have");
  expect_config_error("federation_slash.json", "{" + server + R"(,"federation":{"separator":"/"}})",
                      "$.federation.separator: expected no whitespace, quote, backslash or '/'");
  expect_config_error("federation_key.json", "{" + server + R"(,"federation":{"paths":"/m"}})",
                      "$.federation.paths: unknown key (known: path, separator");
  expect_config_error("federation_name.json",
                      R"({"servers":{"federation":{"upstream":"http://127.0.0.1:9/mcp"}}})",
                      "$.servers.federation: \"federation\" is the name of the federated endpoint");
  // A server on the endpoint's path: both named.
  std::string taken =
      write_temp("federation_path.json",
                 R"({"servers":{"files":{"upstream":"http://127.0.0.1:9/mcp","path":"/mcp"}}})");
  run_result r = run_mcpgate({"--config", taken});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("$.federation.path"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("/mcp is the federated endpoint's path and also upstream files's"),
            std::string::npos)
      << r.output;
  // Off, the path is the server's.
  std::string off = write_temp(
      "federation_off.json",
      R"({"servers":{"files":{"upstream":"http://127.0.0.1:9/mcp","path":"/mcp"}},"federation":false})");
  EXPECT_EQ(run_mcpgate({"check", off}).exit_code, 0);
}

TEST(MCPGateCli, RefusesAnUnclosedQuoteInTheUpstreamCommand) {
  run_result r = run_mcpgate({"--upstream-command", "python3 'my server.py"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--upstream-command: unclosed ' at offset 8 in 'python3 'my server.py'"),
            std::string::npos)
      << r.output;
}

TEST(MCPGateCli, RefusesTwoUpstreams) {
  run_result r = run_mcpgate(
      {"--upstream", "http://127.0.0.1:9/mcp", "--upstream-command", "python3 server.py"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("give one upstream, not both"), std::string::npos) << r.output;
}

TEST(MCPGateCli, HelpDocumentsEveryFlag) {
  run_result r = run_mcpgate({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"--listen", "--upstream", "--upstream-command", "--shards", "--policy",
                           "--audit", "--admin", "--config"})
    EXPECT_NE(r.output.find(flag), std::string::npos) << flag;
}

}  // namespace
