#pragma once

// Distributed tracing: W3C trace context continued through the gateway and spans exported over
// OTLP/HTTP (JSON encoding) to a collector.
//
// Per exchange that reaches the body stages: the parent comes from the client's `traceparent`
// header, else from `params._meta.traceparent` of a single request (revision 2026-07-28), else a
// new trace starts. The gateway's server span ("mcpgate <method>") has two children: the policy
// decision (request head to hand-over, or to the gateway's own reply) and, when forwarded, the
// upstream call, whose id the forwarded request carries in its `traceparent` header. A parent
// that is not sampled is continued but not exported.
//
// Shards render finished spans into a buffer of their own and hand it over at most every
// flush interval (a lock taken per batch, never per request); one exporter thread posts them.
// The queue is bounded: spans beyond it are dropped and counted, never waited for.

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "net/address.h"

namespace mcpgate::net {

using trace_id = std::array<uint8_t, 16>;
using span_id = std::array<uint8_t, 8>;

struct trace_context {
  bool active = false;  // tracing is on and this exchange got a context
  bool sampled = true;  // exported (the parent's flag, or true for a new trace)
  bool has_parent = false;
  trace_id trace{};
  span_id parent{};
  span_id server{};    // the gateway's span
  span_id decision{};  // its child: the policy decision
  span_id upstream{};  // its child: the upstream call (what the forwarded request names)
  // Copied when the context is made (the body's views do not outlive the next request).
  std::string method;  // of a single message, else "batch"
  std::string tool;    // tools/call's params.name
};

// "00-<32 hex>-<16 hex>-<2 hex>" with a non-zero trace and parent id (W3C trace context level
// 1; a later version's longer value is read by its first four fields). False otherwise.
bool parse_traceparent(std::string_view value, trace_context& into);

// "traceparent: 00-<trace>-<upstream span>-<flags>\r\n"
void append_traceparent_header(std::string& out, const trace_context& t);

// params._meta.traceparent of a request (revision 2026-07-28), or empty. Per shard: it keeps a
// parser and a padded copy.
class trace_meta_reader {
 public:
  std::string_view traceparent(std::string_view params);

 private:
  struct state;
  std::shared_ptr<state> state_;
};

// Random ids from a per-shard generator seeded from the kernel: no syscall per request.
class trace_ids {
 public:
  trace_ids();
  // A new trace id when the context has no parent, and the three span ids.
  void fill(trace_context& t);

 private:
  uint64_t next();
  uint64_t state_[2];
};

// One finished span, as the recorder knows it; views valid during append_span_json().
struct span_attribute {
  std::string_view key;
  std::string_view text;  // a string value, or
  int64_t number = 0;     // when text is empty and is_number
  bool is_number = false;
};

// Appends one OTLP JSON span object (no separator). kind: 1 internal, 2 server, 3 client.
// status_error: the span's status is ERROR (a denial, an upstream failure).
void append_span_json(std::string& out, const trace_id& trace, const span_id& id,
                      const span_id* parent, std::string_view name, int kind, int64_t start_unix_ns,
                      int64_t end_unix_ns, std::initializer_list<span_attribute> attributes,
                      bool status_error);

struct trace_export_settings {
  endpoint collector;       // connect() here
  std::string host_header;  // Host of the POST
  std::string path;         // e.g. /v1/traces
  std::string service_name = "mcpgate";
  size_t max_queued_bytes = 8 << 20;
};

// The exporter thread. post() is called from shard threads (once per flush interval at
// most); everything else from the control thread.
class trace_exporter {
 public:
  explicit trace_exporter(trace_export_settings settings);
  ~trace_exporter();  // posts what is queued (up to 2 s), then stops
  trace_exporter(const trace_exporter&) = delete;
  trace_exporter& operator=(const trace_exporter&) = delete;

  // `spans`: span objects joined by ',' (append_span_json), `count` of them. Never blocks on
  // the collector: when the queue is full they are dropped and counted.
  void post(std::string spans, uint64_t count);

  // Prometheus text: mcpgate_trace_spans_exported_total, _dropped_total, and
  // mcpgate_trace_export_failures_total.
  std::string render_metrics() const;

 private:
  void run();
  bool send(const std::string& body);

  trace_export_settings settings_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::pair<std::string, uint64_t>> queue_;
  size_t queued_bytes_ = 0;
  bool stopping_ = false;
  std::atomic<uint64_t> exported_{0}, dropped_{0}, failures_{0};
  int64_t last_report_ns_ = 0;
  std::thread thread_;
};

}  // namespace mcpgate::net
