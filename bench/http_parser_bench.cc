// Parsing a typical MCP POST head with the strict parser and with a naive baseline of the kind
// one writes first (istringstream lines, a std::map of lowercased names), in one program so
// both run on the same machine state. Also the chunked decoder and the SSE parser on
// representative inputs.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <string_view>

#include "net/http/chunked.h"
#include "net/http/parser.h"
#include "net/http/sse.h"

namespace {

using namespace mcpgate::net;

const std::string mcp_post =
    "POST /mcp HTTP/1.1\r\n"
    "Host: gateway.example:8080\r\n"
    "Content-Type: application/json\r\n"
    "Accept: application/json, text/event-stream\r\n"
    "Mcp-Session-Id: 4b1e2f0c-9a7d-4c55-8e61-2d7f9b3a6c10\r\n"
    "MCP-Protocol-Version: 2025-06-18\r\n"
    "Authorization: Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2ln\r\n"
    "Content-Length: 187\r\n"
    "User-Agent: claude-code/1.0.0 (node 22)\r\n"
    "\r\n";

// The baseline: what a first version without attention to allocation looks like. It checks
// far less than the real parser (no smuggling rules), so it is a floor for the naive approach.
struct naive_request {
  std::string method;
  std::string target;
  std::string version;
  std::map<std::string, std::string> headers;
  std::uint64_t content_length = 0;
  bool ok = false;
};

naive_request naive_parse(const std::string& bytes) {
  naive_request r;
  const std::size_t end = bytes.find("\r\n\r\n");
  if (end == std::string::npos) return r;
  std::istringstream in(bytes.substr(0, end + 2));
  std::string line;
  if (!std::getline(in, line)) return r;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::istringstream request_line(line);
  request_line >> r.method >> r.target >> r.version;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) break;
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) return r;
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t") + 1);
    r.headers[name] = value;
  }
  if (const auto it = r.headers.find("content-length"); it != r.headers.end()) {
    r.content_length = std::stoull(it->second);
  }
  r.ok = true;
  return r;
}

void BM_strict_parse_request_head(benchmark::State& state) {
  const http_limits limits;
  for (auto _ : state) {
    const request_head r = parse_request_head(mcp_post, limits);
    benchmark::DoNotOptimize(r.content_length());
    benchmark::DoNotOptimize(r.headers().find("mcp-session-id").data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * mcp_post.size()));
}
BENCHMARK(BM_strict_parse_request_head);

void BM_naive_parse_request_head(benchmark::State& state) {
  for (auto _ : state) {
    const naive_request r = naive_parse(mcp_post);
    benchmark::DoNotOptimize(r.content_length);
    benchmark::DoNotOptimize(r.headers.find("mcp-session-id"));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * mcp_post.size()));
}
BENCHMARK(BM_naive_parse_request_head);

// The head arriving in 64-byte reads, each followed by a parse with the resume offset: the
// cost the proxy pays per recv on a slow client.
void BM_strict_parse_request_head_in_64_byte_reads(benchmark::State& state) {
  const http_limits limits;
  for (auto _ : state) {
    std::size_t resume = 0;
    for (std::size_t n = 64;; n += 64) {
      const std::string_view seen = std::string_view(mcp_post).substr(0, n);
      const request_head r = parse_request_head(seen, limits, resume);
      if (r.status() != parse_status::incomplete) {
        benchmark::DoNotOptimize(r.head_length());
        break;
      }
      resume = r.resume_offset();
    }
  }
}
BENCHMARK(BM_strict_parse_request_head_in_64_byte_reads);

std::string make_chunked_body(std::size_t chunks, std::size_t chunk_size) {
  std::string body;
  char size_line[32];
  for (std::size_t i = 0; i < chunks; ++i) {
    const int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk_size);
    body.append(size_line, static_cast<std::size_t>(n));
    body.append(chunk_size, 'x');
    body += "\r\n";
  }
  body += "0\r\n\r\n";
  return body;
}

void BM_chunked_decode(benchmark::State& state) {
  const std::string body = make_chunked_body(64, static_cast<std::size_t>(state.range(0)));
  http_limits limits;
  limits.max_body = UINT64_MAX;
  std::string out;
  out.reserve(body.size());
  for (auto _ : state) {
    out.clear();
    chunked_decoder d(limits);
    benchmark::DoNotOptimize(d.feed(body, &out).consumed);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_chunked_decode)->Arg(16)->Arg(1024);

void BM_sse_parse_jsonrpc_events(benchmark::State& state) {
  std::string stream;
  for (int i = 0; i < 64; ++i) {
    stream += "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":" + std::to_string(i) +
              ",\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}]}}\n\n";
  }
  for (auto _ : state) {
    sse_parser p;
    std::string_view rest = stream;
    std::size_t events = 0;
    while (!rest.empty()) {
      const sse_step step = p.feed(rest);
      rest.remove_prefix(step.consumed);
      if (step.status == sse_status::event) ++events;
    }
    benchmark::DoNotOptimize(events);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
}
BENCHMARK(BM_sse_parse_jsonrpc_events);

}  // namespace
