#pragma once

// What one shard's stages and connections share: its ring, its counters, the gate and the
// rules of its current configuration generation, the parsers and sealers it reuses for every
// request. Owned by the shard (net/exchange/shard.h); everything here runs on its thread.

#include <cstdint>
#include <memory>
#include <string>

#include "core/log_writer.h"
#include "core/shard.h"
#include "core/timer_wheel.h"
#include "net/exchange/gate.h"
#include "net/exchange/gateway_config.h"
#include "net/mcp/jsonrpc.h"
#include "net/mcp/request_rules.h"
#include "net/mcp/session_token.h"
#include "net/observe/metrics.h"
#include "net/observe/recorder.h"
#include "net/observe/shard_stats.h"

namespace mcpgate::net {

class shard_context {
 public:
  shard_context(std::shared_ptr<const gateway_config> config, uint16_t listen_port,
                shard_stats& stats)
      : stats(stats),
        extractor(config->jsonrpc),
        sealer(config->session_seal_key),
        listen_port_(listen_port) {
    set_config(std::move(config));
  }

  core::reactor* reactor = nullptr;
  core::buffer_ring* buffers = nullptr;
  shard_stats& stats;
  shard_metrics* metrics = nullptr;   // null: no admin listener
  core::log_writer* audit = nullptr;  // null: no audit log
  std::unique_ptr<recorder> record;
  core::timer_wheel timers{10'000'000};
  jsonrpc_extractor extractor;
  session_sealer sealer;
  bool draining = false;
  uint64_t next_conn_id = 0;
  uint64_t next_req = 0;
  // Tracing (when the config has an exporter): ids, the _meta reader, and the spans rendered
  // since the last hand-over.
  trace_ids trace_ids_;
  trace_meta_reader trace_meta;
  std::string spans;
  uint64_t span_count = 0;
  int64_t spans_since_ns = 0;
  std::string reply_scratch;  // a whole reply the gateway makes, reused
  std::string error_body;     // the JSON-RPC error body inside it, reused

  // The current generation and what is derived from it for this shard.
  const std::shared_ptr<const gateway_config>& config() const { return config_; }
  gate& current_gate() { return *gate_; }
  const head_rules& rules() const { return rules_; }
  const metric_labels* labels() const { return config_->gate->labels.get(); }

  // A new generation: exchanges that started under the old one keep theirs (exchange::config).
  void set_config(std::shared_ptr<const gateway_config> config) {
    config_ = std::move(config);
    gate_ = make_gate(config_->gate, 0);
    endpoint at = config_->listen;
    if (listen_port_) at.port = listen_port_;
    rules_ = head_rules{
        {}, config_->allowed_origins, host_allowlist::for_listener(at, config_->allowed_hosts)};
    for (const route& r : config_->routes) rules_.paths.push_back(r.path);
  }

  // Hands the spans rendered so far to the exporter.
  void flush_spans() {
    if (span_count == 0) return;
    if (config_->tracing) config_->tracing->post(std::move(spans), span_count);
    spans.clear();
    span_count = 0;
    spans_since_ns = 0;
  }

  int64_t now_ns() const { return reactor->now_ns(); }
  unsigned id() const { return reactor->id(); }

  // Fail closed on the audit log: nothing crosses the gateway that it cannot record.
  bool audit_refuses_calls() const {
    return audit && !audit->healthy() &&
           config_->audit.writer.on_failure == core::failure_policy::fail_closed;
  }

 private:
  std::shared_ptr<const gateway_config> config_;
  std::unique_ptr<gate> gate_;
  head_rules rules_;
  uint16_t listen_port_;
};

}  // namespace mcpgate::net
