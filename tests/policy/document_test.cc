#include "policy/document.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace mcpgate::policy {
namespace {

std::string error_of(std::string_view text, std::string_view file = "grants/ops.json") {
  try {
    parse_document(text, file);
  } catch (const load_error& e) {
    return e.what();
  }
  return "";
}

constexpr std::string_view kSeedPolicy = R"({
  "clear_session": { "deny_if": [ { "conditions": [], "on_deny": "Blocked by default. Requires approval." } ] },
  "write_file": { "limits": [ { "counter": "write_file_per_hour", "window": "hour", "max": 30, "scope": "grant" } ] },
  "list_directory": { "limits": [ { "counter": "list_directory_per_minute", "window": "minute", "max": 60, "scope": "grant" } ] }
})";

TEST(Document, AcceptsTheCatalogueShorthandAsToolRulesUnderDefaultAllow) {
  document doc = parse_document(kSeedPolicy, "seed.json");
  EXPECT_EQ(doc.default_for_unlisted, default_verdict::allow);
  ASSERT_EQ(doc.tools.size(), 3u);
  EXPECT_TRUE(doc.tools.at("clear_session").denied_unconditionally());
  const limit_rule& w = doc.tools.at("write_file").limits.at(0);
  EXPECT_EQ(w.counter, "write_file_per_hour");
  EXPECT_EQ(w.window, window_unit::hour);
  EXPECT_EQ(w.max, 30);
  EXPECT_EQ(w.scope, limit_scope::grant);
}

TEST(Document, ParsesTheFullForm) {
  document doc = parse_document(R"({"version": "1", "default": "deny", "hide": ["a", "b"],
      "all_tools": {"limits": [{"counter": "all", "window": "day", "max": 1000, "scope": "global"}]},
      "tools": {"refund": {"require": [{"path": "args.reason", "op": "exists", "on_deny": "why?"}]}}})",
                                "p.json");
  EXPECT_EQ(doc.default_for_unlisted, default_verdict::deny);
  EXPECT_TRUE(doc.hidden("a"));
  EXPECT_FALSE(doc.hidden("c"));
  EXPECT_EQ(doc.all_tools_limits.at(0).scope, limit_scope::global);
  EXPECT_EQ(doc.tools.at("refund").require.at(0).on_deny, "why?");
}

TEST(Document, RejectsATypoInAKeyWithItsPath) {
  EXPECT_EQ(
      error_of(
          R"({"write_file": {"limits": [{"counter": "c", "window": "hour", "max": 3, "scoep": "grant"}]}})"),
      "grants/ops.json: $.tools.write_file.limits[0].scoep: unknown key \"scoep\" (known: counter, "
      "window, max, scope)");
  EXPECT_EQ(error_of(R"({"version": "1", "defualt": "deny"})"),
            "grants/ops.json: $.defualt: unknown key \"defualt\" (known: version, default, hide, "
            "all_tools, tools)");
  EXPECT_EQ(error_of(R"({"write_file": {"deny": []}})"),
            "grants/ops.json: $.tools.write_file.deny: unknown key \"deny\" (known: require, "
            "deny_if, approve_if, limits)");
}

TEST(Document, RejectsZeroNegativeAndFractionalMax) {
  EXPECT_EQ(
      error_of(
          R"({"tools": {"write_file": {"limits": [{"counter": "c", "window": "hour", "max": 0}]}}})"),
      "grants/ops.json: $.tools.write_file.limits[0].max: expected a positive integer, got 0");
  EXPECT_EQ(
      error_of(R"({"tools": {"w": {"limits": [{"counter": "c", "window": "hour", "max": -5}]}}})"),
      "grants/ops.json: $.tools.w.limits[0].max: expected a positive integer, got -5");
  EXPECT_EQ(
      error_of(R"({"tools": {"w": {"limits": [{"counter": "c", "window": "hour", "max": 2.5}]}}})"),
      "grants/ops.json: $.tools.w.limits[0].max: expected a positive integer, got 2.5");
}

TEST(Document, RejectsUnknownWindowsAndScopes) {
  EXPECT_EQ(error_of(R"({"w": {"limits": [{"counter": "c", "window": "week", "max": 1}]}})"),
            "grants/ops.json: $.tools.w.limits[0].window: expected one of second, minute, hour, "
            "day, got \"week\"");
  EXPECT_EQ(
      error_of(
          R"({"w": {"limits": [{"counter": "c", "window": "hour", "max": 1, "scope": "user"}]}})"),
      "grants/ops.json: $.tools.w.limits[0].scope: expected one of grant, identity, session, "
      "global, got \"user\"");
}

TEST(Document, RejectsWrongTypes) {
  EXPECT_EQ(error_of(R"({"default": true})"),
            "grants/ops.json: $.default: expected \"allow\" or \"deny\", got true");
  EXPECT_EQ(error_of(R"({"hide": "a"})"),
            "grants/ops.json: $.hide: expected an array of tool names, got \"a\"");
  EXPECT_EQ(
      error_of(R"({"w": {"deny_if": [{"conditions": {}}]}})"),
      "grants/ops.json: $.tools.w.deny_if[0].conditions: expected an array of conditions, got {}");
  EXPECT_EQ(error_of(R"({"version": 1})"), "grants/ops.json: $.version: expected \"1\", got 1");
  EXPECT_EQ(error_of("[]"), "grants/ops.json: $: expected a policy object, got []");
}

TEST(Document, RejectsInvalidJsonAndDuplicateKeys) {
  EXPECT_NE(error_of(R"({"w": )").find("grants/ops.json: $: invalid JSON"), std::string::npos);
  EXPECT_EQ(error_of(R"({"w": {}, "w": {"deny_if": [{"conditions": []}]}})"),
            "grants/ops.json: $.tools.w: duplicate tool \"w\"");
  EXPECT_EQ(error_of(R"({"w": {"limits": [], "limits": []}})"),
            "grants/ops.json: $.tools.w.limits: duplicate key \"limits\"");
}

TEST(Document, RejectsOneCounterNameWithTwoDifferentLimits) {
  EXPECT_EQ(error_of(R"({"a": {"limits": [{"counter": "c", "window": "hour", "max": 1}]},
                         "b": {"limits": [{"counter": "c", "window": "hour", "max": 2}]}})"),
            "grants/ops.json: $.tools.b.limits[0]: counter \"c\" is declared at "
            "$.tools.a.limits[0] with another window, max or scope; one name is one count");
}

TEST(Document, NamesToolKeysThatAreNotIdentifiersInBracketForm) {
  EXPECT_EQ(error_of(R"({"a.b": {"x": 1}})"),
            "grants/ops.json: $.tools[\"a.b\"].x: unknown key \"x\" (known: require, deny_if, "
            "approve_if, limits)");
}

TEST(Document, LoadDocumentNamesTheFile) {
  auto path = std::filesystem::temp_directory_path() / "mcpgate_document_test.json";
  {
    std::ofstream out(path);
    out << R"({"w": {"limits": [{"counter": "c", "window": "hour", "max": 0}]}})";
  }
  try {
    load_document(path);
    FAIL() << "expected a load_error";
  } catch (const load_error& e) {
    EXPECT_EQ(std::string(e.what()),
              path.string() + ": $.tools.w.limits[0].max: expected a positive integer, got 0");
  }
  EXPECT_THROW(load_document("/nonexistent/policy.json"), load_error);
}

TEST(Document, DescribeListsWhatAppliesPerTool) {
  document doc = parse_document(kSeedPolicy, "seed.json");
  std::string text = describe(doc);
  EXPECT_NE(text.find("default: allow"), std::string::npos) << text;
  EXPECT_NE(text.find("tool \"clear_session\":\n  deny_if[0]: always -> \"Blocked by default. "
                      "Requires approval.\""),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          "limit \"write_file_per_hour\": at most 30 calls per rolling hour, counted per grant"),
      std::string::npos)
      << text;
}

}  // namespace
}  // namespace mcpgate::policy

namespace mcpgate::policy {
namespace {

TEST(Document, ReadsApproveIfAsAListOrOneEntryWithDefaults) {
  document doc = parse_document(R"({
    "a": { "approve_if": [ { "conditions": [], "message": "m", "timeout_ms": 2000, "via": "client" },
                           { "conditions": [ { "path": "args.x", "op": "eq", "value": 1 } ] } ] },
    "b": { "approve_if": { "conditions": [] } } })",
                                "p.json");
  ASSERT_EQ(doc.tools.at("a").approve_if.size(), 2u);
  const approval_rule& first = doc.tools.at("a").approve_if[0];
  EXPECT_EQ(first.message, "m");
  EXPECT_EQ(first.timeout_ms, 2000);
  EXPECT_EQ(first.via, approval_via::client);
  const approval_rule& second = doc.tools.at("a").approve_if[1];
  EXPECT_EQ(second.timeout_ms, 600'000);
  EXPECT_EQ(second.via, approval_via::operator_);
  EXPECT_EQ(second.conditions.size(), 1u);
  EXPECT_EQ(doc.tools.at("b").approve_if.size(), 1u);
  EXPECT_EQ(doc.revision.size(), 12u);
  EXPECT_NE(describe(doc).find("approve_if[0]: always -> held for approval by client, denied "
                               "after 2000 ms (\"m\")"),
            std::string::npos)
      << describe(doc);
}

TEST(Document, TwoTextsOfOnePolicyHaveTwoRevisions) {
  EXPECT_NE(parse_document(R"({"a": {}})", "p.json").revision,
            parse_document(R"({"a": {} })", "p.json").revision);
  EXPECT_EQ(parse_document(R"({"a": {}})", "p.json").revision,
            parse_document(R"({"a": {}})", "q.json").revision);
}

TEST(Document, RejectsABadApproveIfNamingTheKeyAndValue) {
  EXPECT_EQ(error_of(R"({"a": {"approve_if": [{"message": "m"}]}})"),
            "grants/ops.json: $.tools.a.approve_if[0]: missing key \"conditions\" (use [] to hold "
            "every call)");
  EXPECT_EQ(error_of(R"({"a": {"approve_if": {"conditions": [], "via": "email"}}})"),
            "grants/ops.json: $.tools.a.approve_if.via: expected \"operator\" or \"client\", got "
            "\"email\"");
  EXPECT_EQ(error_of(R"({"a": {"approve_if": {"conditions": [], "timeout_ms": 10}}})"),
            "grants/ops.json: $.tools.a.approve_if.timeout_ms: expected an integer from 1000 to "
            "86400000 (one day), got 10");
  EXPECT_EQ(error_of(R"({"a": {"approve_if": [{"conditions": [], "on_deny": "x"}]}})"),
            "grants/ops.json: $.tools.a.approve_if[0].on_deny: unknown key \"on_deny\" (known: "
            "conditions, message, timeout_ms, via)");
  EXPECT_EQ(
      error_of(R"({"a": {"approve_if": 3}})"),
      "grants/ops.json: $.tools.a.approve_if: expected an array of approve_if entries, got 3");
}

}  // namespace
}  // namespace mcpgate::policy
