#include "net/observe/audit_record.h"

#include <gtest/gtest.h>

#include "core/stderr_log.h"

#include <simdjson.h>
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace mcpgate::net {
namespace {

// Raw argument bytes followed by simdjson's padding, as the extractor hands them over.
struct padded {
  explicit padded(std::string_view json) : bytes(json) {
    bytes.append(64, '\0');
    size = json.size();
  }
  raw_arguments view() const { return {bytes.data(), size}; }
  std::string bytes;
  size_t size;
};

// 2026-11-25T16:02:43.123456Z
constexpr int64_t sample_ns = 1795622563'123456'789;

audit_record sample() {
  audit_record r;
  r.realtime_ns = sample_ns;
  r.shard = 1;
  r.conn = 42;
  r.req = 7;
  r.identity = "alice@example.com";
  r.grant = "readers";
  r.server = "files";
  r.session = "4b1e2f0c-9a7d";
  r.method = "tools/call";
  r.id = "\"call-1\"";
  r.tool = "read_file";
  r.decision = call_decision::allowed;
  r.rule = "allow-read";
  r.forwarded = true;
  r.upstream_status = 200;
  r.upstream_us = 1500;
  r.gateway_us = 35;
  r.bytes_in = 180;
  r.bytes_out = 420;
  return r;
}

std::string line_for(const audit_record& r, arguments_mode mode) {
  std::string out;
  append_audit_line(out, r, mode);
  return out;
}

// Parses a line with simdjson's DOM (an independent reader) and checks it is one object.
simdjson::dom::element parse_line(simdjson::dom::parser& parser, const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "more than one line: " << line;
  simdjson::dom::element doc;
  auto error = parser.parse(line).get(doc);
  EXPECT_EQ(error, simdjson::SUCCESS) << simdjson::error_message(error) << " in " << line;
  EXPECT_TRUE(doc.is_object()) << line;
  return doc;
}

std::vector<std::string> keys_of(simdjson::dom::element doc) {
  std::vector<std::string> keys;
  for (auto field : doc.get_object()) keys.emplace_back(field.key);
  return keys;
}

TEST(AuditRecord, ForwardedCallHasEveryKeyInOrder) {
  simdjson::dom::parser parser;
  padded args(R"({"path":"/etc/hosts","mode":"r"})");
  audit_record r = sample();
  r.arguments = args.view();
  auto doc = parse_line(parser, line_for(r, arguments_mode::hash));
  EXPECT_EQ(keys_of(doc),
            (std::vector<std::string>{"ts", "shard", "conn", "req", "identity", "grant", "server",
                                      "session", "method", "id", "tool", "rule", "args", "decision",
                                      "upstream_status", "upstream_us", "gateway_us", "bytes_in",
                                      "bytes_out"}));
  EXPECT_EQ(std::string_view(doc["ts"]), "2026-11-25T16:02:43.123456Z");
  EXPECT_EQ(uint64_t(doc["shard"]), 1u);
  EXPECT_EQ(uint64_t(doc["conn"]), 42u);
  EXPECT_EQ(uint64_t(doc["req"]), 7u);
  EXPECT_EQ(std::string_view(doc["identity"]), "alice@example.com");
  EXPECT_EQ(std::string_view(doc["grant"]), "readers");
  EXPECT_EQ(std::string_view(doc["server"]), "files");
  EXPECT_EQ(std::string_view(doc["session"]), "4b1e2f0c-9a7d");
  EXPECT_EQ(std::string_view(doc["method"]), "tools/call");
  EXPECT_EQ(std::string_view(doc["id"]), "call-1");
  EXPECT_EQ(std::string_view(doc["tool"]), "read_file");
  EXPECT_EQ(std::string_view(doc["decision"]), "allowed");
  EXPECT_EQ(std::string_view(doc["rule"]), "allow-read");
  EXPECT_EQ(int64_t(doc["upstream_status"]), 200);
  EXPECT_EQ(int64_t(doc["upstream_us"]), 1500);
  EXPECT_EQ(int64_t(doc["gateway_us"]), 35);
  EXPECT_EQ(uint64_t(doc["bytes_in"]), 180u);
  EXPECT_EQ(uint64_t(doc["bytes_out"]), 420u);
}

TEST(AuditRecord, DeniedCallOmitsUpstreamKeysAndWritesNullForAbsentValues) {
  simdjson::dom::parser parser;
  audit_record r;
  r.realtime_ns = sample_ns;
  r.method = "notifications/initialized";
  r.decision = call_decision::unauthenticated;
  std::string line = line_for(r, arguments_mode::hash);
  auto doc = parse_line(parser, line);
  EXPECT_EQ(line.find("upstream_status"), std::string::npos) << line;
  EXPECT_EQ(line.find("upstream_us"), std::string::npos) << line;
  for (const char* key : {"identity", "grant", "session", "id", "tool", "rule", "args"})
    EXPECT_TRUE(doc[key].is_null()) << key << " in " << line;
  EXPECT_EQ(std::string_view(doc["decision"]), "unauthenticated");
}

TEST(AuditRecord, AnUpstreamFailureSaysWhatFailedAfterTheDecision) {
  simdjson::dom::parser parser;
  audit_record r = sample();
  r.decision = call_decision::upstream_error;
  r.error = "timeout";
  auto doc = parse_line(parser, line_for(r, arguments_mode::hash));
  std::vector<std::string> keys = keys_of(doc);
  auto at = std::find(keys.begin(), keys.end(), "decision");
  ASSERT_NE(at, keys.end());
  EXPECT_EQ(*(at + 1), "error");
  EXPECT_EQ(std::string_view(doc["error"]), "timeout");
  EXPECT_EQ(line_for(sample(), arguments_mode::hash).find("\"error\""), std::string::npos);
}

TEST(AuditRecord, EveryDecisionHasItsName) {
  simdjson::dom::parser parser;
  const std::pair<call_decision, const char*> all[] = {
      {call_decision::allowed, "allowed"},
      {call_decision::denied, "denied"},
      {call_decision::rate_limited, "rate_limited"},
      {call_decision::unauthenticated, "unauthenticated"},
      {call_decision::invalid, "invalid"},
      {call_decision::upstream_error, "upstream_error"}};
  for (auto [d, name] : all) {
    audit_record r = sample();
    r.decision = d;
    auto doc = parse_line(parser, line_for(r, arguments_mode::none));
    EXPECT_EQ(std::string_view(doc["decision"]), name);
  }
}

TEST(AuditRecord, NumericAndNullIdsAreWrittenAsSent) {
  simdjson::dom::parser parser;
  audit_record r = sample();
  r.id = "12345";
  EXPECT_EQ(int64_t(parse_line(parser, line_for(r, arguments_mode::none))["id"]), 12345);
  r.id = "null";
  EXPECT_TRUE(parse_line(parser, line_for(r, arguments_mode::none))["id"].is_null());
  r.id.reset();
  EXPECT_TRUE(parse_line(parser, line_for(r, arguments_mode::none))["id"].is_null());
}

TEST(AuditRecord, ArgumentsModeNoneWritesNull) {
  simdjson::dom::parser parser;
  padded args(R"({"secret":"hunter2"})");
  audit_record r = sample();
  r.arguments = args.view();
  std::string line = line_for(r, arguments_mode::none);
  EXPECT_TRUE(parse_line(parser, line)["args"].is_null());
  EXPECT_EQ(line.find("secret"), std::string::npos);
}

TEST(AuditRecord, ArgumentsModeKeysWritesUnescapedTopLevelNamesOnly) {
  simdjson::dom::parser parser;
  padded args(R"({"pa\u0074h":"/x","opts":{"nested":1},"tab\there":[1,2]})");
  audit_record r = sample();
  r.arguments = args.view();
  std::string line = line_for(r, arguments_mode::keys);
  auto doc = parse_line(parser, line);
  std::vector<std::string> keys;
  for (auto k : doc["args"]["keys"].get_array()) keys.emplace_back(std::string_view(k));
  EXPECT_EQ(keys, (std::vector<std::string>{"path", "opts", "tab\there"}));
  EXPECT_EQ(line.find("nested"), std::string::npos) << line;
  EXPECT_EQ(line.find("/x"), std::string::npos) << line;
  EXPECT_EQ(line.find("sha256"), std::string::npos) << line;
}

TEST(AuditRecord, ArgumentsModeHashWritesNamesAndSha256OfTheRawBytes) {
  simdjson::dom::parser parser;
  padded args(R"({"a":1})");
  audit_record r = sample();
  r.arguments = args.view();
  auto doc = parse_line(parser, line_for(r, arguments_mode::hash));
  // printf '{"a":1}' | sha256sum
  EXPECT_EQ(std::string_view(doc["args"]["sha256"]),
            "sha256:015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862");
  std::vector<std::string> keys;
  for (auto k : doc["args"]["keys"].get_array()) keys.emplace_back(std::string_view(k));
  EXPECT_EQ(keys, (std::vector<std::string>{"a"}));
}

TEST(AuditRecord, ArgumentsModeHashOfEmptyObjectHasNoKeys) {
  simdjson::dom::parser parser;
  padded args("{}");
  audit_record r = sample();
  r.arguments = args.view();
  auto doc = parse_line(parser, line_for(r, arguments_mode::hash));
  EXPECT_EQ(doc["args"]["keys"].get_array().size(), 0u);
  // printf '{}' | sha256sum
  EXPECT_EQ(std::string_view(doc["args"]["sha256"]),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
}

TEST(AuditRecord, ArgumentsModeFullInsertsTheObjectOnOneLine) {
  simdjson::dom::parser parser;
  padded args("{\n  \"query\": \"a\\nb\",\r\n  \"limit\": 5\n}");
  audit_record r = sample();
  r.arguments = args.view();
  auto doc = parse_line(parser, line_for(r, arguments_mode::full));
  EXPECT_EQ(std::string_view(doc["args"]["query"]), "a\nb");
  EXPECT_EQ(int64_t(doc["args"]["limit"]), 5);
}

TEST(AuditRecord, EscapesQuotesBackslashesAndControlCharacters) {
  simdjson::dom::parser parser;
  audit_record r = sample();
  std::string nasty = std::string("a\"b\\c\nd\re\tf\x01g\x1f") + '\0' + "h\x7f";
  r.identity = nasty;
  r.session = "\"}\n{\"decision\":\"allowed\"";
  r.tool = "t\u00e9l\u00e9charger \xf0\x9f\x93\x81";  // valid UTF-8 passes through
  auto doc = parse_line(parser, line_for(r, arguments_mode::none));
  EXPECT_EQ(std::string_view(doc["identity"]), nasty);
  EXPECT_EQ(std::string_view(doc["session"]), "\"}\n{\"decision\":\"allowed\"");
  EXPECT_EQ(std::string_view(doc["tool"]), "t\u00e9l\u00e9charger \xf0\x9f\x93\x81");
}

TEST(AuditRecord, InvalidUtf8BecomesReplacementCharacters) {
  simdjson::dom::parser parser;
  audit_record r = sample();
  r.session = "ab\xff\xc0\xafz\xed\xa0\x80!\xe2\x82";  // stray, overlong, surrogate, truncated
  auto doc = parse_line(parser, line_for(r, arguments_mode::none));
  std::string_view session = doc["session"];
  EXPECT_EQ(session.substr(0, 2), "ab");
  EXPECT_NE(session.find("z"), std::string_view::npos);
  EXPECT_NE(session.find("\xef\xbf\xbd"), std::string_view::npos);
}

TEST(AuditRecord, TimestampsAreRfc3339UtcWithMicroseconds) {
  auto ts = [](int64_t ns) {
    std::string out;
    core::append_rfc3339_micros(out, ns);
    return out;
  };
  EXPECT_EQ(ts(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(ts(999), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(ts(1'000), "1970-01-01T00:00:00.000001Z");
  EXPECT_EQ(ts(951'782'400'000'000'000), "2000-02-29T00:00:00.000000Z");
  EXPECT_EQ(ts(4'107'542'399'999'999'000), "2100-02-28T23:59:59.999999Z");
  EXPECT_EQ(ts(sample_ns), "2026-11-25T16:02:43.123456Z");
  EXPECT_EQ(ts(-1'000), "1969-12-31T23:59:59.999999Z");
}

TEST(AuditRecord, ManyLinesAppendedToOneBufferEachParse) {
  simdjson::dom::parser parser;
  padded args(R"({"k":"v"})");
  std::string out;
  for (int i = 0; i < 100; ++i) {
    audit_record r = sample();
    r.req = static_cast<uint64_t>(i);
    r.arguments = args.view();
    append_audit_line(out, r, static_cast<arguments_mode>(i % 4));
  }
  size_t start = 0;
  int n = 0;
  while (start < out.size()) {
    size_t nl = out.find('\n', start);
    ASSERT_NE(nl, std::string::npos);
    auto doc = parse_line(parser, out.substr(start, nl + 1 - start));
    EXPECT_EQ(uint64_t(doc["req"]), uint64_t(n));
    ++n;
    start = nl + 1;
  }
  EXPECT_EQ(n, 100);
}

}  // namespace
}  // namespace mcpgate::net
