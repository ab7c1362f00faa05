#include "policy/denial.h"

#include <gtest/gtest.h>

#include "policy/json_writer.h"

namespace mcpgate::policy {
namespace {

simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& body) {
  auto parsed = parser.parse(body);
  EXPECT_FALSE(parsed.error()) << body;
  return parsed.value_unsafe();
}

decision denied_by(std::string_view tool, std::string_view rule, std::string_view message) {
  decision d;
  d.outcome = verdict::denied;
  d.tool = tool;
  d.rule = rule;
  d.message = message;
  return d;
}

decision rate_limited() {
  decision d;
  d.outcome = verdict::rate_limited;
  d.tool = "write_file";
  d.rule = "write_file_per_hour";
  d.window = window_unit::hour;
  d.max = 30;
  d.retry_after_ms = 1200;
  return d;
}

TEST(Denial, ResultBodyParsesAndCarriesTheDecision) {
  std::string body;
  write_denial(denied_by("clear_session", "tools.clear_session.deny_if[0]", "Blocked."),
               "\"req-1\"", deny_style::result, body);
  simdjson::dom::parser parser;
  auto root = parse(parser, body);
  EXPECT_EQ(std::string_view(root["jsonrpc"]), "2.0");
  EXPECT_EQ(std::string_view(root["id"]), "req-1");
  auto result = root["result"];
  EXPECT_TRUE(bool(result["isError"]));
  EXPECT_EQ(std::string_view(result["content"].at(0)["type"]), "text");
  EXPECT_EQ(std::string_view(result["content"].at(0)["text"]), "[POLICY DENIED] Blocked.");
  for (const char* key : {"structuredContent", "_meta"}) {
    auto info = result[key];
    EXPECT_EQ(std::string_view(info["decision"]), "denied");
    EXPECT_EQ(std::string_view(info["tool"]), "clear_session");
    EXPECT_EQ(std::string_view(info["rule"]), "tools.clear_session.deny_if[0]");
  }
}

TEST(Denial, RateLimitedResultCarriesCounterWindowMaxAndRetryAfter) {
  std::string body;
  write_denial(rate_limited(), "42", deny_style::result, body);
  simdjson::dom::parser parser;
  auto root = parse(parser, body);
  EXPECT_EQ(int64_t(root["id"]), 42);
  auto info = root["result"]["structuredContent"];
  EXPECT_EQ(std::string_view(info["decision"]), "rate_limited");
  EXPECT_EQ(std::string_view(info["counter"]), "write_file_per_hour");
  EXPECT_EQ(std::string_view(info["window"]), "hour");
  EXPECT_EQ(int64_t(info["max"]), 30);
  EXPECT_EQ(int64_t(info["retry_after_ms"]), 1200);
  EXPECT_EQ(std::string_view(root["result"]["content"].at(0)["text"]),
            "[POLICY DENIED] tool 'write_file' exceeded limit 'write_file_per_hour' (30 per hour); "
            "retry after 1200 ms");
}

TEST(Denial, ErrorStyleUsesDistinctCodesForDeniedAndRateLimited) {
  std::string body;
  simdjson::dom::parser parser;
  write_denial(denied_by("t", "hide", ""), "1", deny_style::error, body);
  auto denied = parse(parser, body);
  EXPECT_EQ(int64_t(denied["error"]["code"]), kDeniedErrorCode);
  EXPECT_EQ(std::string_view(denied["error"]["message"]),
            "[POLICY DENIED] tool 't' denied by policy rule 'hide' (hidden tool)");
  EXPECT_EQ(std::string_view(denied["error"]["data"]["rule"]), "hide");
  write_denial(rate_limited(), "1", deny_style::error, body);
  auto limited = parse(parser, body);
  EXPECT_EQ(int64_t(limited["error"]["code"]), kRateLimitedErrorCode);
  EXPECT_EQ(int64_t(limited["error"]["data"]["max"]), 30);
}

TEST(Denial, EscapesEveryStringItEmits) {
  std::string tool = "we\"ird\\tool\n\x01";
  std::string message = "say \"no\"\t\xC3\xA9 \xFF";
  std::string body;
  write_denial(denied_by(tool, "tools.x.deny_if[0]", message), "1", deny_style::result, body);
  simdjson::dom::parser parser;
  auto root = parse(parser, body);
  EXPECT_EQ(std::string_view(root["result"]["structuredContent"]["tool"]), tool);
  EXPECT_EQ(std::string_view(root["result"]["content"].at(0)["text"]),
            "[POLICY DENIED] say \"no\"\t\xC3\xA9 \xEF\xBF\xBD");
}

TEST(Denial, NotificationsGetNoBody) {
  std::string body = "stale";
  write_denial(rate_limited(), "", deny_style::result, body);
  EXPECT_TRUE(body.empty());
}

TEST(JsonWriter, ReplacesInvalidUtf8AndKeepsValidSequences) {
  std::string out;
  append_json_string(out, "a\xE2\x82\xAC\xED\xA0\x80\xF0\x9F\x98\x80");
  // Each byte of the encoded surrogate (invalid in UTF-8) becomes an escaped U+FFFD.
  EXPECT_EQ(out, "\"a\xE2\x82\xAC\\ufffd\\ufffd\\ufffd\xF0\x9F\x98\x80\"");
}

}  // namespace
}  // namespace mcpgate::policy
