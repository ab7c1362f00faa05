#pragma once

// The load generator proper: threads, each with its own io_uring and its share of the
// connections, that open MCP sessions and drive tools/call requests at a fixed concurrency or a
// fixed arrival rate (see load_schedule.h).

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bench/mcpbench/latency_histogram.h"
#include "bench/mcpbench/reply_reader.h"

namespace mcpgate::bench {

struct load_config {
  std::string host = "127.0.0.1";  // IPv4 literal
  std::uint16_t port = 0;
  std::string path = "/mcp";
  unsigned connections = 1;
  unsigned threads = 1;
  std::chrono::milliseconds duration{10000};
  // Replies to requests sent before warmup has passed are not counted.
  std::chrono::milliseconds warmup{0};
  // 0: closed loop. Otherwise the total arrival rate, requests per second, across threads.
  double rate = 0;
  // Tools called by allowed requests, in turn.
  std::vector<std::string> tools{"read_file"};
  // The tool the policy denies, and the share of requests (0 to 1) that call it.
  std::string deny_tool = "clear_session";
  double deny_share = 0;
  // Bytes of filler in each call's arguments (besides a "path" argument).
  std::size_t argument_bytes = 0;
  // Sent as "Authorization: Bearer <key>" when not empty.
  std::string api_key;
  std::string protocol_version = "2025-06-18";
  // initialize + notifications/initialized per connection before the measured calls.
  bool open_session = true;
  // Require each reply's id to be the request's (off for servers with a canned reply).
  bool check_ids = true;
  // Requests still unanswered this long after the run ends count as timeouts.
  std::chrono::milliseconds grace{2000};
};

// What a run measured. Latencies in nanoseconds.
struct load_result {
  latency_histogram latency;
  std::uint64_t ok = 0;
  std::uint64_t denied = 0;
  std::array<std::uint64_t, error_kind_count> errors{};
  std::uint64_t reconnects = 0;
  std::uint64_t sessions = 0;
  // The measured interval: from the end of warmup to the last counted reply's send deadline.
  std::chrono::nanoseconds measured{0};
  // Open loop: the requests that were due in the measured interval.
  std::uint64_t offered = 0;

  std::uint64_t requests() const;
  std::uint64_t error_total() const;
  double throughput() const;  // replies (ok, denied or error) per second
};

// Live counters a progress display reads while the run goes on.
struct load_progress {
  std::atomic<std::uint64_t> replies{0};
  std::atomic<std::uint64_t> errors{0};
};

// Runs the load and returns what it measured. Throws std::runtime_error for what makes a run
// impossible (io_uring unavailable, bad address); failures of individual exchanges are counted.
load_result run_load(const load_config& config, load_progress& progress);

// The body of the request with `id` calling `tool`, as mcpbench sends it; public for tests.
std::string tools_call_body(std::uint64_t id, std::string_view tool, std::size_t argument_bytes);

}  // namespace mcpgate::bench
