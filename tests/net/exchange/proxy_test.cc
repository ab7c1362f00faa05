// The shard relaying to a scripted upstream: forwarding, pooling, pipelining, upstream faults,
// streams and their backpressure, framing, limits, drain and refunds.

#include "tests/net/exchange/harness.h"

#include <simdjson.h>

namespace mcpgate::net {
namespace {

using namespace testing;
using namespace std::chrono_literals;

TEST(Proxy, ForwardsBodyBytesUnchangedAndRewritesHostAndHopByHopHeaders) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  ASSERT_GE(fd, 0);
  message m = round_trip(fd, post(call_body,
                                  "Connection: keep-alive, X-Private\r\nX-Private: 1\r\n"
                                  "Mcp-Session-Id: " +
                                      gw.session_token("abc") + "\r\nKeep-Alive: timeout=9\r\n"));
  ASSERT_TRUE(m.complete);
  EXPECT_EQ(m.head.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_EQ(m.head.find("Keep-Alive"), std::string::npos) << m.head;
  ASSERT_EQ(up.received().size(), 1u);
  std::string seen = up.received()[0];
  EXPECT_NE(seen.find("POST /mcp HTTP/1.1\r\n"), std::string::npos);
  EXPECT_NE(seen.find("Host: 127.0.0.1:" + std::to_string(up.port()) + "\r\n"), std::string::npos);
  EXPECT_NE(seen.find("Mcp-Session-Id: abc\r\n"), std::string::npos);
  EXPECT_EQ(seen.find("X-Private"), std::string::npos) << "named in Connection: hop-by-hop";
  EXPECT_EQ(seen.find("Keep-Alive"), std::string::npos);
  EXPECT_EQ(seen.find("gateway.test"), std::string::npos);
  EXPECT_EQ(seen.substr(seen.size() - call_body.size()), call_body);
  close(fd);
}

TEST(Proxy, ReusesOneUpstreamConnectionAcrossRequestsAndClients) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  for (int client = 0; client < 3; ++client) {
    int fd = connect_to(gw.port());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(round_trip(fd, post(call_body)).complete);
    close(fd);
  }
  EXPECT_EQ(up.requests(), 15);
  EXPECT_EQ(up.connections(), 1);
  EXPECT_EQ(gw.stats().upstream_reused.get(), 14u);
}

TEST(Proxy, AnswersPipelinedRequestsInOrder) {
  int n = 0;
  scripted_upstream up([&n](int fd, const message& req, int) {
    std::string body = req.body;  // echo
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body);
    return ++n > 0;
  });
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  std::string all;
  for (int i = 1; i <= 3; ++i)
    all += post(R"({"jsonrpc":"2.0","id":)" + std::to_string(i) + R"(,"method":"ping"})");
  send_all(fd, all);
  std::string buf;
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(
        read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
    message m = parse_message(buf);
    EXPECT_NE(m.body.find("\"id\":" + std::to_string(i)), std::string::npos) << m.body;
    buf.erase(0, m.total);
  }
  close(fd);
}

TEST(Proxy, RefusedUpstreamGivesJsonRpcErrorWithTheRequestIdAndKeepsServing) {
  uint16_t dead_port;
  {
    scripted_upstream gone(answer_json);
    dead_port = gone.port();
  }  // closed: connections to it are refused
  gateway gw(dead_port);
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(call_body));
  ASSERT_TRUE(m.complete);
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 502");
  EXPECT_NE(m.body.find(R"("id":41)"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find(R"("code":-32030)"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("connection refused"), std::string::npos) << m.body;
  // The same connection still works for the next request.
  message again = round_trip(fd, post(call_body));
  EXPECT_EQ(again.head.substr(0, 12), "HTTP/1.1 502");
  close(fd);
}

TEST(Proxy, UpstreamResetBeforeResponseGivesJsonRpcErrorThenRecovers) {
  scripted_upstream up([](int fd, const message& req, int index) {
    if (index == 0) {
      linger l{1, 0};  // close with RST
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      return false;
    }
    return answer_json(fd, req, index);
  });
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(call_body));
  ASSERT_TRUE(m.complete);
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 502");
  EXPECT_NE(m.body.find(R"("id":41)"), std::string::npos);
  message ok = round_trip(fd, post(call_body));
  EXPECT_EQ(ok.head.substr(0, 15), "HTTP/1.1 200 OK");
  close(fd);
}

TEST(Proxy, UpstreamResetMidStreamEndsTheClientStreamCleanly) {
  scripted_upstream up([](int fd, const message&, int) {
    send_all(fd,
             "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
             "Transfer-Encoding: chunked\r\n\r\n");
    std::string event =
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
    char size[16];
    snprintf(size, sizeof size, "%zx\r\n", event.size());
    send_all(fd, size + event + "\r\n");
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    return false;
  });
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  send_all(fd, post(call_body));
  std::string buf;
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  message m = parse_message(buf);
  EXPECT_NE(m.head.find("text/event-stream"), std::string::npos);
  EXPECT_NE(m.body.find("notifications/progress"), std::string::npos);
  // The stream ended with its terminating chunk, then the gateway closed the connection.
  std::string rest = buf.substr(m.total);
  read_until(fd, rest, [](const std::string&) { return false; });  // returns at EOF
  EXPECT_EQ(rest, "");
  close(fd);
  // And the gateway serves the next client.
  int fd2 = connect_to(gw.port());
  send_all(fd2, post(call_body));
  std::string buf2;
  ASSERT_TRUE(
      read_until(fd2, buf2, [](const std::string& b) { return parse_message(b).complete; }));
  close(fd2);
}

TEST(Proxy, UpstreamStallingAfterTheResponseHeadIsCutOffAtTheResponseTimeoutThenRecovers) {
  std::atomic<bool> upstream_saw_close{false};
  scripted_upstream up([&upstream_saw_close](int fd, const message& request, int index) {
    if (index > 0) return answer_json(fd, request, index);
    send_all(fd,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
             "{\"jsonrpc\"");
    // Nothing more: the gateway has to give up on the body and close this connection.
    pollfd p{fd, POLLIN, 0};
    char byte;
    upstream_saw_close = poll(&p, 1, 10'000) == 1 && recv(fd, &byte, 1, 0) <= 0;
    return false;
  });
  gateway gw(up.port(), 1, [](gateway_config& c) { c.upstreams[0].response_timeout_ms = 200; });
  int fd = connect_to(gw.port());
  auto start = std::chrono::steady_clock::now();
  send_all(fd, post(call_body));
  std::string buf;
  read_until(fd, buf, [](const std::string&) { return false; });  // returns at EOF
  auto waited = std::chrono::steady_clock::now() - start;
  close(fd);
  // The client got what was relayed, then a closed connection well before read_until's deadline.
  EXPECT_EQ(buf.substr(0, 15), "HTTP/1.1 200 OK") << buf;
  EXPECT_TRUE(buf.ends_with("\r\n\r\n{\"jsonrpc\"")) << buf;
  EXPECT_LT(waited, 5s);
  auto end = std::chrono::steady_clock::now() + deadline;
  while (!upstream_saw_close && std::chrono::steady_clock::now() < end) std::this_thread::yield();
  EXPECT_TRUE(upstream_saw_close);
  EXPECT_NE(gw.metrics_text().find(R"(mcpgate_upstream_errors_total{kind="timeout"} 1)"),
            std::string::npos)
      << gw.metrics_text();
  int fd2 = connect_to(gw.port());
  EXPECT_EQ(round_trip(fd2, post(call_body)).head.substr(0, 12), "HTTP/1.1 200");
  close(fd2);
}

TEST(Proxy, RelaysEachSseEventBeforeTheStreamEnds) {
  std::atomic<bool> release{false};
  scripted_upstream up([&release](int fd, const message&, int) {
    send_all(
        fd,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::string event = "data: first\n\n";
    send_all(fd, "d\r\n" + event + "\r\n");
    auto end = std::chrono::steady_clock::now() + deadline;
    while (!release && std::chrono::steady_clock::now() < end) std::this_thread::yield();
    send_all(fd, "e\r\ndata: second\n\n\r\n0\r\n\r\n");
    return true;
  });
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  send_all(fd, post(call_body));
  std::string buf;
  // The first event arrives while the upstream still holds the stream open.
  ASSERT_TRUE(read_until(
      fd, buf, [](const std::string& b) { return b.find("data: first") != std::string::npos; }));
  EXPECT_EQ(buf.find("data: second"), std::string::npos);
  release = true;
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  EXPECT_EQ(parse_message(buf).body, "data: first\n\ndata: second\n\n");
  close(fd);
}

TEST(Proxy, FiltersOnlyTheToolsListResponseOfAStreamAndPassesEveryOtherEventAsItCame) {
  // A 2025-11-25 server's reply: a priming event (an id and empty data), a comment, a retry
  // field, a notification, a server request, then the response.
  const std::string stream =
      "id: prime-1\ndata: \n\n: keep-alive\n\nretry: 3000\n\n"
      "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\","
      "\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n"
      "data: {\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"roots/list\"}\n\n"
      "id: 2\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"tools\":[{\"name\":\"a\"},"
      "{\"name\":\"secret\"}]}}\n\n";
  scripted_upstream up([&stream](int fd, const message&, int) {
    char size[16];
    snprintf(size, sizeof size, "%zx\r\n", stream.size());
    send_all(fd,
             "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
             "Transfer-Encoding: chunked\r\n\r\n" +
                 std::string(size) + stream + "\r\n0\r\n\r\n");
    return true;
  });
  policy::counter_store counters;
  auto doc = std::make_shared<const policy::document>(
      policy::parse_document(R"({"version":"1","hide":["secret"]})", "hide.json"));
  auto gate = std::make_shared<const policy_gate_config>(policy::make_access_config(doc, counters));
  gateway gw(up.port(), 1, {}, gate);
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(R"({"jsonrpc":"2.0","id":5,"method":"tools/list"})"));
  ASSERT_TRUE(m.complete) << m.head;
  EXPECT_EQ(m.body,
            "id: prime-1\ndata: \n\n: keep-alive\n\nretry: 3000\n\n"
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\","
            "\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n"
            "data: {\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"roots/list\"}\n\n"
            "id: 2\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"tools\":[{\"name\":\"a\"}]}}"
            "\n\n");
  close(fd);
  // The stream has ended: the gauge is back at 0.
  EXPECT_NE(gw.metrics_text().find("\nmcpgate_open_sse_streams 0\n"), std::string::npos)
      << gw.metrics_text();
}

TEST(Proxy, AStreamThatFailsOrLosesItsClientLeavesTheOpenStreamsGauge) {
  // The first stream breaks off mid-way (the upstream resets), the second loses its client.
  scripted_upstream up([](int fd, const message&, int index) {
    send_all(fd,
             "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
             "Transfer-Encoding: chunked\r\n\r\n7\r\ndata: 1\n\r\n");
    if (index == 0) {
      linger l{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      return false;
    }
    std::string ignored;
    read_until(fd, ignored, [](const std::string&) { return false; });  // until the gateway closes
    return false;
  });
  gateway gw(up.port());
  auto gauge = [&gw] {
    std::string text = gw.metrics_text();
    std::string_view needle = "\nmcpgate_open_sse_streams ";
    size_t at = text.find(needle);
    if (at == std::string::npos) return std::string("?");
    size_t from = at + needle.size();
    return text.substr(from, text.find('\n', from) - from);
  };
  for (int i = 0; i < 2; ++i) {
    int fd = connect_to(gw.port());
    send_all(fd, post(call_body));
    std::string buf;
    ASSERT_TRUE(read_until(
        fd, buf, [](const std::string& b) { return b.find("data: 1") != std::string::npos; }));
    close(fd);
  }
  auto end = std::chrono::steady_clock::now() + deadline;
  while (gauge() != "0" && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(gauge(), "0") << gw.metrics_text();
}

TEST(Proxy, RelaysAChunkedStreamLongerThanTheRequestBodyLimitWhole) {
  // 6 MiB of events, over max_body (4 MiB): a stream is relayed however long it runs.
  const std::string event = "data: " + std::string(64 * 1024 - 8, 'x') + "\n\n";
  constexpr int events = 96;
  scripted_upstream up([&event](int fd, const message&, int) {
    send_all(fd,
             "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
             "Transfer-Encoding: chunked\r\n\r\n");
    char size[16];
    snprintf(size, sizeof size, "%zx\r\n", event.size());
    for (int i = 0; i < events; ++i) send_all(fd, size + event + "\r\n");
    send_all(fd, "0\r\n\r\n");
    return true;
  });
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(call_body));
  ASSERT_TRUE(m.complete) << m.head;
  EXPECT_EQ(m.body.size(), event.size() * events);
  close(fd);
}

TEST(Proxy, AClientReadingSlowlyPausesTheUpstreamAndStillGetsTheWholeStream) {
  // 3 MiB sent at once: the gateway stops reading the upstream while more than
  // relay_high_water (1 MiB) waits for the client, and reads on as the client catches up.
  const std::string event = "data: " + std::string(64 * 1024 - 8, 'y') + "\n\n";
  constexpr int events = 48;
  scripted_upstream up([&event](int fd, const message&, int) {
    std::string all =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    char size[16];
    snprintf(size, sizeof size, "%zx\r\n", event.size());
    for (int i = 0; i < events; ++i) all += size + event + "\r\n";
    all += "0\r\n\r\n";
    send_all(fd, all);
    return true;
  });
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  int small = 16 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  send_all(fd, post(call_body));
  std::string buf;
  auto end = std::chrono::steady_clock::now() + deadline;
  while (!parse_message(buf).complete && std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0) continue;
    char tmp[16 * 1024];  // a little at a time
    ssize_t n = recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) break;
    buf.append(tmp, static_cast<size_t>(n));
  }
  message m = parse_message(buf);
  ASSERT_TRUE(m.complete) << buf.size() << " bytes before the stream ended";
  EXPECT_EQ(m.body.size(), event.size() * events);
  close(fd);
}

TEST(Proxy, RelaysAResponseThatArrivesOneByteAtATimeAfterAnInterim100) {
  scripted_upstream up([](int fd, const message&, int) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string body = R"({"jsonrpc":"2.0","id":41,"result":{}})";
    std::string response =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    for (char ch : response) send_all(fd, std::string_view(&ch, 1));
    return true;
  });
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(call_body));
  ASSERT_TRUE(m.complete);
  EXPECT_EQ(m.head.substr(0, 15), "HTTP/1.1 200 OK")
      << "the interim response is the gateway's to absorb";
  EXPECT_EQ(m.body, R"({"jsonrpc":"2.0","id":41,"result":{}})");
  // The connection stays usable: the next exchange works on it.
  EXPECT_TRUE(round_trip(fd, post(call_body)).complete);
  close(fd);
}

TEST(Proxy, RejectsDuplicateSessionHeadersBeforeForwarding) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(call_body, "Mcp-Session-Id: a\r\nMcp-Session-Id: b\r\n"));
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 400");
  EXPECT_NE(m.body.find("duplicate mcp-session-id header"), std::string::npos) << m.body;
  EXPECT_EQ(up.requests(), 0);
  close(fd);
}

TEST(Proxy, RejectsContentLengthWithTransferEncodingAndCloses) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  send_all(fd,
           "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
               post(call_body));
  std::string buf;
  read_until(fd, buf, [](const std::string&) { return false; });  // until the gateway closes
  message m = parse_message(buf);
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 400");
  EXPECT_NE(m.head.find("Connection: close"), std::string::npos);
  EXPECT_EQ(buf.find("HTTP/1.1", 1), std::string::npos)
      << "the smuggled request must not be answered";
  EXPECT_EQ(up.requests(), 0);
  close(fd);
}

TEST(Proxy, AnswersInvalidJsonWithParseErrorAndNeverForwards) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(R"({"jsonrpc":"2.0","id":1,"method":"ping"} trailing)"));
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 400");
  EXPECT_NE(m.body.find("-32700"), std::string::npos) << m.body;
  EXPECT_EQ(up.requests(), 0);
  close(fd);
}

TEST(Proxy, DecodesAChunkedRequestBodyAndForwardsItWithContentLength) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  std::string body(call_body);
  std::string req =
      "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Accept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
  char size[16];
  snprintf(size, sizeof size, "%zx\r\n", body.size() - 10);
  req += size + body.substr(0, body.size() - 10) + "\r\na\r\n" + body.substr(body.size() - 10) +
         "\r\n0\r\n\r\n";
  // One byte at a time: the parser must cope with every split.
  for (char ch : req) send_all(fd, std::string_view(&ch, 1));
  std::string buf;
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  EXPECT_EQ(parse_message(buf).head.substr(0, 15), "HTTP/1.1 200 OK");
  ASSERT_EQ(up.received().size(), 1u);
  std::string seen = up.received()[0];
  EXPECT_NE(seen.find("Content-Length: " + std::to_string(body.size()) + "\r\n"),
            std::string::npos);
  EXPECT_EQ(seen.find("Transfer-Encoding"), std::string::npos);
  EXPECT_EQ(seen.substr(seen.size() - body.size()), body);
  close(fd);
}

TEST(Proxy, ServesOtherPathsWith404AndOtherMethodsWith405) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 404");
  message put = round_trip(fd, "PUT /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(put.head.substr(0, 12), "HTTP/1.1 405");
  EXPECT_NE(put.head.find("Allow: GET, POST, DELETE"), std::string::npos);
  EXPECT_EQ(up.requests(), 0);
  close(fd);
}

TEST(Proxy, AnswersConnectionsOverTheLimitWith503AndKeepsAccepting) {
  scripted_upstream up(answer_json);
  gateway gw(up.port(), 1, [](gateway_config& c) { c.max_connections = 2; });
  int a = connect_to(gw.port());
  int b = connect_to(gw.port());
  ASSERT_TRUE(round_trip(a, post(call_body)).complete);
  ASSERT_TRUE(round_trip(b, post(call_body)).complete);
  int c = connect_to(gw.port());
  std::string buf;
  read_until(c, buf, [](const std::string&) { return false; });
  EXPECT_EQ(buf.substr(0, 12), "HTTP/1.1 503");
  close(c);
  close(a);
  // Once a slot frees, new clients are served again.
  std::string later;
  auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    int d = connect_to(gw.port());
    message m = round_trip(d, post(call_body));
    close(d);
    later = m.head.substr(0, 12);
    if (later == "HTTP/1.1 200") break;
  }
  EXPECT_EQ(later, "HTTP/1.1 200");
  close(b);
}

TEST(Proxy, DrainFinishesTheExchangeInFlightThenStopsAccepting) {
  std::atomic<bool> release{false};
  std::atomic<bool> arrived{false};
  scripted_upstream up([&](int fd, const message& req, int index) {
    arrived = true;
    auto end = std::chrono::steady_clock::now() + deadline;
    while (!release && std::chrono::steady_clock::now() < end) std::this_thread::yield();
    return answer_json(fd, req, index);
  });
  gateway gw(up.port(), 2);
  int fd = connect_to(gw.port());
  send_all(fd, post(call_body));
  auto end = std::chrono::steady_clock::now() + deadline;
  while (!arrived && std::chrono::steady_clock::now() < end) std::this_thread::yield();
  ASSERT_TRUE(arrived);
  gw.drain();
  // New clients are no longer accepted once every shard has closed its listener.
  bool refused = false;
  while (!refused && std::chrono::steady_clock::now() < end) {
    int probe = connect_to(gw.port());
    refused = probe < 0;
    if (probe >= 0) close(probe);
  }
  EXPECT_TRUE(refused);
  release = true;
  std::string buf;
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  message m = parse_message(buf);
  EXPECT_EQ(m.head.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_NE(m.head.find("Connection: close"), std::string::npos);
  gw.join();
  close(fd);
}

TEST(Proxy, GivesTheCountBackWhenTheUpstreamAnswers5xx) {
  // One write per hour. The first attempt meets a failing upstream (503): the upstream never
  // handled it, so the count goes back and the retry is admitted; the third call is over.
  scripted_upstream up([](int fd, const message& req, int index) {
    if (index == 0) {
      send_all(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
      return true;
    }
    return answer_json(fd, req, index);
  });
  policy::counter_store counters;
  auto doc = std::make_shared<const policy::document>(policy::parse_document(
      R"({"write_file":{"limits":[{"counter":"w","window":"hour","max":1,"scope":"grant"}]}})",
      "test.json"));
  auto gate = std::make_shared<const policy_gate_config>(policy::make_access_config(doc, counters));
  gateway gw(up.port(), 1, {}, gate);
  int fd = connect_to(gw.port());
  std::string call = post(
      R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"write_file","arguments":{}}})");
  EXPECT_EQ(round_trip(fd, call).head.substr(0, 12), "HTTP/1.1 503");
  message second = round_trip(fd, call);
  EXPECT_EQ(second.head.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_EQ(second.body.find("POLICY DENIED"), std::string::npos) << second.body;
  message third = round_trip(fd, call);
  EXPECT_NE(third.body.find("[POLICY DENIED]"), std::string::npos) << third.body;
  EXPECT_NE(third.body.find("rate_limited"), std::string::npos) << third.body;
  EXPECT_EQ(up.requests(), 2);
  close(fd);
}

}  // namespace
}  // namespace mcpgate::net
