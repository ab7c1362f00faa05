#pragma once

// Prometheus metrics: per-shard storage written on the request path with single-writer relaxed
// atomics (as net/shard_stats.h), and a renderer that sums every shard into the text
// exposition format (version 0.0.4) for the admin listener.
//
// Labels stay bounded: methods come from a fixed list of MCP methods, tools and grants from
// names registered from the policy (at load and reload). Everything else counts as
// "other". The request path passes small integer ids, never strings.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/log_writer.h"
#include "net/observe/audit_record.h"
#include "net/observe/shard_stats.h"

namespace mcpgate::net {

struct stdio_bridge_stats;

// A label id of a method, tool or grant.
using label_id = uint16_t;
// Id 0 of every label set: a name that was not registered.
inline constexpr label_id other_label = 0;
// "No tool" (a request that is not tools/call: not counted by tool) and "no grant" (no grant
// applied, e.g. unauthenticated: counted as grant="none").
inline constexpr label_id no_label = 0xffff;

// The MCP methods with their own label value, in id order; id 0 is "other".
inline constexpr std::array<std::string_view, 22> known_methods = {
    "other",
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "roots/list",
    "sampling/createMessage",
    "elicitation/create",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "response",  // a JSON-RPC response sent by the client (it has no method)
};
inline constexpr label_id response_method = known_methods.size() - 1;

// The id of a method name (other_label when it is not in known_methods). Compares strings:
// call it once per message, then pass the id around.
label_id method_id(std::string_view method);

// Why an upstream exchange failed without a usable response.
enum class upstream_error_kind : uint8_t { connect, reset, timeout, protocol };
inline constexpr size_t upstream_error_kind_count = 4;

// Tool and grant names with stable ids. Immutable: built on the control plane (policy load and
// reload) and swapped whole; a newer set keeps every id of the one it extends, so ids
// already handed to shards stay valid.
class metric_labels {
 public:
  static constexpr size_t max_tools = 1024;  // including "other"
  static constexpr size_t max_grants = 256;  // including "other"

  // Duplicates are ignored; names past the capacity are not registered (they count as other).
  metric_labels(const std::vector<std::string>& tools, const std::vector<std::string>& grants);

  // A copy with `tools` registered too (a reloaded policy's): existing ids unchanged.
  std::shared_ptr<const metric_labels> with_tools(const std::vector<std::string>& tools) const;

  // other_label when not registered. A binary search over the names; no allocation.
  label_id tool_id(std::string_view name) const;
  label_id grant_id(std::string_view name) const;

  size_t tool_count() const { return tool_names_.size(); }
  size_t grant_count() const { return grant_names_.size(); }
  const std::string& tool_name(label_id id) const { return tool_names_[id]; }
  const std::string& grant_name(label_id id) const { return grant_names_[id]; }

 private:
  static void add(std::vector<std::string>& names, size_t capacity, const std::string& name);
  static std::vector<label_id> build_index(const std::vector<std::string>& names);
  static label_id find(const std::vector<std::string>& names, const std::vector<label_id>& index,
                       std::string_view name);

  std::vector<std::string> tool_names_;   // [0] == "other"
  std::vector<std::string> grant_names_;  // [0] == "other"
  std::vector<label_id> tool_index_;      // ids sorted by name
  std::vector<label_id> grant_index_;
};

// Latency buckets, in microseconds: 50 µs to 10 s. Rendered in seconds.
inline constexpr std::array<int64_t, 17> latency_bucket_us = {
    50,     100,     250,     500,     1'000,     2'500,     5'000,     10'000,    25'000,
    50'000, 100'000, 250'000, 500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000};

// A fixed-bucket histogram with one writer.
class latency_histogram {
 public:
  void observe_us(int64_t us);
  // Reads (any thread): per-bucket counts, the last one being above the largest bound.
  uint64_t bucket(size_t i) const { return buckets_[i].get(); }
  uint64_t sum_us() const { return sum_us_.get(); }

 private:
  std::array<shard_stats::counter, latency_bucket_us.size() + 1> buckets_;
  shard_stats::counter sum_us_;
};

// One shard's metrics. Every write is a relaxed load and store by the shard's own thread; the
// renderer reads from another. Ids come from known_methods and the current metric_labels.
class shard_metrics {
 public:
  // method: a method_id(); tool: a tool id, or no_label when the message is not tools/call;
  // grant: a grant id, or no_label when no grant applied.
  void count_request(label_id method, label_id tool, label_id grant, call_decision decision);
  // The same message by the server (upstream) it was for: its index among the configuration's
  // upstreams (fixed for the process's life), or no_label for none (a 404).
  void count_server(label_id server, call_decision decision);
  static constexpr size_t max_servers = 256;
  // An upstream response with this HTTP status.
  void count_upstream_status(int status);
  void count_upstream_error(upstream_error_kind kind);
  void observe_gateway_us(int64_t us) { gateway_latency_.observe_us(us); }
  void observe_upstream_us(int64_t us) { upstream_latency_.observe_us(us); }
  void connection_opened() { connections_open_.add(); }
  void connection_closed() { connections_open_.sub(); }
  void sse_stream_opened() { sse_streams_open_.add(); }
  void sse_stream_closed() { sse_streams_open_.sub(); }

 private:
  friend class metrics_registry;
  using decision_row = std::array<shard_stats::counter, call_decision_count>;

  std::array<decision_row, known_methods.size()> by_method_;
  std::array<decision_row, metric_labels::max_tools> by_tool_;
  std::array<decision_row, metric_labels::max_grants + 1> by_grant_;  // last: grant="none"
  std::array<decision_row, max_servers> by_server_;
  std::array<shard_stats::counter, 5> upstream_status_;  // 1xx .. 5xx
  std::array<shard_stats::counter, upstream_error_kind_count> upstream_errors_;
  latency_histogram gateway_latency_;
  latency_histogram upstream_latency_;
  shard_stats::counter connections_open_;
  shard_stats::counter sse_streams_open_;
};

// Every shard's metrics and the labels to name them by. Built by the control thread before the
// shards start; shards write their own shard_metrics, the admin thread calls render().
class metrics_registry {
 public:
  metrics_registry(unsigned shards, std::shared_ptr<const metric_labels> labels);
  metrics_registry(const metrics_registry&) = delete;
  metrics_registry& operator=(const metrics_registry&) = delete;

  unsigned shards() const { return static_cast<unsigned>(shards_.size()); }
  shard_metrics& shard(unsigned i) { return *shards_[i]; }

  // Control plane (policy reload): ids of the previous labels must stay valid
  // (build the new set with metric_labels::with_tools()).
  void set_labels(std::shared_ptr<const metric_labels> labels);
  std::shared_ptr<const metric_labels> labels() const;

  // The audit writer of a shard, read by render(); may be called from the shard thread while
  // rendering goes on. The stats must outlive the registry, or be detached (nullptr) first.
  void attach_audit(unsigned shard, const core::log_writer_stats* stats);

  // A stdio bridge's counters, rendered (summed over bridges) as mcpgate_stdio_*; they must
  // outlive the registry. Control plane.
  void attach_stdio(const stdio_bridge_stats* stats);

  // The upstreams' names by index, for mcpgate_server_requests_total. Control plane, before
  // the shards start (the upstreams are fixed for the process's life).
  void set_servers(std::vector<std::string> names);

  // Prometheus text exposition format 0.0.4, summed over shards.
  std::string render() const;

 private:
  std::vector<std::unique_ptr<shard_metrics>> shards_;
  std::vector<std::unique_ptr<std::atomic<const core::log_writer_stats*>>> audit_;
  mutable std::mutex labels_mu_;  // control plane only: set_labels(), attach_stdio(), render()
  std::vector<const stdio_bridge_stats*> stdio_;
  std::vector<std::string> servers_;
  std::shared_ptr<const metric_labels> labels_;
};

}  // namespace mcpgate::net
