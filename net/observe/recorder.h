#pragma once

// The record of an exchange: its audit lines and its request metrics. What is known when the
// request is decided is taken then (the audit line's head is rendered at once, so nothing has to
// be copied to wait for the upstream); the outcome when the exchange ends. One recorder per
// shard, on the shard's thread.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/log_writer.h"
#include "net/mcp/jsonrpc.h"
#include "net/observe/audit_record.h"
#include "net/observe/decision.h"
#include "net/observe/metrics.h"
#include "net/observe/trace.h"

namespace mcpgate::net {

// One exchange's record, kept with the exchange.
struct exchange_record {
  uint64_t conn = 0;  // connection number on the shard
  uint64_t req = 0;   // request number on the shard
  // Read from the clock itself, not the loop turn's cached time: the gateway's own share of an
  // exchange is microseconds, far below a loop turn.
  int64_t started_ns = 0;    // request head complete (monotonic)
  int64_t forwarded_ns = 0;  // handed to the upstream connection (monotonic); 0: not yet
  int64_t started_realtime_ns = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::string_view upstream_failure;  // for the audit line's "error" (a static word)
  std::string_view reply_rule;        // the "rule" of a reply made before any message was read
  std::string audit_heads;
  std::vector<uint32_t> audit_ends;
  trace_context trace;  // tracing: this exchange's ids (inactive when tracing is off)
  // The heads were written before the session was known (initialize: the upstream names it in
  // its response); finish() fills it in.
  bool session_pending = false;
  // The federated endpoint's: written only when its hub answered the request itself (then
  // with hub_decision); a call it forwarded is audited by the server's route it went through.
  bool quiet = false;
  call_decision hub_decision = call_decision::allowed;
  std::vector<std::pair<label_id, label_id>> metric_ids;  // per message: method, tool
  // A call held for approval: the record's id, who decided and why (views into the exchange).
  std::string_view approval_id;
  std::string_view approval_by;
  std::string_view approval_reason;
  bool approval_granted = false;

  bool prepared() const { return !audit_ends.empty() || !metric_ids.empty(); }
  // A new request on the connection: nothing of the previous one carries over.
  void start(uint64_t request, int64_t now_ns, int64_t realtime_ns, uint64_t in) {
    req = request;
    started_ns = now_ns;
    forwarded_ns = 0;
    started_realtime_ns = realtime_ns;
    bytes_in = in;
    bytes_out = 0;
    upstream_failure = {};
    reply_rule = {};
    audit_heads.clear();
    audit_ends.clear();
    session_pending = false;
    quiet = false;
    hub_decision = call_decision::allowed;
    approval_id = {};
    approval_by = {};
    approval_reason = {};
    approval_granted = false;
    trace = {};
    metric_ids.clear();
  }
};

// Who made the request, as far as the gateway knows (views valid while the record is written).
struct record_subject {
  std::string_view identity;  // empty: unauthenticated
  std::string_view grant;
  std::string_view issuer;        // an access token's issuer; empty for an API key
  std::string_view session;       // the upstream's session id
  std::string_view server;        // the named upstream the request went to; empty: none (404)
  label_id server_id = no_label;  // its index among the configuration's upstreams
  std::span<const message_verdict> verdicts;
  // "GET" or "DELETE": the audit line's method for a request that carries no message.
  std::string_view bodyless_method;
};

class recorder {
 public:
  // audit and metrics may each be null (off).
  recorder(unsigned shard, core::log_writer* audit, shard_metrics* metrics, arguments_mode args)
      : shard_(shard), audit_(audit), metrics_(metrics), arguments_(args) {}

  // What is known once the request is decided: one line head per message of `body`, or one
  // for a request without messages (body null).
  void prepare(exchange_record& r, const jsonrpc_result* body, const record_subject& who,
               const metric_labels* labels);
  // The outcome; with use_verdicts each message gets its own decision from who.verdicts.
  void finish(exchange_record& r, call_decision decision, const record_subject& who,
              bool use_verdicts, bool forwarded, int upstream_status, const metric_labels* labels);
  // A listed tool that no longer matches its pin: a line of its own, at once.
  void tool_changed(const exchange_record& r, const record_subject& who,
                    const tool_change_record& change);
  // A connection turned away at accept (over the connection limit): a line of its own.
  void refused_connection(uint64_t conn, uint64_t req, uint64_t bytes_out, std::string_view rule);

  void set_audit(core::log_writer* audit) { audit_ = audit; }
  bool auditing() const { return audit_ != nullptr; }

 private:
  // Who and where, for a line of this exchange.
  audit_record line_base(const exchange_record& rec, const record_subject& who,
                         int64_t realtime_ns) const;

  unsigned shard_;
  core::log_writer* audit_;
  shard_metrics* metrics_;
  arguments_mode arguments_;
  std::string lines_;  // lines of one exchange, handed to the writer at once
};

}  // namespace mcpgate::net
