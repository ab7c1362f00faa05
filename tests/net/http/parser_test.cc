#include "net/http/parser.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace mcpgate::net {
namespace {

using namespace std::string_literals;

const http_limits default_limits{};

request_head parse(std::string_view bytes, const http_limits& limits = default_limits) {
  return parse_request_head(bytes, limits);
}

response_head parse_response(std::string_view bytes, bool request_was_head = false,
                             const http_limits& limits = default_limits) {
  return parse_response_head(bytes, limits, request_was_head);
}

// Asserts that `bytes` is refused with `status` and a reason containing `why`.
void expect_rejected(std::string_view bytes, int status, std::string_view why,
                     const http_limits& limits = default_limits) {
  const request_head r = parse(bytes, limits);
  ASSERT_EQ(r.status(), parse_status::error) << bytes;
  EXPECT_EQ(r.error_status(), status) << bytes << " -> " << r.error_reason();
  EXPECT_NE(r.error_reason().find(why), std::string_view::npos)
      << "reason '" << r.error_reason() << "' lacks '" << why << "' for " << bytes;
}

void expect_response_rejected(std::string_view bytes, std::string_view why) {
  const response_head r = parse_response(bytes);
  ASSERT_EQ(r.status(), parse_status::error) << bytes;
  EXPECT_EQ(r.error_status(), 502);
  EXPECT_NE(r.error_reason().find(why), std::string_view::npos)
      << "reason '" << r.error_reason() << "' lacks '" << why << "' for " << bytes;
}

const std::string mcp_post =
    "POST /mcp HTTP/1.1\r\n"
    "Host: gateway.example:8080\r\n"
    "Content-Type: application/json\r\n"
    "Accept: application/json, text/event-stream\r\n"
    "Mcp-Session-Id: 4b1e2f0c-9a7d-4c55-8e61-2d7f9b3a6c10\r\n"
    "MCP-Protocol-Version: 2025-06-18\r\n"
    "Authorization: Bearer abc.def.ghi\r\n"
    "Content-Length: 57\r\n"
    "\r\n";

// ---- request heads: valid messages ----

TEST(HttpRequestParser, ParsesTypicalMcpPost) {
  const request_head r = parse(mcp_post);
  ASSERT_EQ(r.status(), parse_status::complete) << r.error_reason();
  EXPECT_EQ(r.head_length(), mcp_post.size());
  EXPECT_EQ(r.method(), http_method::post);
  EXPECT_EQ(r.method_text(), "POST");
  EXPECT_EQ(r.target(), "/mcp");
  EXPECT_EQ(r.form(), target_form::origin);
  EXPECT_EQ(r.version(), http_version::http_1_1);
  EXPECT_EQ(r.headers().size(), 7u);
  EXPECT_EQ(r.headers()[0].name, "Host");
  EXPECT_EQ(r.headers()[0].value, "gateway.example:8080");
  EXPECT_EQ(r.framing(), body_framing::content_length);
  EXPECT_EQ(r.content_length(), 57u);
  EXPECT_TRUE(r.keep_alive());
}

TEST(HttpRequestParser, HeaderViewsPointIntoTheInput) {
  const request_head r = parse(mcp_post);
  ASSERT_EQ(r.status(), parse_status::complete);
  const char* const first = mcp_post.data();
  const char* const last = mcp_post.data() + mcp_post.size();
  for (const http_header& h : r.headers()) {
    EXPECT_GE(h.name.data(), first);
    EXPECT_LE(h.value.data() + h.value.size(), last);
  }
}

TEST(HttpRequestParser, FindsHeadersCaseInsensitively) {
  const request_head r = parse(mcp_post);
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.headers().find("mcp-session-id"), "4b1e2f0c-9a7d-4c55-8e61-2d7f9b3a6c10");
  EXPECT_EQ(r.headers().find("ACCEPT"), "application/json, text/event-stream");
  EXPECT_EQ(r.headers().find("x-absent"), "");
  EXPECT_EQ(r.headers().count("x-absent"), 0u);
  EXPECT_EQ(r.headers().count("content-type"), 1u);
}

TEST(HttpRequestParser, CountsRepeatedHeadersAndFindReturnsTheFirst) {
  const request_head r = parse("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\n");
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.headers().count("X-A"), 2u);
  EXPECT_EQ(r.headers().find("x-a"), "1");
}

TEST(HttpRequestParser, TrimsOptionalWhitespaceAroundValuesOnly) {
  const request_head r = parse(
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: \t two  words \t\r\nX-Empty:\r\nX-Blank:   \r\n\r\n");
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.headers().find("x-a"), "two  words");
  EXPECT_EQ(r.headers().find("x-empty"), "");
  EXPECT_EQ(r.headers().count("x-empty"), 1u);
  EXPECT_EQ(r.headers().find("x-blank"), "");
}

TEST(HttpRequestParser, AcceptsHtabAndObsTextInValues) {
  const request_head r = parse("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\tb\xC3\xA9\r\n\r\n");
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.headers().find("x-a"), "a\tb\xC3\xA9");
}

TEST(HttpRequestParser, ClassifiesMethods) {
  const std::vector<std::pair<std::string, http_method>> cases = {
      {"GET", http_method::get},         {"POST", http_method::post},
      {"PUT", http_method::put},         {"DELETE", http_method::delete_},
      {"HEAD", http_method::head},       {"PATCH", http_method::patch},
      {"OPTIONS", http_method::options}, {"PROPFIND", http_method::other},
  };
  for (const auto& [text, method] : cases) {
    const std::string req = text + " / HTTP/1.1\r\nHost: a\r\n\r\n";
    const request_head r = parse(req);
    ASSERT_EQ(r.status(), parse_status::complete) << text;
    EXPECT_EQ(r.method(), method) << text;
    EXPECT_EQ(r.method_text(), text);
  }
}

TEST(HttpRequestParser, AcceptsAbsoluteFormTarget) {
  const request_head r =
      parse("GET http://upstream.example/mcp?x=1 HTTP/1.1\r\nHost: upstream.example\r\n\r\n");
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.form(), target_form::absolute);
  EXPECT_EQ(r.target(), "http://upstream.example/mcp?x=1");
}

TEST(HttpRequestParser, AcceptsAsteriskFormWithOptions) {
  const request_head r = parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.form(), target_form::asterisk);
}

TEST(HttpRequestParser, AcceptsAuthorityFormWithConnect) {
  const request_head r = parse("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n");
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.form(), target_form::authority);
  EXPECT_EQ(r.method(), http_method::other);
}

TEST(HttpRequestParser, ReportsChunkedFramingCaseInsensitively) {
  const request_head r =
      parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  ChUnKeD \r\n\r\n");
  ASSERT_EQ(r.status(), parse_status::complete) << r.error_reason();
  EXPECT_EQ(r.framing(), body_framing::chunked);
}

TEST(HttpRequestParser, ReportsNoBodyWithoutLengthOrCoding) {
  const request_head r = parse("POST / HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.framing(), body_framing::none);
}

TEST(HttpRequestParser, ReportsZeroContentLength) {
  const request_head r = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.framing(), body_framing::content_length);
  EXPECT_EQ(r.content_length(), 0u);
}

TEST(HttpRequestParser, AcceptsContentLengthEqualToMaxBody) {
  http_limits limits;
  limits.max_body = 100;
  const request_head r = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n", limits);
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.content_length(), 100u);
}

TEST(HttpRequestParser, KeepsHttp11AliveUnlessConnectionClose) {
  EXPECT_TRUE(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive());
  EXPECT_FALSE(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive());
  EXPECT_FALSE(
      parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade , CLOSE\r\n\r\n").keep_alive());
  EXPECT_TRUE(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n").keep_alive());
}

TEST(HttpRequestParser, KeepsHttp10AliveOnlyWithKeepAlive) {
  const request_head plain = parse("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(plain.status(), parse_status::complete);
  EXPECT_EQ(plain.version(), http_version::http_1_0);
  EXPECT_FALSE(plain.keep_alive());
  EXPECT_TRUE(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
  EXPECT_FALSE(parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive());
}

TEST(HttpRequestParser, AcceptsHttp10WithoutHost) {
  EXPECT_EQ(parse("GET / HTTP/1.0\r\n\r\n").status(), parse_status::complete);
}

TEST(HttpRequestParser, SkipsLeadingEmptyLinesAndCountsThemInHeadLength) {
  const std::string req = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
  const request_head r = parse(req);
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.head_length(), req.size());
  EXPECT_EQ(r.method(), http_method::get);
}

TEST(HttpRequestParser, ParsesPipelinedRequestsByHeadLength) {
  const std::string buffer =
      "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
      "GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  std::vector<std::string_view> targets;
  std::string_view rest = buffer;
  while (!rest.empty()) {
    const request_head r = parse(rest);
    ASSERT_EQ(r.status(), parse_status::complete) << r.error_reason();
    targets.push_back(r.target());
    const std::size_t body = r.framing() == body_framing::content_length
                                 ? static_cast<std::size_t>(r.content_length())
                                 : 0;
    rest.remove_prefix(r.head_length() + body);
  }
  EXPECT_EQ(targets, (std::vector<std::string_view>{"/a", "/b", "/c"}));
}

TEST(HttpRequestParser, IsIncompleteForEveryProperPrefix) {
  for (std::size_t n = 0; n < mcp_post.size(); ++n) {
    const request_head r = parse(std::string_view(mcp_post).substr(0, n));
    EXPECT_EQ(r.status(), parse_status::incomplete) << "prefix " << n << ": " << r.error_reason();
  }
  EXPECT_EQ(parse(mcp_post).status(), parse_status::complete);
}

TEST(HttpRequestParser, CompletesWhenBytesArriveOneAtATimeWithResumeOffsets) {
  const std::string input = "\r\n" + mcp_post;
  std::size_t resume = 0;
  for (std::size_t n = 0; n < input.size(); ++n) {
    const request_head r =
        parse_request_head(std::string_view(input).substr(0, n), default_limits, resume);
    ASSERT_EQ(r.status(), parse_status::incomplete) << "prefix " << n << ": " << r.error_reason();
    EXPECT_LE(r.resume_offset(), n);
    resume = r.resume_offset();
  }
  const request_head r = parse_request_head(input, default_limits, resume);
  ASSERT_EQ(r.status(), parse_status::complete) << r.error_reason();
  EXPECT_EQ(r.head_length(), input.size());
  EXPECT_EQ(r.headers().size(), 7u);
}

TEST(HttpRequestParser, IgnoresResumeOffsetBeyondTheInput) {
  const request_head r = parse_request_head(mcp_post, default_limits, mcp_post.size() + 10);
  EXPECT_EQ(r.status(), parse_status::complete);
}

// ---- request heads: rejections ----

TEST(HttpRequestParser, RejectsContentLengthWithTransferEncoding) {
  expect_rejected(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
      "Content-Length together with Transfer-Encoding");
  expect_rejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400,
      "Content-Length together with Transfer-Encoding");
}

TEST(HttpRequestParser, RejectsTwoContentLengthsEvenWhenEqual) {
  expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                  400, "more than one Content-Length");
  expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n",
                  400, "more than one Content-Length");
}

TEST(HttpRequestParser, RejectsMalformedContentLength) {
  for (const std::string value :
       {"5, 5", "+5", "-1", "5a", "0x10", "5 5", "", "1.0", "\xEF\xBC\x95"}) {
    expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + value + "\r\n\r\n", 400,
                    "invalid Content-Length");
  }
}

TEST(HttpRequestParser, RejectsOverflowingContentLength) {
  expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", 400,
                  "invalid Content-Length");
  expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                  400, "invalid Content-Length");
}

TEST(HttpRequestParser, RejectsContentLengthOverMaxBodyWith413) {
  http_limits limits;
  limits.max_body = 100;
  expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", 413, "too large",
                  limits);
  expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n", 413,
                  "too large", limits);
}

TEST(HttpRequestParser, RejectsUnknownTransferCodingWith501) {
  expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
                  "unsupported transfer coding");
  expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
                  "unsupported transfer coding");
  expect_rejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
      501, "unsupported transfer coding");
  expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501,
                  "unsupported transfer coding");
}

TEST(HttpRequestParser, RejectsChunkedNotLastWith400) {
  expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400,
                  "chunked is not the last coding");
  expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400,
                  "chunked is not the last coding");
  expect_rejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
      "chunked\r\n\r\n",
      400, "chunked is not the last coding");
}

TEST(HttpRequestParser, RejectsMalformedTransferEncoding) {
  for (const std::string value : {"", " , ", "chunked;q=1", "\"chunked\"", "chunked x"}) {
    expect_rejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + value + "\r\n\r\n", 400,
                    "malformed Transfer-Encoding");
  }
}

TEST(HttpRequestParser, RejectsTransferEncodingInHttp10) {
  expect_rejected("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
                  "Transfer-Encoding in HTTP/1.0");
}

TEST(HttpRequestParser, RejectsObsoleteLineFolding) {
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400,
                  "obsolete line folding");
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400,
                  "obsolete line folding");
  expect_rejected("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "obsolete line folding");
}

TEST(HttpRequestParser, RejectsBareLfAnywhereInTheHead) {
  expect_rejected("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bare LF");
  expect_rejected("GET / HTTP/1.1\r\nHost: a\n\r\n", 400, "bare LF");
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\n\n", 400, "bare LF");
  expect_rejected("GET / HTTP/1.1\r\nX-A: a\nb\r\nHost: a\r\n\r\n", 400, "bare LF");
  expect_rejected("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare LF");
}

TEST(HttpRequestParser, RejectsBareLfBeforeTheHeadIsComplete) {
  // A peer that ends lines in LF alone must not be left waiting for a CRLFCRLF.
  expect_rejected("GET / HTTP/1.1\nHost: a\n\n", 400, "bare LF");
}

TEST(HttpRequestParser, RejectsBareCrAnywhereInTheHead) {
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n", 400, "bare CR");
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-A\r: b\r\n\r\n", 400, "header name");
  expect_rejected("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request target");
  expect_rejected("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 400, "HTTP version");
  expect_rejected("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare CR");
}

TEST(HttpRequestParser, RejectsWhitespaceBetweenHeaderNameAndColon) {
  expect_rejected("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400,
                  "whitespace between header name and colon");
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n", 400,
                  "whitespace between header name and colon");
}

TEST(HttpRequestParser, RejectsHeaderNamesThatAreNotTokens) {
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n", 400, "header name");
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\nX\xC3\xA9: b\r\n\r\n", 400, "header name");
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400, "empty header name");
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400, "without colon");
}

TEST(HttpRequestParser, RejectsControlCharactersInValues) {
  for (const char c : {'\x00', '\x01', '\x0b', '\x1f', '\x7f'}) {
    std::string req = "GET / HTTP/1.1\r\nHost: a\r\nX-A: a?b\r\n\r\n";
    req[req.find('?')] = c;
    expect_rejected(req, 400, "control character in header value");
  }
}

TEST(HttpRequestParser, RejectsMalformedRequestLines) {
  expect_rejected(" / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "empty method");
  expect_rejected("GET\r\nHost: a\r\n\r\n", 400, "method");
  expect_rejected("GET /\r\nHost: a\r\n\r\n", 400, "malformed request line");
  expect_rejected("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "empty request target");
  expect_rejected("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "malformed HTTP version");
  expect_rejected("GET / x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version");
  expect_rejected("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "method");
}

TEST(HttpRequestParser, RejectsLowercaseAndNonTokenMethodsAsSoonAsTheyArrive) {
  expect_rejected("get / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid character in method");
  expect_rejected("Get", 400, "invalid character in method");
  expect_rejected("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid character in method");
  expect_rejected("\x16\x03\x01\x02\x00", 400, "invalid character in method");
  expect_rejected(std::string(40, 'A'), 400, "method too long");
}

TEST(HttpRequestParser, RejectsBadVersionsWith400AndUnsupportedOnesWith505) {
  expect_rejected("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "not supported");
  expect_rejected("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "not supported");
  expect_rejected("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, "not supported");
  expect_rejected("GET / http/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version");
  expect_rejected("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, "malformed HTTP version");
  expect_rejected("GET / HTTP/1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version");
}

TEST(HttpRequestParser, RejectsMalformedTargets) {
  expect_rejected("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "asterisk");
  expect_rejected("GET mcp HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request target");
  expect_rejected("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request target");
  expect_rejected("GET /\xC3\xA9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request target");
  expect_rejected("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request target");
}

TEST(HttpRequestParser, RejectsOverlongTargetWith414) {
  http_limits limits;
  limits.max_target = 64;
  const std::string ok = "/" + std::string(63, 'a');
  EXPECT_EQ(parse("GET " + ok + " HTTP/1.1\r\nHost: a\r\n\r\n", limits).status(),
            parse_status::complete);
  expect_rejected("GET /" + std::string(64, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", 414,
                  "target too long", limits);
}

TEST(HttpRequestParser, RejectsUnterminatedOverlongTargetWith414) {
  http_limits limits;
  limits.max_head = 256;
  limits.max_target = 128;
  expect_rejected("GET /" + std::string(300, 'a'), 414, "target too long", limits);
}

TEST(HttpRequestParser, RejectsMissingHostInHttp11) {
  expect_rejected("GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400, "missing Host");
}

TEST(HttpRequestParser, RejectsMoreThanOneHost) {
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "more than one Host");
  expect_rejected("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400, "more than one Host");
}

TEST(HttpRequestParser, RejectsHostHoldingAList) {
  expect_rejected("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400, "invalid Host");
  expect_rejected("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host");
}

TEST(HttpRequestParser, RejectsTooManyLeadingEmptyLines) {
  expect_rejected("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
                  "too many empty lines");
  EXPECT_EQ(parse("\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").status(),
            parse_status::complete);
}

TEST(HttpRequestParser, RejectsHeadOverMaxHeadWith431) {
  http_limits limits;
  limits.max_head = 128;
  const std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + std::string(200, 'b');
  expect_rejected(big, 431, "head too large", limits);
  expect_rejected(big + "\r\n\r\n", 431, "head too large", limits);
}

TEST(HttpRequestParser, AcceptsHeadOfExactlyMaxHead) {
  const std::string req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  http_limits limits;
  limits.max_head = req.size();
  EXPECT_EQ(parse(req, limits).status(), parse_status::complete);
  limits.max_head = req.size() - 1;
  expect_rejected(req, 431, "head too large", limits);
}

TEST(HttpRequestParser, RejectsMoreHeadersThanMaxHeadersWith431) {
  http_limits limits;
  limits.max_headers = 3;
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", limits).status(),
            parse_status::complete);
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431,
                  "too many header fields", limits);
}

TEST(HttpRequestParser, ClampsMaxHeadersToTheFixedCapacity) {
  http_limits limits;
  limits.max_headers = 1000;
  std::string req = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (std::size_t i = 0; i < header_list::capacity; ++i) req += "X: y\r\n";
  req += "\r\n";
  expect_rejected(req, 431, "too many header fields", limits);
}

// ---- response heads ----

TEST(HttpResponseParser, ParsesContentLengthResponse) {
  const std::string res =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n";
  const response_head r = parse_response(res);
  ASSERT_EQ(r.status(), parse_status::complete) << r.error_reason();
  EXPECT_EQ(r.head_length(), res.size());
  EXPECT_EQ(r.status_code(), 200);
  EXPECT_EQ(r.reason(), "OK");
  EXPECT_EQ(r.framing(), body_framing::content_length);
  EXPECT_EQ(r.content_length(), 42u);
  EXPECT_TRUE(r.keep_alive());
  EXPECT_FALSE(r.is_interim());
  EXPECT_EQ(r.headers().find("content-type"), "application/json");
}

TEST(HttpResponseParser, ParsesChunkedResponse) {
  const response_head r = parse_response(
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.framing(), body_framing::chunked);
  EXPECT_TRUE(r.keep_alive());
}

TEST(HttpResponseParser, ReadsUntilCloseWithoutLength) {
  const response_head r = parse_response("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.framing(), body_framing::until_close);
  EXPECT_FALSE(r.keep_alive());
}

TEST(HttpResponseParser, ReadsUntilCloseWhenChunkedIsNotTheLastCoding) {
  const response_head r = parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.framing(), body_framing::until_close);
  EXPECT_FALSE(r.keep_alive());
}

TEST(HttpResponseParser, TreatsGzipThenChunkedAsChunked) {
  const response_head r =
      parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.framing(), body_framing::chunked);
}

TEST(HttpResponseParser, HasNoBodyFor204And304AndHeadWhateverTheHeadersSay) {
  for (const std::string res : {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                                "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                                "HTTP/1.1 204 No Content\r\n\r\n"}) {
    const response_head r = parse_response(res);
    ASSERT_EQ(r.status(), parse_status::complete) << res;
    EXPECT_EQ(r.framing(), body_framing::none) << res;
    EXPECT_TRUE(r.keep_alive()) << res;
  }
  const response_head head =
      parse_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", /*request_was_head=*/true);
  EXPECT_EQ(head.framing(), body_framing::none);
  const response_head head_chunked = parse_response(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", /*request_was_head=*/true);
  EXPECT_EQ(head_chunked.framing(), body_framing::none);
}

TEST(HttpResponseParser, ReportsContinueAsInterimAndFindsTheFinalResponseAfterIt) {
  const std::string buffer =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
  const response_head interim = parse_response(buffer);
  ASSERT_EQ(interim.status(), parse_status::complete);
  EXPECT_TRUE(interim.is_interim());
  EXPECT_EQ(interim.status_code(), 100);
  EXPECT_EQ(interim.framing(), body_framing::none);
  const response_head final_head =
      parse_response(std::string_view(buffer).substr(interim.head_length()));
  ASSERT_EQ(final_head.status(), parse_status::complete);
  EXPECT_FALSE(final_head.is_interim());
  EXPECT_EQ(final_head.status_code(), 201);
}

TEST(HttpResponseParser, ReportsSwitchingProtocolsAsFinalAndNotKeptAlive) {
  const response_head r =
      parse_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_FALSE(r.is_interim());
  EXPECT_EQ(r.framing(), body_framing::none);
  EXPECT_FALSE(r.keep_alive());
}

TEST(HttpResponseParser, AppliesHttp10KeepAliveRules) {
  EXPECT_FALSE(parse_response("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").keep_alive());
  EXPECT_TRUE(
      parse_response("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n")
          .keep_alive());
  EXPECT_FALSE(parse_response("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n")
                   .keep_alive());
}

TEST(HttpResponseParser, AcceptsEmptyReasonWithOrWithoutTheSpace) {
  const response_head bare = parse_response("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(bare.status(), parse_status::complete);
  EXPECT_EQ(bare.reason(), "");
  const response_head spaced = parse_response("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(spaced.status(), parse_status::complete);
  EXPECT_EQ(spaced.status_code(), 404);
  EXPECT_EQ(spaced.reason(), "");
}

TEST(HttpResponseParser, IsIncompleteForEveryProperPrefixWithResumeOffsets) {
  const std::string res = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\n";
  std::size_t resume = 0;
  for (std::size_t n = 0; n < res.size(); ++n) {
    const response_head r =
        parse_response_head(std::string_view(res).substr(0, n), default_limits, false, resume);
    ASSERT_EQ(r.status(), parse_status::incomplete) << "prefix " << n << ": " << r.error_reason();
    resume = r.resume_offset();
  }
  const response_head r = parse_response_head(res, default_limits, false, resume);
  ASSERT_EQ(r.status(), parse_status::complete);
  EXPECT_EQ(r.head_length(), res.size());
}

TEST(HttpResponseParser, RejectsFramingConflictsAndBadLengths) {
  expect_response_rejected(
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "Content-Length together with Transfer-Encoding");
  expect_response_rejected("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                           "more than one Content-Length");
  expect_response_rejected("HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
                           "invalid Content-Length");
  expect_response_rejected("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip, chunked\r\n\r\n",
                           "chunked is not the last coding");
  expect_response_rejected("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                           "Transfer-Encoding in HTTP/1.0");
}

TEST(HttpResponseParser, RejectsMalformedStatusLines) {
  expect_response_rejected("<html>", "malformed status line");
  expect_response_rejected("HTTP/2 200 OK\r\n\r\n", "malformed status line");
  expect_response_rejected("HTTP/2.0 200 OK\r\n\r\n", "unsupported HTTP version");
  expect_response_rejected("HTTP/1.1 2x0 OK\r\n\r\n", "malformed status code");
  expect_response_rejected("HTTP/1.1 099 Low\r\n\r\n", "status code out of range");
  expect_response_rejected("HTTP/1.1 600 High\r\n\r\n", "status code out of range");
  expect_response_rejected("HTTP/1.1 2000 OK\r\n\r\n", "malformed status line");
  expect_response_rejected("HTTP/1.1 200 O\x01K\r\n\r\n", "control character in reason");
  expect_response_rejected("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "bare LF");
  expect_response_rejected("HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n", "whitespace");
  expect_response_rejected("\r\nHTTP/1.1 200 OK\r\n\r\n", "malformed status line");
}

TEST(HttpResponseParser, RejectsHeadOverMaxHead) {
  http_limits limits;
  limits.max_head = 64;
  const response_head r =
      parse_response("HTTP/1.1 200 OK\r\nX-A: " + std::string(100, 'b'), false, limits);
  ASSERT_EQ(r.status(), parse_status::error);
  EXPECT_EQ(r.error_status(), 502);
}

TEST(HeaderHasToken, MatchesListElementsCaseInsensitivelyIgnoringOws) {
  EXPECT_TRUE(header_has_token("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(header_has_token(" \tKeep-Alive\t ,x", "keep-alive"));
  EXPECT_TRUE(header_has_token("close", "close"));
  EXPECT_TRUE(header_has_token("a,,close,", "close"));
  EXPECT_FALSE(header_has_token("closed", "close"));
  EXPECT_FALSE(header_has_token("keep-alive-ish, x", "keep-alive"));
  EXPECT_FALSE(header_has_token("", "close"));
  EXPECT_FALSE(header_has_token("clo se", "close"));
}

TEST(IsHopByHop, NamesTheRfc9110ConnectionSpecificFields) {
  for (const char* name : {"Connection", "proxy-connection", "KEEP-ALIVE", "TE", "Trailer",
                           "Transfer-Encoding", "upgrade"}) {
    EXPECT_TRUE(is_hop_by_hop(name)) << name;
  }
  for (const char* name : {"Content-Length", "Host", "Trailers", "Mcp-Session-Id", "T", ""}) {
    EXPECT_FALSE(is_hop_by_hop(name)) << name;
  }
}

}  // namespace
}  // namespace mcpgate::net
