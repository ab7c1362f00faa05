#include "net/observe/metrics.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "core/check.h"
#include "core/clock.h"
#include "core/shard.h"
#include "net/observe/stdio_stats.h"

namespace mcpgate::net {
namespace {

constexpr std::array<std::string_view, latency_bucket_us.size()> latency_bucket_le = {
    "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",  "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10"};

constexpr std::array<std::string_view, upstream_error_kind_count> upstream_error_names = {
    "connect", "reset", "timeout", "protocol"};

void append_uint(std::string& out, uint64_t v) {
  char digits[24];
  auto r = std::to_chars(digits, digits + sizeof digits, v);
  out.append(digits, r.ptr);
}

// Label values: backslash, double quote and line feed are escaped (exposition format 0.0.4).
void append_label_value(std::string& out, std::string_view v) {
  for (char ch : v) {
    switch (ch) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += ch;
    }
  }
}

void append_family(std::string& out, std::string_view name, std::string_view type,
                   std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void append_sample(std::string& out, std::string_view name, uint64_t value) {
  out += name;
  out += ' ';
  append_uint(out, value);
  out += '\n';
}

// name{label="value",decision="..."} n, for each decision with a non-zero sum. Zero series are
// left out so that a thousand registered tools do not mean six thousand idle lines.
template <typename Row>
void append_decision_row(std::string& out, std::string_view name, std::string_view label,
                         std::string_view value, const Row& sums) {
  for (size_t d = 0; d < call_decision_count; ++d) {
    if (sums[d] == 0) continue;
    out += name;
    out += '{';
    out += label;
    out += "=\"";
    append_label_value(out, value);
    out += "\",decision=\"";
    out += call_decision_name(static_cast<call_decision>(d));
    out += "\"} ";
    append_uint(out, sums[d]);
    out += '\n';
  }
}

void append_histogram(std::string& out, std::string_view name, std::string_view help,
                      const std::vector<const latency_histogram*>& parts) {
  append_family(out, name, "histogram", help);
  std::array<uint64_t, latency_bucket_us.size() + 1> counts{};
  uint64_t sum_us = 0;
  for (const latency_histogram* h : parts) {
    for (size_t i = 0; i < counts.size(); ++i) counts[i] += h->bucket(i);
    sum_us += h->sum_us();
  }
  // _count is the sum of the buckets as read, so the exposition is self-consistent even while
  // shards keep writing (the sum may lag or lead by an observation in flight).
  uint64_t cumulative = 0;
  for (size_t i = 0; i < latency_bucket_us.size(); ++i) {
    cumulative += counts[i];
    out += name;
    out += "_bucket{le=\"";
    out += latency_bucket_le[i];
    out += "\"} ";
    append_uint(out, cumulative);
    out += '\n';
  }
  cumulative += counts.back();
  out += name;
  out += "_bucket{le=\"+Inf\"} ";
  append_uint(out, cumulative);
  out += '\n';
  char sum[48];
  std::snprintf(sum, sizeof sum, "%.6f", static_cast<double>(sum_us) / 1e6);
  out += name;
  out += "_sum ";
  out += sum;
  out += '\n';
  out += name;
  out += "_count ";
  append_uint(out, cumulative);
  out += '\n';
}

}  // namespace

label_id method_id(std::string_view method) {
  for (size_t i = 1; i + 1 < known_methods.size(); ++i)
    if (known_methods[i] == method) return static_cast<label_id>(i);
  return other_label;
}

metric_labels::metric_labels(const std::vector<std::string>& tools,
                             const std::vector<std::string>& grants) {
  tool_names_.push_back("other");
  grant_names_.push_back("other");
  for (const std::string& t : tools) add(tool_names_, max_tools, t);
  for (const std::string& g : grants) add(grant_names_, max_grants, g);
  tool_index_ = build_index(tool_names_);
  grant_index_ = build_index(grant_names_);
}

std::shared_ptr<const metric_labels> metric_labels::with_tools(
    const std::vector<std::string>& tools) const {
  auto next = std::make_shared<metric_labels>(*this);
  for (const std::string& t : tools) add(next->tool_names_, max_tools, t);
  next->tool_index_ = build_index(next->tool_names_);
  return next;
}

void metric_labels::add(std::vector<std::string>& names, size_t capacity, const std::string& name) {
  if (names.size() >= capacity) return;
  if (std::find(names.begin() + 1, names.end(), name) != names.end()) return;
  names.push_back(name);
}

std::vector<label_id> metric_labels::build_index(const std::vector<std::string>& names) {
  std::vector<label_id> index;
  // id 0 ("other") is not looked up by name: a tool really called "other" gets its own id.
  for (size_t i = 1; i < names.size(); ++i) index.push_back(static_cast<label_id>(i));
  std::sort(index.begin(), index.end(),
            [&](label_id a, label_id b) { return names[a] < names[b]; });
  return index;
}

label_id metric_labels::find(const std::vector<std::string>& names,
                             const std::vector<label_id>& index, std::string_view name) {
  auto it = std::lower_bound(index.begin(), index.end(), name,
                             [&](label_id id, std::string_view n) { return names[id] < n; });
  return it != index.end() && names[*it] == name ? *it : other_label;
}

label_id metric_labels::tool_id(std::string_view name) const {
  return find(tool_names_, tool_index_, name);
}
label_id metric_labels::grant_id(std::string_view name) const {
  return find(grant_names_, grant_index_, name);
}

void latency_histogram::observe_us(int64_t us) {
  if (us < 0) us = 0;
  auto it = std::lower_bound(latency_bucket_us.begin(), latency_bucket_us.end(), us);
  buckets_[static_cast<size_t>(it - latency_bucket_us.begin())].add();
  sum_us_.add(static_cast<uint64_t>(us));
}

void shard_metrics::count_request(label_id method, label_id tool, label_id grant,
                                  call_decision decision) {
  auto d = static_cast<size_t>(decision);
  by_method_[method < known_methods.size() ? method : other_label][d].add();
  if (tool != no_label) by_tool_[tool < by_tool_.size() ? tool : other_label][d].add();
  size_t g = grant == no_label ? metric_labels::max_grants
                               : (grant < metric_labels::max_grants ? grant : other_label);
  by_grant_[g][d].add();
}

void shard_metrics::count_server(label_id server, call_decision decision) {
  if (server < max_servers) by_server_[server][static_cast<size_t>(decision)].add();
}

void shard_metrics::count_upstream_status(int status) {
  if (status >= 100 && status <= 599) upstream_status_[static_cast<size_t>(status / 100 - 1)].add();
}

void shard_metrics::count_upstream_error(upstream_error_kind kind) {
  upstream_errors_[static_cast<size_t>(kind)].add();
}

namespace {
// No labels yet: every tool and grant counts as "other".
std::shared_ptr<const metric_labels> or_empty(std::shared_ptr<const metric_labels> labels) {
  return labels ? std::move(labels)
                : std::make_shared<const metric_labels>(std::vector<std::string>{},
                                                        std::vector<std::string>{});
}
}  // namespace

metrics_registry::metrics_registry(unsigned shards, std::shared_ptr<const metric_labels> labels)
    : labels_(or_empty(std::move(labels))) {
  for (unsigned i = 0; i < shards; ++i) {
    shards_.push_back(std::make_unique<shard_metrics>());
    audit_.push_back(std::make_unique<std::atomic<const core::log_writer_stats*>>(nullptr));
  }
}

void metrics_registry::set_labels(std::shared_ptr<const metric_labels> labels) {
  std::lock_guard lock(labels_mu_);
  labels_ = or_empty(std::move(labels));
}

std::shared_ptr<const metric_labels> metrics_registry::labels() const {
  std::lock_guard lock(labels_mu_);
  return labels_;
}

void metrics_registry::attach_audit(unsigned shard, const core::log_writer_stats* stats) {
  audit_[shard]->store(stats, std::memory_order_release);
}

std::string metrics_registry::render() const {
  std::shared_ptr<const metric_labels> labels = this->labels();
  std::string out;
  out.reserve(16 * 1024);
  using sums = std::array<uint64_t, call_decision_count>;
  auto row_sum = [&](auto member, size_t index) {
    sums s{};
    for (const auto& shard : shards_)
      for (size_t d = 0; d < call_decision_count; ++d) s[d] += ((*shard).*member)[index][d].get();
    return s;
  };
  auto total = [&](auto get) {
    uint64_t n = 0;
    for (const auto& shard : shards_) n += get(*shard);
    return n;
  };

  append_family(out, "mcpgate_requests_total", "counter",
                "JSON-RPC messages handled, by method and decision.");
  for (size_t m = 0; m < known_methods.size(); ++m)
    append_decision_row(out, "mcpgate_requests_total", "method", known_methods[m],
                        row_sum(&shard_metrics::by_method_, m));

  append_family(out, "mcpgate_tool_calls_total", "counter",
                "tools/call requests, by tool and decision (unregistered tools count as other).");
  for (size_t t = 0; t < labels->tool_count(); ++t)
    append_decision_row(out, "mcpgate_tool_calls_total", "tool", labels->tool_name(t),
                        row_sum(&shard_metrics::by_tool_, t));

  append_family(out, "mcpgate_grant_requests_total", "counter",
                "JSON-RPC messages handled, by the grant that applied and decision.");
  for (size_t g = 0; g < labels->grant_count(); ++g)
    append_decision_row(out, "mcpgate_grant_requests_total", "grant", labels->grant_name(g),
                        row_sum(&shard_metrics::by_grant_, g));
  append_decision_row(out, "mcpgate_grant_requests_total", "grant", "none",
                      row_sum(&shard_metrics::by_grant_, metric_labels::max_grants));

  if (!servers_.empty()) {
    append_family(
        out, "mcpgate_server_requests_total", "counter",
        "JSON-RPC messages handled, by the server (upstream) they were for and decision.");
    for (size_t i = 0; i < servers_.size() && i < shard_metrics::max_servers; ++i)
      append_decision_row(out, "mcpgate_server_requests_total", "server", servers_[i],
                          row_sum(&shard_metrics::by_server_, i));
  }

  append_family(out, "mcpgate_upstream_responses_total", "counter",
                "Upstream HTTP responses, by status class.");
  for (size_t c = 0; c < 5; ++c) {
    out += "mcpgate_upstream_responses_total{class=\"";
    out += static_cast<char>('1' + c);
    out += "xx\"} ";
    append_uint(out, total([&](const shard_metrics& s) { return s.upstream_status_[c].get(); }));
    out += '\n';
  }
  append_family(out, "mcpgate_upstream_errors_total", "counter",
                "Upstream exchanges that failed without a usable response, by kind.");
  for (size_t k = 0; k < upstream_error_kind_count; ++k) {
    out += "mcpgate_upstream_errors_total{kind=\"";
    out += upstream_error_names[k];
    out += "\"} ";
    append_uint(out, total([&](const shard_metrics& s) { return s.upstream_errors_[k].get(); }));
    out += '\n';
  }

  std::vector<const latency_histogram*> gateway, upstream;
  for (const auto& shard : shards_) {
    gateway.push_back(&shard->gateway_latency_);
    upstream.push_back(&shard->upstream_latency_);
  }
  append_histogram(out, "mcpgate_gateway_latency_seconds",
                   "Time the gateway added to a call (excluding the upstream).", gateway);
  append_histogram(out, "mcpgate_upstream_latency_seconds",
                   "Time from forwarding a call to the upstream's response head.", upstream);

  append_family(out, "mcpgate_open_connections", "gauge", "Client connections open.");
  append_sample(out, "mcpgate_open_connections",
                total([](const shard_metrics& s) { return s.connections_open_.get(); }));
  append_family(out, "mcpgate_open_sse_streams", "gauge", "Server-sent event streams open.");
  append_sample(out, "mcpgate_open_sse_streams",
                total([](const shard_metrics& s) { return s.sse_streams_open_.get(); }));

  uint64_t bytes = 0, flushes = 0, failures = 0, dropped = 0, pending = 0, unhealthy = 0;
  for (const auto& slot : audit_) {
    const core::log_writer_stats* a = slot->load(std::memory_order_acquire);
    if (!a) continue;
    bytes += a->bytes_written.get();
    flushes += a->flushes.get();
    failures += a->failures.get();
    dropped += a->dropped_lines.get();
    pending += a->pending_bytes.get();
    if (!a->healthy.load(std::memory_order_relaxed)) ++unhealthy;
  }
  append_family(out, "mcpgate_audit_bytes_total", "counter", "Audit log bytes written.");
  append_sample(out, "mcpgate_audit_bytes_total", bytes);
  append_family(out, "mcpgate_audit_flushes_total", "counter",
                "Audit log buffers written completely.");
  append_sample(out, "mcpgate_audit_flushes_total", flushes);
  append_family(out, "mcpgate_audit_failures_total", "counter",
                "Failed audit log writes and fsyncs (each attempt counts).");
  append_sample(out, "mcpgate_audit_failures_total", failures);
  append_family(out, "mcpgate_audit_dropped_lines_total", "counter",
                "Audit lines dropped under fail_open past audit.max_pending_bytes.");
  append_sample(out, "mcpgate_audit_dropped_lines_total", dropped);
  append_family(out, "mcpgate_audit_pending_bytes", "gauge",
                "Audit bytes accepted but not yet written.");
  append_sample(out, "mcpgate_audit_pending_bytes", pending);
  append_family(out, "mcpgate_audit_unhealthy_shards", "gauge",
                "Shards whose audit writer is failing or over its backlog limit.");
  append_sample(out, "mcpgate_audit_unhealthy_shards", unhealthy);
  append_family(out, "mcpgate_internal_bugs_total", "counter",
                "Broken internal invariants the gateway recovered from (each logged once).");
  append_sample(out, "mcpgate_internal_bugs_total", core::bug_count());

  std::vector<const stdio_bridge_stats*> bridges;
  {
    std::lock_guard lock(labels_mu_);
    bridges = stdio_;
  }
  if (!bridges.empty()) {
    // Summed over the stdio upstreams (one bridge each).
    auto sum = [&](shard_stats::counter stdio_bridge_stats::*member) {
      uint64_t total = 0;
      for (const stdio_bridge_stats* b : bridges) total += (b->*member).get();
      return total;
    };
    append_family(out, "mcpgate_stdio_processes", "gauge", "stdio upstream children running.");
    append_sample(out, "mcpgate_stdio_processes", sum(&stdio_bridge_stats::processes_running));
    append_family(out, "mcpgate_stdio_sessions", "gauge", "MCP sessions open on the stdio bridge.");
    append_sample(out, "mcpgate_stdio_sessions", sum(&stdio_bridge_stats::sessions_open));
    append_family(out, "mcpgate_stdio_spawned_total", "counter", "stdio children started.");
    append_sample(out, "mcpgate_stdio_spawned_total", sum(&stdio_bridge_stats::spawned));
    append_family(out, "mcpgate_stdio_spawn_failures_total", "counter",
                  "stdio children that could not be started.");
    append_sample(out, "mcpgate_stdio_spawn_failures_total",
                  sum(&stdio_bridge_stats::spawn_failures));
    append_family(out, "mcpgate_stdio_exits_total", "counter", "stdio children that ended.");
    append_sample(out, "mcpgate_stdio_exits_total", sum(&stdio_bridge_stats::exits));
    append_family(out, "mcpgate_stdio_crashes_total", "counter",
                  "stdio children that ended on their own soon after starting (crash loop).");
    append_sample(out, "mcpgate_stdio_crashes_total", sum(&stdio_bridge_stats::crashes));
    append_family(out, "mcpgate_stdio_refused_total", "counter",
                  "initialize requests refused, by reason.");
    out += "mcpgate_stdio_refused_total{reason=\"max_processes\"} ";
    append_uint(out, sum(&stdio_bridge_stats::refused_over_cap));
    out += "\nmcpgate_stdio_refused_total{reason=\"max_processes_per_identity\"} ";
    append_uint(out, sum(&stdio_bridge_stats::refused_over_identity_cap));
    out += "\nmcpgate_stdio_refused_total{reason=\"crash_backoff\"} ";
    append_uint(out, sum(&stdio_bridge_stats::refused_backoff));
    out += '\n';
    append_family(out, "mcpgate_stdio_backoff_seconds", "gauge",
                  "Time left before a crash-looping stdio upstream may start again (the longest).");
    int64_t left = 0;
    for (const stdio_bridge_stats* b : bridges)
      left = std::max(left,
                      b->backoff_until_ns.load(std::memory_order_relaxed) - core::monotonic_ns());
    out += "mcpgate_stdio_backoff_seconds ";
    out += std::to_string(left > 0 ? static_cast<double>(left) / 1e9 : 0.0);
    out += '\n';
    append_family(out, "mcpgate_stdio_messages_dropped_total", "counter",
                  "Server messages with no open stream or queue room, and unmatched responses.");
    append_sample(out, "mcpgate_stdio_messages_dropped_total",
                  sum(&stdio_bridge_stats::messages_dropped));
  }
  return out;
}

void metrics_registry::set_servers(std::vector<std::string> names) {
  std::lock_guard lock(labels_mu_);
  servers_ = std::move(names);
}

void metrics_registry::attach_stdio(const stdio_bridge_stats* stats) {
  std::lock_guard lock(labels_mu_);
  stdio_.push_back(stats);
}

}  // namespace mcpgate::net
