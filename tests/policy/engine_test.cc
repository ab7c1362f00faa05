#include "policy/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "policy/access_config.h"
#include "policy/denial.h"
#include "policy/document.h"

namespace mcpgate::policy {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;

// The starter policy from the issue, verbatim.
constexpr std::string_view kSeedPolicy = R"({
  "clear_session": { "deny_if": [ { "conditions": [], "on_deny": "Blocked by default. Requires approval." } ] },
  "write_file": { "limits": [ { "counter": "write_file_per_hour", "window": "hour", "max": 30, "scope": "grant" } ] },
  "list_directory": { "limits": [ { "counter": "list_directory_per_minute", "window": "minute", "max": 60, "scope": "grant" } ] }
})";

// Arguments with the SIMDJSON_PADDING bytes decide() may read past the end; kept in a deque
// so earlier views stay valid.
class padded_args {
 public:
  std::string_view operator()(std::string_view json) {
    std::string& s = storage_.emplace_back(json);
    s.append(simdjson::SIMDJSON_PADDING, '\0');
    return std::string_view(s.data(), json.size());
  }

 private:
  std::deque<std::string> storage_;
};

struct fixture {
  explicit fixture(std::string_view policy, deny_style style = deny_style::result)
      : config(make_access_config(
            std::make_shared<const document>(parse_document(policy, "policy.json")), store,
            style)) {}

  decision call_tool(std::string_view tool, int64_t now, std::string_view args = {},
                     std::string_view session = {}) {
    return decide(subject{config->anonymous(), session}, call{"tools/call", tool, pad(args)}, now,
                  scratch);
  }

  counter_store store;
  std::shared_ptr<const access_config> config;
  decide_scratch scratch;
  padded_args pad;
};

TEST(SeedPolicy, DeniesClearSessionWithTheOnDenyText) {
  fixture f(kSeedPolicy);
  decision d = f.call_tool("clear_session", kSecond);
  EXPECT_EQ(d.outcome, verdict::denied);
  EXPECT_EQ(d.rule, "tools.clear_session.deny_if[0]");
  std::string body;
  write_denial(d, "7", deny_style::result, body);
  EXPECT_NE(body.find(R"("text":"[POLICY DENIED] Blocked by default. Requires approval.")"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find(R"("isError":true)"), std::string::npos);
}

TEST(SeedPolicy, DeniesClearSessionAsJsonRpcErrorUnderDenyAsError) {
  fixture f(kSeedPolicy, deny_style::error);
  decision d = f.call_tool("clear_session", kSecond);
  std::string body;
  write_denial(d, "7", f.config->deny_as(), body);
  EXPECT_NE(
      body.find(
          R"("error":{"code":-32010,"message":"[POLICY DENIED] Blocked by default. Requires approval.")"),
      std::string::npos)
      << body;
}

TEST(SeedPolicy, AdmitsThirtyWriteFileCallsPerRollingHourAndDeniesTheThirtyFirst) {
  fixture f(kSeedPolicy);
  const int64_t start = kHour;
  for (int i = 0; i < 30; ++i) {
    EXPECT_TRUE(f.call_tool("write_file", start + i * kMinute).allowed()) << i;
  }
  decision d = f.call_tool("write_file", start + 30 * kMinute);
  EXPECT_EQ(d.outcome, verdict::rate_limited);
  EXPECT_EQ(d.rule, "write_file_per_hour");
  EXPECT_EQ(d.max, 30);
  EXPECT_EQ(d.window, window_unit::hour);
  // The first call (at start) leaves the window at start + 1h: 30 minutes from now.
  EXPECT_EQ(d.retry_after_ms, 30 * 60 * 1000);
  // One nanosecond before the first call ages out: still denied.
  EXPECT_FALSE(f.call_tool("write_file", start + kHour - 1).allowed());
  // Once it has aged out, exactly one more is admitted.
  EXPECT_TRUE(f.call_tool("write_file", start + kHour).allowed());
  EXPECT_FALSE(f.call_tool("write_file", start + kHour).allowed());
}

TEST(SeedPolicy, RollingHourIsSlidingNotFixedBuckets) {
  fixture f(kSeedPolicy);
  // 30 calls at the end of one clock hour...
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(f.call_tool("write_file", 2 * kHour - 1 - i).allowed());
  // ...and none in the first minutes of the next one: a fixed bucket would reset here.
  EXPECT_FALSE(f.call_tool("write_file", 2 * kHour + 5 * kMinute).allowed());
}

TEST(SeedPolicy, CapsListDirectoryAtSixtyPerRollingMinute) {
  fixture f(kSeedPolicy);
  int admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += f.call_tool("list_directory", kSecond + i).allowed();
  EXPECT_EQ(admitted, 60);
  EXPECT_EQ(f.call_tool("list_directory", kSecond + kMinute - 1).outcome, verdict::rate_limited);
  EXPECT_TRUE(f.call_tool("list_directory", kSecond + kMinute).allowed());
}

TEST(SeedPolicy, AllowsUnlistedToolsWithoutCounting) {
  fixture f(kSeedPolicy);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(f.call_tool("read_file", kSecond + i).allowed());
}

TEST(SeedPolicy, TwoGrantsCountSeparately) {
  counter_store store;
  auto doc = std::make_shared<const document>(parse_document(kSeedPolicy, "seed.json"));
  // Two configs, each with its own grant name, share one store as two grants would.
  access_config_source source;
  source.grants_json = R"({"ops": {"policy": "seed.json"}, "dev": {"policy": "seed.json"}})";
  source.identities_json =
      R"([{"name": "alice", "key_sha256": "72ee9d4355ccb9d3a4c9dbf37382e38e75c1b1a225b5bd1f729ee91bbda30c20", "grant": "ops"},
          {"name": "bob", "key_sha256": "9b94dc1a51a38769f135edf04033ad7f2f487b6c25929be7a861cfc1ab10cf98", "grant": "dev"}])";
  source.base_dir = std::filesystem::temp_directory_path();
  {
    std::ofstream out(source.base_dir / "seed.json");
    out << kSeedPolicy;
  }
  auto config = load_access_config(source, store);
  decide_scratch scratch;
  const identity* alice = config->find_identity("alice");
  const identity* bob = config->find_identity("bob");
  ASSERT_NE(alice, nullptr);
  ASSERT_NE(bob, nullptr);
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(
        decide({alice, ""}, {"tools/call", "write_file", ""}, kSecond + i, scratch).allowed());
  }
  EXPECT_FALSE(
      decide({alice, ""}, {"tools/call", "write_file", ""}, kSecond + 30, scratch).allowed());
  EXPECT_TRUE(decide({bob, ""}, {"tools/call", "write_file", ""}, kSecond + 31, scratch).allowed());
}

TEST(Engine, MethodsOtherThanToolsCallAreAllowedWithoutCounting) {
  fixture f(
      R"({"default": "deny", "all_tools": {"limits": [{"counter": "c", "window": "day", "max": 1}]}})");
  for (int i = 0; i < 5; ++i) {
    decision d = decide({f.config->anonymous(), ""}, {"tools/list", "", ""}, kSecond, f.scratch);
    EXPECT_TRUE(d.allowed());
    EXPECT_EQ(d.reservation_count, 0);
  }
}

TEST(Engine, DefaultDenyDeniesUnlistedToolsAndAllowsListedOnes) {
  fixture f(R"({"version": "1", "default": "deny", "tools": {"read_file": {}}})");
  decision d = f.call_tool("write_file", kSecond);
  EXPECT_EQ(d.outcome, verdict::denied);
  EXPECT_EQ(d.rule, "default");
  EXPECT_EQ(default_message(d),
            "tool 'write_file' denied by policy rule 'default' (not listed; default is deny)");
  EXPECT_TRUE(f.call_tool("read_file", kSecond).allowed());
}

TEST(Engine, HiddenToolsAreDeniedAtCallTime) {
  fixture f(R"({"hide": ["delete_repo"], "tools": {"delete_repo": {}}})");
  decision d = f.call_tool("delete_repo", kSecond);
  EXPECT_EQ(d.outcome, verdict::denied);
  EXPECT_EQ(d.rule, "hide");
  EXPECT_TRUE(f.call_tool("read_file", kSecond).allowed());
}

TEST(Engine, HideStarDeniesEveryTool) {
  fixture f(R"({"hide": ["*"], "tools": {"read_file": {}}})");
  EXPECT_EQ(f.call_tool("read_file", kSecond).rule, "hide");
  EXPECT_EQ(f.call_tool("anything", kSecond).rule, "hide");
}

TEST(Engine, ToolNamesAreExactAndCaseSensitive) {
  fixture f(R"({"default": "deny", "tools": {"read_file": {}}})");
  EXPECT_TRUE(f.call_tool("read_file", kSecond).allowed());
  EXPECT_FALSE(f.call_tool("Read_File", kSecond).allowed());
  EXPECT_FALSE(f.call_tool("read_file ", kSecond).allowed());
}

TEST(Engine, EscapedToolNamesInThePolicyMatchUnescapedCallNames) {
  fixture f(R"({"default": "deny", "tools": {"read\u005ffile": {}, "caf\u00e9": {}}})");
  EXPECT_TRUE(f.call_tool("read_file", kSecond).allowed());
  EXPECT_TRUE(f.call_tool("caf\xC3\xA9", kSecond).allowed());
}

TEST(Engine, AllToolsLimitsCountEveryToolCallTogether) {
  fixture f(R"({"all_tools": {"limits": [{"counter": "any_tool", "window": "second", "max": 3}]},
               "tools": {"write_file": {}}})");
  EXPECT_TRUE(f.call_tool("write_file", kSecond).allowed());
  EXPECT_TRUE(f.call_tool("read_file", kSecond).allowed());
  EXPECT_TRUE(f.call_tool("search", kSecond).allowed());
  decision d = f.call_tool("write_file", kSecond + 1);
  EXPECT_EQ(d.outcome, verdict::rate_limited);
  EXPECT_EQ(d.rule, "any_tool");
  EXPECT_TRUE(f.call_tool("search", 2 * kSecond).allowed());
}

TEST(Engine, CountersWithOneNameShareOneCount) {
  fixture f(R"({"tools": {
      "a": {"limits": [{"counter": "shared", "window": "minute", "max": 2}]},
      "b": {"limits": [{"counter": "shared", "window": "minute", "max": 2}]}}})");
  EXPECT_TRUE(f.call_tool("a", kSecond).allowed());
  EXPECT_TRUE(f.call_tool("b", kSecond).allowed());
  EXPECT_FALSE(f.call_tool("a", kSecond).allowed());
  EXPECT_FALSE(f.call_tool("b", kSecond).allowed());
}

TEST(Engine, DeniedCallConsumesNoCountInAnyCounter) {
  fixture f(R"({"all_tools": {"limits": [{"counter": "all", "window": "minute", "max": 2}]},
               "tools": {"pay": {
                 "deny_if": [{"conditions": [{"path": "args.amount", "op": "gt", "value": 100}]}],
                 "limits": [{"counter": "pay", "window": "minute", "max": 1}]}}})");
  // Denied by deny_if: counts nothing.
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(f.call_tool("pay", kSecond, R"({"amount": 500})").outcome, verdict::denied);
  }
  EXPECT_TRUE(f.call_tool("pay", kSecond, R"({"amount": 5})").allowed());
  // Rate limited by "pay" after "all" was reserved: "all" is rolled back.
  EXPECT_EQ(f.call_tool("pay", kSecond, R"({"amount": 5})").outcome, verdict::rate_limited);
  EXPECT_EQ(f.call_tool("pay", kSecond, R"({"amount": 5})").outcome, verdict::rate_limited);
  EXPECT_TRUE(f.call_tool("other", kSecond).allowed());  // "all" has 1 of 2 left
  EXPECT_EQ(f.call_tool("other", kSecond).rule, "all");
}

TEST(Engine, RefundGivesTheCountBack) {
  fixture f(R"({"tools": {"w": {"limits": [{"counter": "w", "window": "hour", "max": 2}]}}})");
  decision first = f.call_tool("w", kSecond);
  decision second = f.call_tool("w", kSecond + 1);
  ASSERT_TRUE(first.allowed());
  ASSERT_TRUE(second.allowed());
  EXPECT_EQ(second.reservation_count, 1);
  EXPECT_FALSE(f.call_tool("w", kSecond + 2).allowed());
  refund(second);  // the upstream refused the connection
  EXPECT_TRUE(f.call_tool("w", kSecond + 3).allowed());
  EXPECT_FALSE(f.call_tool("w", kSecond + 4).allowed());
}

TEST(Engine, RequireDeniesWhenAConditionFailsWithItsMessage) {
  fixture f(R"({"tools": {"refund": {"require": [
      {"path": "args.reason", "op": "exists", "on_deny": "A refund needs a reason."}]}}})");
  decision d = f.call_tool("refund", kSecond, R"({"amount": 5})");
  EXPECT_EQ(d.outcome, verdict::denied);
  EXPECT_EQ(d.rule, "tools.refund.require[0]");
  EXPECT_EQ(d.message, "A refund needs a reason.");
  EXPECT_TRUE(f.call_tool("refund", kSecond, R"({"amount": 5, "reason": "damaged"})").allowed());
}

TEST(Engine, DenyIfEntryMatchesOnlyWhenAllItsConditionsHold) {
  fixture f(R"({"tools": {"deploy": {"deny_if": [{"conditions": [
      {"path": "args.env", "op": "eq", "value": "prod"},
      {"path": "args.force", "op": "eq", "value": true}], "on_deny": "No forced prod deploys."}]}}})");
  EXPECT_TRUE(f.call_tool("deploy", kSecond, R"({"env": "prod"})").allowed());
  EXPECT_TRUE(f.call_tool("deploy", kSecond, R"({"env": "dev", "force": true})").allowed());
  decision d = f.call_tool("deploy", kSecond, R"({"env": "prod", "force": true})");
  EXPECT_EQ(d.outcome, verdict::denied);
  EXPECT_EQ(d.message, "No forced prod deploys.");
}

TEST(Engine, DuplicatedArgumentKeyOnAConditionPathIsDenied) {
  fixture f(R"({"tools": {"read": {"deny_if": [{"conditions": [
      {"path": "args.path", "op": "starts_with", "value": "/etc"}]}]}}})");
  // An upstream that keeps the last key would read /etc/passwd.
  decision d = f.call_tool("read", kSecond, R"({"path": "/tmp/x", "path": "/etc/passwd"})");
  EXPECT_EQ(d.outcome, verdict::denied);
  EXPECT_EQ(d.rule, "arguments");
}

TEST(Engine, EscapedArgumentKeysAreMatchedAfterUnescaping) {
  fixture f(R"({"tools": {"read": {"deny_if": [{"conditions": [
      {"path": "args.path", "op": "starts_with", "value": "/etc"}]}]}}})");
  EXPECT_EQ(f.call_tool("read", kSecond, R"({"p\u0061th": "/etc/passwd"})").outcome,
            verdict::denied);
}

TEST(Engine, InvalidArgumentsAreDeniedWhenAConditionReadsThem) {
  fixture f(R"({"tools": {"read": {"deny_if": [{"conditions": [
      {"path": "args.path", "op": "starts_with", "value": "/etc"}]}]}}})");
  EXPECT_EQ(f.call_tool("read", kSecond, R"({"path": )").rule, "arguments");
}

TEST(Engine, SessionScopeCountsEachSessionSeparately) {
  fixture f(
      R"({"tools": {"t": {"limits": [{"counter": "t", "window": "minute", "max": 1, "scope": "session"}]}}})");
  EXPECT_TRUE(f.call_tool("t", kSecond, "", "s1").allowed());
  EXPECT_FALSE(f.call_tool("t", kSecond, "", "s1").allowed());
  EXPECT_TRUE(f.call_tool("t", kSecond, "", "s2").allowed());
  EXPECT_EQ(f.store.sweep_idle_sessions(kSecond), 0u);
  EXPECT_EQ(f.store.sweep_idle_sessions(kSecond + kMinute), 2u);
}

TEST(Engine, GrantWithoutPolicyDeniesEveryToolCall) {
  counter_store store;
  access_config_source source;
  source.grants_json = R"({"locked": {}})";
  source.identities_json =
      R"([{"name": "eve", "key_sha256": "72ee9d4355ccb9d3a4c9dbf37382e38e75c1b1a225b5bd1f729ee91bbda30c20", "grant": "locked"}])";
  auto config = load_access_config(source, store);
  decide_scratch scratch;
  decision d =
      decide({config->find_identity("eve"), ""}, {"tools/call", "read", ""}, kSecond, scratch);
  EXPECT_EQ(d.outcome, verdict::denied);
  EXPECT_EQ(d.rule, "grant");
}

TEST(Engine, NoPolicyAtAllAllowsEverything) {
  counter_store store;
  auto config = make_access_config(nullptr, store);
  EXPECT_TRUE(config->allows_everything());
  decide_scratch scratch;
  EXPECT_TRUE(
      decide({config->anonymous(), ""}, {"tools/call", "x", ""}, kSecond, scratch).allowed());
}

TEST(Engine, CountersSurviveAReloadWithTheSameNameAndWindow) {
  counter_store store;
  auto load = [&](std::string_view text) {
    return make_access_config(std::make_shared<const document>(parse_document(text, "p.json")),
                              store);
  };
  auto before = load(R"({"w": {"limits": [{"counter": "w", "window": "hour", "max": 3}]}})");
  decide_scratch scratch;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        decide({before->anonymous(), ""}, {"tools/call", "w", ""}, kSecond, scratch).allowed());
  }
  auto same = load(R"({"w": {"limits": [{"counter": "w", "window": "hour", "max": 3}]}})");
  EXPECT_FALSE(
      decide({same->anonymous(), ""}, {"tools/call", "w", ""}, kSecond, scratch).allowed());
  auto bigger = load(R"({"w": {"limits": [{"counter": "w", "window": "hour", "max": 4}]}})");
  EXPECT_TRUE(
      decide({bigger->anonymous(), ""}, {"tools/call", "w", ""}, kSecond, scratch).allowed());
  EXPECT_FALSE(
      decide({bigger->anonymous(), ""}, {"tools/call", "w", ""}, kSecond, scratch).allowed());
  auto other_window = load(R"({"w": {"limits": [{"counter": "w", "window": "day", "max": 4}]}})");
  EXPECT_TRUE(
      decide({other_window->anonymous(), ""}, {"tools/call", "w", ""}, kSecond, scratch).allowed());
}

// More threads than cores race through decide() on one grant counter with an injected
// clock; the recorded admission times show no window with more than max admissions.
TEST(Engine, ConcurrentDecisionsNeverExceedMaxInAnyWindow) {
  fixture f(R"({"t": {"limits": [{"counter": "t", "window": "second", "max": 4}]}})");
  constexpr int kThreads = 8;
  std::atomic<int64_t> clock{kSecond};
  std::vector<std::vector<int64_t>> admitted(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      decide_scratch scratch;
      for (int i = 0; i < 25'000; ++i) {
        int64_t now = clock.fetch_add(2'000'000, std::memory_order_relaxed);
        decision d = decide({f.config->anonymous(), ""}, {"tools/call", "t", ""}, now, scratch);
        if (d.allowed()) admitted[t].push_back(d.reservations[0].taken.taken);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<int64_t> all;
  for (auto& v : admitted) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  const int64_t windows = (clock.load() - kSecond) / kSecond;
  ASSERT_GT(windows, 300);
  for (size_t i = 0; i + 4 < all.size(); ++i) ASSERT_GE(all[i + 4] - all[i], kSecond) << i;
  EXPECT_GE(static_cast<int64_t>(all.size()), (windows - 1) * 4);
}

}  // namespace
}  // namespace mcpgate::policy

namespace mcpgate::policy {
namespace {

constexpr std::string_view kApprovalPolicy = R"({
  "clear_session": { "approve_if": [ { "conditions": [], "message": "Loses state.",
                                       "timeout_ms": 5000, "via": "client" } ] },
  "install_package": {
    "approve_if": { "conditions": [ { "path": "args.package_name", "op": "eq",
                                      "value": "requests" } ] },
    "deny_if": [ { "conditions": [ { "path": "args.package_name", "op": "eq",
                                     "value": "evil" } ] } ],
    "limits": [ { "counter": "installs", "window": "minute", "max": 1 } ] }
})";

decision call_approved(fixture& f, std::string_view tool, int64_t now, std::string_view args) {
  return decide(subject{f.config->anonymous(), {}}, call{"tools/call", tool, f.pad(args), true},
                now, f.scratch);
}

TEST(ApproveIf, HoldsAMatchingCallWithTheRuleItsMessageTimeoutAndWho) {
  fixture f(kApprovalPolicy);
  decision d = f.call_tool("clear_session", kSecond, R"({"session_id":"s1"})");
  EXPECT_EQ(d.outcome, verdict::held);
  EXPECT_EQ(d.rule, "tools.clear_session.approve_if[0]");
  EXPECT_EQ(d.message, "Loses state.");
  ASSERT_NE(d.approval, nullptr);
  EXPECT_EQ(d.approval->timeout_ms, 5000);
  EXPECT_EQ(d.approval->via, approval_via::client);
  EXPECT_EQ(d.reservation_count, 0);
}

TEST(ApproveIf, OnlyWhenItsConditionsHoldAndNeverBeforeADenial) {
  fixture f(kApprovalPolicy);
  EXPECT_TRUE(f.call_tool("install_package", kSecond, R"({"package_name":"numpy"})").allowed());
  // deny_if decides before approve_if: a call a rule refuses is not put to a human.
  EXPECT_EQ(f.call_tool("install_package", kSecond, R"({"package_name":"evil"})").outcome,
            verdict::denied);
  decision held = f.call_tool("install_package", 2 * kSecond, R"({"package_name":"requests"})");
  EXPECT_EQ(held.outcome, verdict::held);
  ASSERT_NE(held.approval, nullptr);
  EXPECT_EQ(held.approval->timeout_ms, 600'000);
  EXPECT_EQ(held.approval->via, approval_via::operator_);
  // A duplicated key the condition reads cannot be put to a human as one call either.
  EXPECT_EQ(f.call_tool("install_package", kSecond,
                        R"({"package_name":"requests","package_name":"evil"})")
                .rule,
            "arguments");
}

TEST(ApproveIf, AHeldCallCountsOnlyOnceApproved) {
  fixture f(kApprovalPolicy);
  // The minute's one install was taken by numpy (not held)...
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(f.call_tool("install_package", kSecond, R"({"package_name":"requests"})").outcome,
              verdict::held)
        << "held calls take no count";
  decision approved =
      call_approved(f, "install_package", kSecond, R"({"package_name":"requests"})");
  EXPECT_TRUE(approved.allowed());
  EXPECT_EQ(approved.reservation_count, 1);
  decision over = call_approved(f, "install_package", kSecond, R"({"package_name":"requests"})");
  EXPECT_EQ(over.outcome, verdict::rate_limited);
  EXPECT_EQ(over.rule, "installs");
}

TEST(ApproveIf, ARefusedHeldCallIsAPolicyDenialNamingTheOutcome) {
  decision d;
  d.outcome = verdict::approval_timeout;
  d.tool = "clear_session";
  d.rule = "tools.clear_session.approve_if[0]";
  d.message = "tool 'clear_session' was not approved within 5000 ms";
  std::string body;
  write_denial(d, "3", deny_style::result, body);
  EXPECT_EQ(
      body,
      R"({"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"[POLICY DENIED] tool 'clear_session' was not approved within 5000 ms"}],"isError":true,"structuredContent":{"decision":"approval_timeout","tool":"clear_session","rule":"tools.clear_session.approve_if[0]"},"_meta":{"decision":"approval_timeout","tool":"clear_session","rule":"tools.clear_session.approve_if[0]"}}})");
}

}  // namespace
}  // namespace mcpgate::policy
