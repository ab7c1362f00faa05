// Hostile clients against a running shard: escaped names, duplicate members, header and body
// disagreement, pipelining, slowloris.

#include "tests/net/exchange/harness.h"

#include <simdjson.h>

namespace mcpgate::net {
namespace {

using namespace testing;
using namespace std::chrono_literals;

TEST(ProxyHostile, DecidesOnTheUnescapedToolNameAndMethod) {
  scripted_upstream up(answer_json);
  policy::counter_store counters;
  gateway gw(up.port(), 1, {}, deny_clear_session(counters));
  int fd = connect_to(gw.port());
  message m = round_trip(
      fd,
      post(
          R"({"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"clear\u005fsession","arguments":{}}})"));
  EXPECT_NE(m.body.find("[POLICY DENIED] Blocked by default. Requires approval."),
            std::string::npos)
      << m.body;
  EXPECT_EQ(up.requests(), 0);
  close(fd);
}

TEST(ProxyHostile, RejectsADuplicateNameThatAnUpstreamCouldReadDifferently) {
  scripted_upstream up(answer_json);
  policy::counter_store counters;
  gateway gw(up.port(), 1, {}, deny_clear_session(counters));
  int fd = connect_to(gw.port());
  message m = round_trip(
      fd,
      post(
          R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"clear_session"}})"));
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 400");
  EXPECT_NE(m.body.find("-32600"), std::string::npos) << m.body;
  EXPECT_EQ(up.requests(), 0);
  close(fd);
}

TEST(ProxyHostile, AnswersAnMcpMethodHeaderThatDisagreesWithTheBodyWith400And32020) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(call_body,
                                  "MCP-Protocol-Version: 2026-07-28\r\n"
                                  "Mcp-Method: tools/list\r\n"));
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 400");
  EXPECT_NE(m.body.find("-32020"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find(R"("id":41)"), std::string::npos) << m.body;
  message name = round_trip(fd, post(call_body, "Mcp-Method: tools/call\r\nMcp-Name: other\r\n"));
  EXPECT_NE(name.body.find("-32020"), std::string::npos) << name.body;
  message agree = round_trip(fd, post(call_body, "Mcp-Method: tools/call\r\nMcp-Name: echo\r\n"));
  EXPECT_EQ(agree.head.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_EQ(up.requests(), 1);
  close(fd);
}

TEST(ProxyHostile, DeniesTheSecondOfTwoPipelinedRequestsInOneSegment) {
  scripted_upstream up(answer_json);
  policy::counter_store counters;
  gateway gw(up.port(), 1, {}, deny_clear_session(counters));
  int fd = connect_to(gw.port());
  send_all(
      fd,
      post(call_body) +
          post(
              R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"clear_session"}})"));
  std::string buf;
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  message first = parse_message(buf);
  buf.erase(0, first.total);
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  message second = parse_message(buf);
  EXPECT_EQ(first.body.find("POLICY DENIED"), std::string::npos);
  EXPECT_NE(second.body.find("[POLICY DENIED]"), std::string::npos) << second.body;
  EXPECT_EQ(up.requests(), 1);
  close(fd);
}

TEST(ProxyHostile, AnswersARequestPipelinedBehindA404OnTheSameConnection) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  // Both requests in one segment: the second is already buffered when the first is answered.
  send_all(fd, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n" + post(call_body));
  std::string buf;
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  message first = parse_message(buf);
  buf.erase(0, first.total);
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }))
      << buf;
  EXPECT_EQ(first.head.substr(0, 12), "HTTP/1.1 404");
  EXPECT_EQ(parse_message(buf).head.substr(0, 15), "HTTP/1.1 200 OK") << buf;
  EXPECT_EQ(up.requests(), 1);
  close(fd);
}

TEST(ProxyHostile, AnswersAPostWithoutABodyWithParseError) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd,
                         "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         "Accept: application/json, text/event-stream\r\n\r\n");
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 400");
  EXPECT_NE(m.body.find("-32700"), std::string::npos) << m.body;
  EXPECT_EQ(up.requests(), 0);
  close(fd);
}

TEST(ProxyHostile, StatesTheExactLengthOfThe503OverTheConnectionLimit) {
  scripted_upstream up(answer_json);
  gateway gw(up.port(), 1, [](gateway_config& c) { c.max_connections = 1; });
  int a = connect_to(gw.port());
  ASSERT_TRUE(round_trip(a, post(call_body)).complete);
  int b = connect_to(gw.port());
  std::string buf;
  read_until(b, buf, [](const std::string&) { return false; });  // until the gateway closes
  message m = parse_message(buf);
  ASSERT_TRUE(m.complete) << buf;
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 503");
  EXPECT_EQ(m.total, buf.size()) << "Content-Length must match the body";
  EXPECT_EQ(m.body.back(), '}');
  close(b);
  close(a);
}

TEST(ProxyHostile, AuditsASlowlorisHeadAsARequestOfItsOwn) {
  scripted_upstream up(answer_json);
  policy::counter_store counters;
  auto gate = deny_clear_session(counters);
  constexpr std::string_view partial_head = "POST /mcp HTTP/1.1\r\nHost: x\r\n";
  std::string path = ::testing::TempDir() + "proxy_audit_slowloris.log";
  std::remove(path.c_str());
  {
    gateway gw(
        up.port(), 1,
        [&](gateway_config& c) {
          c.audit.file = core::log_file::open(path).file;
          c.header_timeout_ms = 200;
        },
        gate);
    int fd = connect_to(gw.port());
    ASSERT_TRUE(round_trip(fd, post(call_body, "Mcp-Session-Id: " +
                                                   gw.session_token("s1", "anonymous") + "\r\n"))
                    .complete);
    send_all(fd, partial_head);  // and never the rest
    std::string buf;
    read_until(fd, buf, [](const std::string&) { return false; });  // until the gateway closes
    EXPECT_EQ(buf.substr(0, 12), "HTTP/1.1 408") << buf;
    close(fd);
  }
  std::vector<std::string> lines = read_lines(path);
  ASSERT_EQ(lines.size(), 2u);
  simdjson::dom::parser parser;
  simdjson::dom::element allowed = parser.parse(lines[0]);
  int64_t allowed_req = allowed["req"].get_int64().value_unsafe();
  EXPECT_EQ(std::string_view(allowed["identity"].get_string().value_unsafe()), "anonymous");
  EXPECT_EQ(std::string_view(allowed["session"].get_string().value_unsafe()), "s1");
  simdjson::dom::element timed_out = parser.parse(lines[1]);
  EXPECT_EQ(std::string_view(timed_out["decision"].get_string().value_unsafe()), "invalid");
  EXPECT_EQ(timed_out["req"].get_int64().value_unsafe(), allowed_req + 1) << lines[1];
  EXPECT_EQ(timed_out["bytes_in"].get_int64().value_unsafe(), int64_t(partial_head.size()))
      << lines[1];
  // Neither the identity nor the session of the request before: this one never said who it is.
  EXPECT_TRUE(timed_out["identity"].is_null()) << lines[1];
  EXPECT_TRUE(timed_out["session"].is_null()) << lines[1];
  EXPECT_EQ(up.requests(), 1);
}

// A tmpfs of 256 KiB, mostly filled by a ballast file, so the audit log runs out of space
// after a few hundred lines. Needs root (tests run as root here and in CI); skips otherwise.
}  // namespace
}  // namespace mcpgate::net
