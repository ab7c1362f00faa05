// `mcpgate catalogue`: the classifier and its writers called directly, and the command run as
// an operator runs it against the Python interpreter fixture and against broken servers.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <simdjson.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "policy/document.h"
#include "tools/mcpgate/classify.h"

extern char** environ;

namespace {

using namespace mcpgate;
using tools::risk_class;

tools::tool_info tool(std::string name, std::string description = "", std::string schema = "{}") {
  tools::tool_info t;
  t.name = std::move(name);
  t.description = std::move(description);
  t.input_schema_json = std::move(schema);
  return t;
}

risk_class class_of(const std::string& name, const std::string& description = "") {
  return tools::classify_tool(tool(name, description)).cls;
}

// The MCP Python Interpreter's ten tools as its stand-in publishes them (no annotations).
std::vector<tools::tool_info> python_interpreter_tools() {
  return {tool("list_python_environments", "List all available Python environments."),
          tool("list_installed_packages", "\n    List installed packages for an environment."),
          tool("run_python_code", "\n    Execute Python code with flexible execution modes."),
          tool("run_python_file", "\n    Execute a Python file."),
          tool("install_package", "\n    Install a Python package in the specified environment."),
          tool("read_file", "\n    Read the content of any file, with size limits for safety."),
          tool("write_file", "\n    Write content to a file."),
          tool("list_directory", "\n    List all Python files in a directory."),
          tool("clear_session", "\n    Clear a REPL session's state and history."),
          tool("list_sessions", "List all active REPL sessions.")};
}

tools::server_catalogue python_interpreter_catalogue() {
  return tools::make_catalogue("python-interpreter", "1.2.0", "2025-06-18", "stdio: test",
                               python_interpreter_tools());
}

TEST(ClassifyTool, NameVerbsGiveTheClassWithoutAnnotations) {
  for (const char* n : {"clear_session", "drop_table", "killProcess", "reset-password",
                        "remove_user", "delete_file"})
    EXPECT_EQ(class_of(n), risk_class::destructive) << n;
  for (const char* n : {"transfer_funds", "pay_invoice", "chargeCard", "purchase_item"})
    EXPECT_EQ(class_of(n), risk_class::financial) << n;
  for (const char* n : {"run_python_code", "exec", "eval_expression", "install_package"})
    EXPECT_EQ(class_of(n), risk_class::execute) << n;
  for (const char* n : {"write_file", "create_issue", "update_record", "send_email"})
    EXPECT_EQ(class_of(n), risk_class::write) << n;
  for (const char* n : {"list_directory", "read_file", "get_user", "search_docs"})
    EXPECT_EQ(class_of(n), risk_class::read) << n;
}

TEST(ClassifyTool, LeadingVerbOfTheNameWinsOverLaterWords) {
  tools::classification c = tools::classify_tool(tool("list_installed_packages"));
  EXPECT_EQ(c.cls, risk_class::read);
  EXPECT_EQ(c.reason, "name verb \"list\"");
}

TEST(ClassifyTool, MostDangerousWordOfTheNameWinsWhenItDoesNotStartWithAVerb) {
  tools::classification c = tools::classify_tool(tool("user_list_delete"));
  EXPECT_EQ(c.cls, risk_class::destructive);
  EXPECT_EQ(c.reason, "name word \"delete\"");
}

TEST(ClassifyTool, MatchesWholeWordsNotSubstrings) {
  // "stopwatch" is not "stop", "address" is not "add": the status verb decides.
  EXPECT_EQ(class_of("stopwatch_status"), risk_class::read);
  EXPECT_EQ(class_of("address_status"), risk_class::read);
}

TEST(ClassifyTool, DescriptionDecidesWhenTheNameHasNoVerb) {
  EXPECT_EQ(class_of("session", "\n    Clear a REPL session's state and history."),
            risk_class::destructive);
  EXPECT_EQ(class_of("python", "Executes Python code. Returns the output."), risk_class::execute);
  EXPECT_EQ(class_of("ledger", "This tool transfers money between accounts."),
            risk_class::financial);
  // Words after the first sentence (argument docs) do not count.
  EXPECT_EQ(class_of("files", "Lists files.\n\nArgs:\n  purge: delete them first"),
            risk_class::read);
}

TEST(ClassifyTool, InputSchemaDecidesWhenNameAndDescriptionAreSilent) {
  tools::classification c = tools::classify_tool(
      tool("python", "", R"({"type":"object","properties":{"code":{"type":"string"}}})"));
  EXPECT_EQ(c.cls, risk_class::execute);
  EXPECT_EQ(c.reason, "input schema has \"code\"");
  EXPECT_EQ(tools::classify_tool(tool("ledger", "", R"({"properties":{"amount":{}}})")).cls,
            risk_class::financial);
}

TEST(ClassifyTool, AToolWithoutEvidenceIsAssumedToChangeState) {
  tools::classification c = tools::classify_tool(tool("frobnicate", "Frobnicates."));
  EXPECT_EQ(c.cls, risk_class::write);
  EXPECT_NE(c.reason.find("assumed to change state"), std::string::npos) << c.reason;
  EXPECT_TRUE(c.disagreement.empty());
}

TEST(ClassifyTool, ReadOnlyHintWinsOverTheNameAndTheDisagreementIsReported) {
  tools::tool_info t = tool("delete_everything");
  t.annotations.read_only = true;
  tools::classification c = tools::classify_tool(t);
  EXPECT_EQ(c.cls, risk_class::read);
  EXPECT_TRUE(c.from_annotations);
  EXPECT_EQ(c.reason, "annotations: readOnlyHint true");
  EXPECT_NE(c.disagreement.find("annotations say Read"), std::string::npos) << c.disagreement;
  EXPECT_NE(c.disagreement.find("Destructive"), std::string::npos) << c.disagreement;
}

TEST(ClassifyTool, DestructiveHintMakesAWriteNamedToolDestructive) {
  tools::tool_info t = tool("write_file");
  t.annotations.read_only = false;
  t.annotations.destructive = true;
  tools::classification c = tools::classify_tool(t);
  EXPECT_EQ(c.cls, risk_class::destructive);
  EXPECT_NE(c.disagreement.find("suggests Write"), std::string::npos) << c.disagreement;
}

TEST(ClassifyTool, NotReadOnlyWithoutDestructiveHintIsDestructiveAsTheSpecDefaults) {
  tools::tool_info t = tool("create_directory");
  t.annotations.read_only = false;
  tools::classification c = tools::classify_tool(t);
  EXPECT_EQ(c.cls, risk_class::destructive);
  EXPECT_NE(c.reason.find("default is true"), std::string::npos) << c.reason;
}

TEST(ClassifyTool, AdditiveAnnotationsAreRefinedToExecuteOrFinancialByTheName) {
  tools::tool_info t = tool("run_script");
  t.annotations.read_only = false;
  t.annotations.destructive = false;
  tools::classification c = tools::classify_tool(t);
  EXPECT_EQ(c.cls, risk_class::execute);
  EXPECT_TRUE(c.disagreement.empty()) << c.disagreement;
  t.name = "charge_card";
  EXPECT_EQ(tools::classify_tool(t).cls, risk_class::financial);
}

TEST(ClassifyTool, HintsOtherThanReadOnlyAndDestructiveLeaveTheTextToDecide) {
  tools::tool_info t = tool("drop_table");
  t.annotations.idempotent = true;
  t.annotations.open_world = false;
  tools::classification c = tools::classify_tool(t);
  EXPECT_EQ(c.cls, risk_class::destructive);
  EXPECT_FALSE(c.from_annotations);
}

TEST(ParseTool, ReadsNameDescriptionSchemaAndAnnotations) {
  auto t = tools::parse_tool(
      R"({"name":"move_file","description":"Move files","inputSchema":{"type":"object",)"
      R"("properties":{"source":{"type":"string"}}},"annotations":{"readOnlyHint":false,)"
      R"("destructiveHint":true,"idempotentHint":false}})");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->name, "move_file");
  EXPECT_EQ(t->description, "Move files");
  EXPECT_EQ(t->input_schema_json, R"({"type":"object","properties":{"source":{"type":"string"}}})");
  EXPECT_EQ(t->annotations.read_only, false);
  EXPECT_EQ(t->annotations.destructive, true);
  EXPECT_EQ(t->annotations.idempotent, false);
  EXPECT_FALSE(t->annotations.open_world.has_value());
}

TEST(ParseTool, RejectsAnEntryWithoutAName) {
  EXPECT_FALSE(tools::parse_tool(R"({"description":"x"})"));
  EXPECT_FALSE(tools::parse_tool(R"({"name":""})"));
  EXPECT_FALSE(tools::parse_tool(R"(["name"])"));
  EXPECT_FALSE(tools::parse_tool("not json"));
}

TEST(AssessRisk, FollowsTheMostDangerousClassPresent) {
  tools::class_counts n;
  n.read = 3;
  EXPECT_EQ(tools::assess_risk(n), tools::risk_level::low);
  n.write = 1;
  EXPECT_EQ(tools::assess_risk(n), tools::risk_level::medium);
  n.execute = 1;
  EXPECT_EQ(tools::assess_risk(n), tools::risk_level::high);
  n.financial = 1;
  EXPECT_EQ(tools::assess_risk(n), tools::risk_level::critical);
  n.financial = 0;
  n.destructive = 1;
  EXPECT_EQ(tools::assess_risk(n), tools::risk_level::critical);
}

TEST(CatalogueSummary, PythonInterpreterHasTheCataloguesHeadlineAndClasses) {
  tools::server_catalogue c = python_interpreter_catalogue();
  tools::class_counts n = tools::count_classes(c);
  EXPECT_EQ(n.read, 5u);
  EXPECT_EQ(n.execute, 3u);
  EXPECT_EQ(n.write, 1u);
  EXPECT_EQ(n.destructive, 1u);
  EXPECT_EQ(n.financial, 0u);
  std::string s = tools::format_summary(c, {});
  EXPECT_NE(s.find("10 tools. 5 can modify or destroy data. 1 destructive tool with no built-in "
                   "limits. Policy required."),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("Risk: Critical"), std::string::npos) << s;
  EXPECT_NE(s.find("Destructive (1): blocked by default, requires approval\n  clear_session"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("Read (5): 60 per grant per minute"), std::string::npos) << s;
  EXPECT_NE(s.find("No tool carries annotations"), std::string::npos) << s;
}

TEST(CatalogueSummary, ReadOnlyServerIsLowRisk) {
  tools::server_catalogue c =
      tools::make_catalogue("r", "1", "2025-06-18", "", {tool("get_a"), tool("list_b")});
  std::string s = tools::format_summary(c, {});
  EXPECT_NE(s.find("2 tools. All are read-only. Read caps suggested."), std::string::npos) << s;
  EXPECT_NE(s.find("Risk: Low"), std::string::npos) << s;
}

TEST(CataloguePolicy, LoadsAsAPolicyDocumentWithTheStarterRules) {
  tools::starter_limits limits;
  limits.write_per_hour = 7;
  limits.read_per_minute = 90;
  std::string text = tools::format_policy(python_interpreter_catalogue(), limits);
  policy::document doc = policy::parse_document(text, "starter.json");
  EXPECT_EQ(doc.default_for_unlisted, policy::default_verdict::deny);
  ASSERT_EQ(doc.tools.size(), 10u);

  const policy::tool_rules& clear = doc.tools.find("clear_session")->second;
  EXPECT_TRUE(clear.denied_unconditionally());
  ASSERT_EQ(clear.deny_if.size(), 1u);
  EXPECT_EQ(clear.deny_if[0].on_deny, "Blocked by default. Requires approval.");
  EXPECT_TRUE(clear.limits.empty());

  for (const char* name : {"write_file", "run_python_code", "install_package"}) {
    const policy::tool_rules& r = doc.tools.find(name)->second;
    ASSERT_EQ(r.limits.size(), 1u) << name;
    EXPECT_EQ(r.limits[0].counter, std::string(name) + "_per_hour");
    EXPECT_EQ(r.limits[0].window, policy::window_unit::hour);
    EXPECT_EQ(r.limits[0].max, 7);
    EXPECT_EQ(r.limits[0].scope, policy::limit_scope::grant);
    EXPECT_TRUE(r.deny_if.empty());
  }
  const policy::tool_rules& read = doc.tools.find("read_file")->second;
  ASSERT_EQ(read.limits.size(), 1u);
  EXPECT_EQ(read.limits[0].counter, "read_file_per_minute");
  EXPECT_EQ(read.limits[0].window, policy::window_unit::minute);
  EXPECT_EQ(read.limits[0].max, 90);
}

TEST(CataloguePolicy, ToolNamesNeedingEscapesStillLoad) {
  tools::server_catalogue c = tools::make_catalogue(
      "s", "1", "", "", {tool("delete \"all\"\\now"), tool("get_\xc3\xa9t\xc3\xa9")});
  policy::document doc = policy::parse_document(tools::format_policy(c, {}), "p.json");
  EXPECT_TRUE(doc.tools.find("delete \"all\"\\now")->second.denied_unconditionally());
  EXPECT_EQ(doc.tools.count("get_\xc3\xa9t\xc3\xa9"), 1u);
}

TEST(CatalogueSensitive, ToolsThatRevealSecretsOrTheEnvironmentAreDenied) {
  for (const char* name :
       {"get-env", "print_env", "getEnvironment", "read_secret", "list_credentials"})
    EXPECT_FALSE(tools::classify_tool(tool(name)).sensitive.empty()) << name;
  EXPECT_FALSE(
      tools::classify_tool(tool("dump", "Returns all environment variables of the process."))
          .sensitive.empty());
  for (const char* name : {"read_file", "environmental_report_page", "list_events"})
    EXPECT_TRUE(tools::classify_tool(tool(name)).sensitive.empty()) << name;
  tools::server_catalogue c =
      tools::make_catalogue("s", "1", "", "", {tool("get-env", "Show the environment.")});
  EXPECT_EQ(c.tools[0].result.cls, risk_class::read);
  policy::document doc = policy::parse_document(tools::format_policy(c, {}), "p.json");
  const policy::tool_rules& rules = doc.tools.find("get-env")->second;
  EXPECT_TRUE(rules.denied_unconditionally());
  EXPECT_NE(rules.deny_if[0].on_deny.find("may reveal secrets"), std::string::npos);
  EXPECT_NE(tools::format_summary(c, {}).find("sensitive: name word \"env\""), std::string::npos);
}

TEST(CatalogueArguments, PathArgumentsRefuseDotDotAndAmountsOverAHundredAreDenied) {
  tools::server_catalogue c = tools::make_catalogue(
      "s", "1", "", "",
      {tool(
           "write_file", "Write a file.",
           R"({"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"}}})"),
       tool("tip_author", "Send a tip.",
            R"({"type":"object","properties":{"amount":{"type":"number"}}})")});
  policy::document doc = policy::parse_document(tools::format_policy(c, {}), "p.json");
  const policy::tool_rules& write = doc.tools.find("write_file")->second;
  ASSERT_EQ(write.deny_if.size(), 1u);
  EXPECT_EQ(write.deny_if[0].conditions.size(), 1u);
  EXPECT_EQ(write.limits.size(), 1u) << "the limit stays beside the check";
  EXPECT_FALSE(write.denied_unconditionally());
  const policy::tool_rules& tip = doc.tools.find("tip_author")->second;
  ASSERT_FALSE(tip.deny_if.empty());
  EXPECT_NE(tools::format_summary(c, {}).find("denied when path contains \"..\""),
            std::string::npos);
}

TEST(CataloguePolicy, EmptyServerGivesAPolicyThatDeniesEverything) {
  tools::server_catalogue c = tools::make_catalogue("s", "1", "", "", {});
  policy::document doc = policy::parse_document(tools::format_policy(c, {}), "p.json");
  EXPECT_TRUE(doc.tools.empty());
  EXPECT_EQ(doc.default_for_unlisted, policy::default_verdict::deny);
}

TEST(CatalogueJson, CarriesCountsRiskAndEveryTool) {
  std::string text = tools::format_json(python_interpreter_catalogue(), {});
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(text).get(root), simdjson::SUCCESS) << text;
  EXPECT_EQ(int64_t(root["counts"]["total"]), 10);
  EXPECT_EQ(int64_t(root["counts"]["modifying"]), 5);
  EXPECT_EQ(int64_t(root["counts"]["destructive"]), 1);
  EXPECT_EQ(int64_t(root["counts"]["execute"]), 3);
  EXPECT_EQ(std::string_view(root["risk"]["level"]), "Critical");
  EXPECT_EQ(int64_t(root["limits"]["write_per_hour"]), 30);
  simdjson::dom::array list = root["tools"];
  ASSERT_EQ(list.size(), 10u);
  for (simdjson::dom::element t : list) {
    if (std::string_view(t["name"]) == "clear_session") {
      EXPECT_EQ(std::string_view(t["class"]), "Destructive");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The command itself.

struct run_result {
  int exit_code = -1;
  std::string out, err;
  std::chrono::milliseconds elapsed{0};
};

run_result run_mcpgate(const std::vector<std::string>& args) {
  auto start = std::chrono::steady_clock::now();
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return {};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<std::string> argv_text{MCPGATE_BIN_PATH, "catalogue"};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  close(err[1]);
  run_result r;
  if (rc != 0) return r;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open = 2;
  while (open > 0 && poll(fds, 2, -1) > 0) {
    for (int i = 0; i < 2; ++i) {
      if (!fds[i].revents) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else {
        fds[i].fd = -1;
        --open;
      }
    }
  }
  close(out[0]);
  close(err[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  return r;
}

std::string source_root() {
  std::filesystem::path here = __FILE__;
  return here.parent_path().parent_path().parent_path().string();
}

std::string fresh_dir(const std::string& name) {
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// The error contract: exactly one line, with the program's prefix, and exit 1.
void expect_one_line_error(const run_result& r, const std::string& cause) {
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("mcpgate catalogue: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(cause), std::string::npos) << r.err;
}

TEST(CatalogueCommand, ClassifiesThePythonInterpreterFixtureOverStdioAndWritesItsPolicy) {
  std::string dir = fresh_dir("catalogue_fixture");
  std::string policy_file = dir + "/starter.json";
  run_result r =
      run_mcpgate({"--policy", policy_file, "--", "python3",
                   source_root() + "/tests/fixtures/python_interpreter_server.py", "--dir", dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;  // the server's own stderr is not passed through
  EXPECT_NE(r.out.find("python-interpreter 1.2.0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("10 tools. 5 can modify or destroy data. 1 destructive tool with no "
                       "built-in limits. Policy required."),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("Execute (3)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Write (1)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Read (5)"), std::string::npos) << r.out;
  policy::document doc = policy::load_document(policy_file);
  EXPECT_EQ(doc.tools.size(), 10u);
  EXPECT_TRUE(doc.tools.find("clear_session")->second.denied_unconditionally());
  EXPECT_FALSE(std::filesystem::exists(policy_file + ".tmp"));
}

TEST(CatalogueCommand, JsonOutputHasTheFixturesCounts) {
  std::string dir = fresh_dir("catalogue_json");
  run_result r =
      run_mcpgate({"--json", "--", "python3",
                   source_root() + "/tests/fixtures/python_interpreter_server.py", "--dir", dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(r.out).get(root), simdjson::SUCCESS) << r.out;
  EXPECT_EQ(int64_t(root["counts"]["read"]), 5);
  EXPECT_EQ(int64_t(root["counts"]["destructive"]), 1);
  EXPECT_EQ(std::string_view(root["server"]["name"]), "python-interpreter");
}

TEST(CatalogueCommand, ServerThatCannotStartGetsOneLineAndExitOne) {
  run_result r = run_mcpgate({"--", "/nonexistent/mcp-server"});
  expect_one_line_error(r, "cannot start '/nonexistent/mcp-server': No such file or directory");
}

TEST(CatalogueCommand, ServerThatExitsGetsOneLineNamingItsStatusAndStderr) {
  run_result r = run_mcpgate({"--", "sh", "-c", "echo 'Error: no config' >&2; exit 3"});
  expect_one_line_error(r, "exited with status 3");
  EXPECT_NE(r.err.find("Error: no config"), std::string::npos) << r.err;
}

TEST(CatalogueCommand, ServerSpeakingGarbageGetsOneLineQuickly) {
  run_result r = run_mcpgate({"--", "sh", "-c", "echo 'hello, I am not JSON'; exec sleep 30"});
  expect_one_line_error(r, "not JSON-RPC on stdout: 'hello, I am not JSON'");
  EXPECT_LT(r.elapsed.count(), 5000);
}

TEST(CatalogueCommand, ServerThatNeverAnswersTimesOut) {
  run_result r = run_mcpgate({"--timeout-ms", "300", "--", "sleep", "30"});
  expect_one_line_error(r, "no answer to initialize within 300 ms");
  EXPECT_LT(r.elapsed.count(), 5000);
}

TEST(CatalogueCommand, RefusedHttpConnectionGetsOneLine) {
  // A port that was just free: bound, never listened on, closed.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  std::string url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/mcp";
  run_result r = run_mcpgate({"--upstream", url});
  expect_one_line_error(r, url + ": cannot connect: Connection refused");
}

TEST(CatalogueCommand, RejectsBadFlagsWithOneLine) {
  expect_one_line_error(run_mcpgate({}), "--upstream URL, or -- COMMAND");
  expect_one_line_error(run_mcpgate({"python3"}), "unexpected argument 'python3'");
  expect_one_line_error(run_mcpgate({"--write-per-hour", "0", "--", "true"}),
                        "--write-per-hour: expected 1 to 1000000, got 0");
  expect_one_line_error(run_mcpgate({"--upstream", "http://127.0.0.1:1/mcp", "--", "true"}),
                        "not both");
}

}  // namespace
