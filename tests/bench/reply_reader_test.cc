#include "bench/mcpbench/reply_reader.h"

#include <string>

#include <gtest/gtest.h>

#include "bench/mcpbench/load_generator.h"

namespace mcpgate::bench {
namespace {

std::string json_response(std::string_view body, std::string_view extra_headers = "") {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + std::string(extra_headers) +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

std::string chunked_sse_response(std::string_view events) {
  // Split into two chunks so the decoder has to join them.
  std::size_t half = events.size() / 2;
  auto chunk = [](std::string_view c) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", c.size());
    return std::string(size) + std::string(c) + "\r\n";
  };
  return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: "
         "chunked\r\n\r\n" +
         chunk(events.substr(0, half)) + chunk(events.substr(half)) + "0\r\n\r\n";
}

// Feeds `wire` to a reader in pieces of `step` bytes; expects one complete response.
response_reader read_in_pieces(const std::string& wire, std::size_t step) {
  response_reader r;
  std::size_t at = 0;
  while (at < wire.size()) {
    auto s = r.feed(std::string_view(wire).substr(at, std::min(step, wire.size() - at)));
    EXPECT_NE(s.state, response_reader::status::error);
    at += s.consumed;
    if (s.state == response_reader::status::complete) break;
  }
  EXPECT_EQ(at, wire.size());
  return r;
}

TEST(ResponseReader, ReadsAJsonReplySplitAcrossEveryByte) {
  std::string body = R"({"jsonrpc":"2.0","id":7,"result":{"content":[]}})";
  auto wire = json_response(body, "Mcp-Session-Id: abc\r\n");
  for (std::size_t step : {1u, 3u, 64u, 4096u}) {
    auto r = read_in_pieces(wire, step);
    EXPECT_EQ(r.status_code(), 200);
    EXPECT_EQ(r.body(), body);
    EXPECT_EQ(r.session_id(), "abc");
    EXPECT_TRUE(r.keep_alive());
    EXPECT_FALSE(r.is_event_stream());
  }
}

TEST(ResponseReader, LeavesTheBytesOfTheNextResponseUnconsumed) {
  auto first = json_response(R"({"jsonrpc":"2.0","id":1,"result":{}})");
  auto wire = first + "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
  response_reader r;
  auto s = r.feed(wire);
  EXPECT_EQ(s.state, response_reader::status::complete);
  EXPECT_EQ(s.consumed, first.size());
  r.reset();
  s = r.feed(std::string_view(wire).substr(first.size()));
  EXPECT_EQ(s.state, response_reader::status::complete);
  EXPECT_EQ(r.status_code(), 202);
  EXPECT_TRUE(r.body().empty());
}

TEST(ResponseReader, DecodesAChunkedEventStream) {
  std::string events = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n";
  auto r = read_in_pieces(chunked_sse_response(events), 5);
  EXPECT_TRUE(r.is_event_stream());
  EXPECT_EQ(r.body(), events);
}

TEST(ResponseReader, SkipsAnInterimResponse) {
  auto wire =
      "HTTP/1.1 100 Continue\r\n\r\n" + json_response(R"({"jsonrpc":"2.0","id":1,"result":{}})");
  response_reader r;
  auto s = r.feed(wire);
  EXPECT_EQ(s.state, response_reader::status::complete);
  EXPECT_EQ(s.consumed, wire.size());
  EXPECT_EQ(r.status_code(), 200);
}

TEST(ResponseReader, RejectsAMalformedHead) {
  response_reader r;
  EXPECT_EQ(r.feed("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").state,
            response_reader::status::error);
  response_reader r2;
  EXPECT_EQ(r2.feed("HTTP/1.1 200 OK\nBare: lf\n\n").state, response_reader::status::error);
}

TEST(ResponseReader, RejectsABodyDelimitedOnlyByClose) {
  response_reader r;
  EXPECT_EQ(r.feed("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}").state,
            response_reader::status::error);
}

TEST(ReplyClassifier, CountsAResultWithTheRequestsIdAsOk) {
  reply_classifier c;
  auto o = c.classify_json(
      R"({"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"ok"}]}})", "42");
  EXPECT_EQ(o.kind, reply_kind::ok);
  o = c.classify_json(R"({ "result" : {} , "id" : "a b" , "jsonrpc":"2.0" })", R"("a b")");
  EXPECT_EQ(o.kind, reply_kind::ok);
}

TEST(ReplyClassifier, ReportsAReplyForAnotherRequestAsIdMismatch) {
  reply_classifier c;
  auto o = c.classify_json(R"({"jsonrpc":"2.0","id":41,"result":{}})", "42");
  EXPECT_EQ(o.kind, reply_kind::error);
  EXPECT_EQ(o.error, error_kind::id_mismatch);
  // With no expected id (a canned reply) any id is accepted.
  EXPECT_EQ(c.classify_json(R"({"jsonrpc":"2.0","id":41,"result":{}})", "").kind, reply_kind::ok);
}

TEST(ReplyClassifier, CountsPolicyDenialsAsDeniedNotAsErrors) {
  reply_classifier c;
  // deny_as "result": a tool result with isError.
  auto o = c.classify_json(
      R"({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"[POLICY DENIED] no"}],"isError":true,"structuredContent":{"decision":"denied"}}})",
      "1");
  EXPECT_EQ(o.kind, reply_kind::denied);
  // deny_as "error": -32010 denied, -32011 rate limited.
  EXPECT_EQ(
      c.classify_json(R"({"jsonrpc":"2.0","id":1,"error":{"code":-32010,"message":"x"}})", "1")
          .kind,
      reply_kind::denied);
  EXPECT_EQ(c.classify_json(
                 R"({"jsonrpc":"2.0","id":1,"error":{"message":"x","code":-32011,"data":{}}})", "1")
                .kind,
            reply_kind::denied);
}

TEST(ReplyClassifier, ReportsOtherJsonRpcErrorsAsRpcErrors) {
  reply_classifier c;
  auto o =
      c.classify_json(R"({"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}})", "1");
  EXPECT_EQ(o.kind, reply_kind::error);
  EXPECT_EQ(o.error, error_kind::rpc_error);
}

TEST(ReplyClassifier, ReportsBodiesThatAreNotJsonRpcRepliesAsMalformed) {
  reply_classifier c;
  for (std::string_view body :
       {"", "not json", "[1,2]", R"({"jsonrpc":"2.0","id":1})",
        R"({"jsonrpc":"2.0","method":"notifications/progress","params":{}})",
        R"({"jsonrpc":"2.0","id":1,"result":{)"}) {
    auto o = c.classify_json(body, "1");
    EXPECT_EQ(o.kind, reply_kind::error) << body;
    EXPECT_EQ(o.error, error_kind::malformed_body) << body;
  }
}

TEST(ReplyClassifier, FindsTheResponseAfterNotificationsInAnEventStream) {
  reply_classifier c;
  std::string stream =
      ": priming comment\n\n"
      "id: 1\ndata:\n\n"
      "event: message\ndata: "
      "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n"
      "event: message\ndata: "
      "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"sampling/createMessage\",\"params\":{}}\n\n"
      "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata: "
      "\"id\":5,\"result\":{\"isError\":false}}\r\n\r\n";
  auto o = c.classify_event_stream(stream, "5");
  EXPECT_EQ(o.kind, reply_kind::ok);
}

TEST(ReplyClassifier, ReportsAnEventStreamThatEndsWithoutAResponseAsMalformed) {
  reply_classifier c;
  auto o = c.classify_event_stream(
      "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n", "5");
  EXPECT_EQ(o.kind, reply_kind::error);
  EXPECT_EQ(o.error, error_kind::malformed_body);
}

TEST(ReplyClassifier, ClassifiesAReadResponseByItsMediaTypeAndStatus) {
  reply_classifier c;
  std::string events = "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"isError\":true}}\n\n";
  auto sse = read_in_pieces(chunked_sse_response(events), 1000);
  EXPECT_EQ(c.classify(sse, "3").kind, reply_kind::denied);

  response_reader r;
  std::string body = R"({"jsonrpc":"2.0","id":3,"error":{"code":-32030,"message":"upstream"}})";
  r.feed("HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body);
  auto o = c.classify(r, "3");
  EXPECT_EQ(o.kind, reply_kind::error);
  EXPECT_EQ(o.error, error_kind::http_status);
}

TEST(ToolsCallBody, IsAToolsCallWithTheIdToolAndFillerAsked) {
  reply_classifier c;
  auto body = tools_call_body(12, "read_file", 5);
  EXPECT_EQ(
      body,
      R"({"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/tmp/a.txt","filler":"xxxxx"}}})");
}

}  // namespace
}  // namespace mcpgate::bench
