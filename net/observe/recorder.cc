#include "net/observe/recorder.h"

#include <algorithm>

#include "core/clock.h"

namespace mcpgate::net {

audit_record recorder::line_base(const exchange_record& rec, const record_subject& who,
                                 int64_t realtime_ns) const {
  audit_record r;
  r.realtime_ns = realtime_ns;
  r.shard = shard_;
  r.conn = rec.conn;
  r.req = rec.req;
  if (!who.identity.empty()) r.identity = who.identity;
  if (!who.grant.empty()) r.grant = who.grant;
  r.issuer = who.issuer;
  if (!who.server.empty()) r.server = who.server;
  if (!who.session.empty()) r.session = who.session;
  return r;
}

void recorder::prepare(exchange_record& rec, const jsonrpc_result* body, const record_subject& who,
                       const metric_labels* labels) {
  rec.audit_heads.clear();
  rec.audit_ends.clear();
  rec.metric_ids.clear();
  rec.session_pending = who.session.empty();
  size_t count = body ? body->messages.size() : 1;
  audit_record r;
  if (audit_)
    r = line_base(rec, who,
                  rec.started_realtime_ns ? rec.started_realtime_ns : core::realtime_ns());
  for (size_t i = 0; i < count; ++i) {
    const jsonrpc_message* m = body ? &body->messages[i] : nullptr;
    bool is_call = m && m->method == "tools/call" && m->name;
    if (metrics_) {
      label_id method = !m                  ? other_label
                        : m->method.empty() ? response_method
                                            : method_id(m->method);
      label_id tool = !is_call ? no_label : labels ? labels->tool_id(*m->name) : other_label;
      rec.metric_ids.emplace_back(method, tool);
    }
    if (!audit_) continue;
    if (m) {
      r.method = m->method.empty() ? std::optional<std::string_view>() : m->method;
      r.id = m->id.empty() ? std::optional<std::string_view>() : m->id;
      r.tool = is_call ? m->name : std::nullopt;
      r.arguments = m->arguments ? std::optional<raw_arguments>(
                                       raw_arguments{m->arguments->data(), m->arguments->size()})
                                 : std::nullopt;
      r.rule = std::nullopt;
      if (i < who.verdicts.size() && !who.verdicts[i].rule.empty()) r.rule = who.verdicts[i].rule;
    }
    if (!m && !rec.reply_rule.empty()) r.rule = rec.reply_rule;
    if (!m && !who.bodyless_method.empty()) r.method = who.bodyless_method;
    append_audit_head(rec.audit_heads, r, arguments_);
    rec.audit_ends.push_back(static_cast<uint32_t>(rec.audit_heads.size()));
  }
}

void recorder::finish(exchange_record& rec, call_decision decision, const record_subject& who,
                      bool use_verdicts, bool forwarded, int upstream_status,
                      const metric_labels* labels) {
  if (rec.session_pending && !who.session.empty() && audit_) {
    // Every head has "session":null where the session goes (a string value cannot hold that
    // sequence: its quotes would be escaped); put the session the upstream named there.
    std::string rebuilt;
    size_t begin = 0;
    for (uint32_t& end : rec.audit_ends) {
      std::string_view head = std::string_view(rec.audit_heads).substr(begin, end - begin);
      size_t at = head.find(",\"session\":null");
      if (at == std::string_view::npos) {
        rebuilt.append(head);
      } else {
        rebuilt.append(head.substr(0, at));
        append_audit_session(rebuilt, who.session);
        rebuilt.append(head.substr(at + 15));
      }
      begin = end;
      end = static_cast<uint32_t>(rebuilt.size());
    }
    rec.audit_heads.swap(rebuilt);
    rec.session_pending = false;
  }
  size_t count = std::max(rec.audit_ends.size(), rec.metric_ids.size());
  if (count == 0 || rec.quiet) return;
  int64_t now = core::monotonic_ns();
  audit_record r;
  r.forwarded = forwarded;
  r.upstream_status = upstream_status;
  bool went_upstream = forwarded && rec.forwarded_ns;
  r.upstream_us = went_upstream ? (now - rec.forwarded_ns) / 1000 : 0;
  // What the gateway added: from the request head to the reply it made or to the hand-over to
  // the upstream. Rounded up, so that work that took any time never reads as 0.
  int64_t gateway_ns = (went_upstream ? rec.forwarded_ns : now) - rec.started_ns;
  r.gateway_us = gateway_ns > 0 ? (gateway_ns + 999) / 1000 : 0;
  r.bytes_in = rec.bytes_in;
  r.bytes_out = rec.bytes_out;
  if (decision == call_decision::upstream_error) r.error = rec.upstream_failure;
  r.approval_id = rec.approval_id;
  r.approval_by = rec.approval_by;
  r.approval_reason = rec.approval_reason;
  r.approval_granted = rec.approval_granted;
  rec.upstream_failure = {};
  label_id grant = no_label;
  if (metrics_) {
    if (!who.grant.empty()) grant = labels ? labels->grant_id(who.grant) : other_label;
    metrics_->observe_gateway_us(r.gateway_us);
    if (forwarded) {
      metrics_->observe_upstream_us(r.upstream_us);
      if (upstream_status > 0) metrics_->count_upstream_status(upstream_status);
    }
  }
  uint32_t begin = 0;
  for (size_t i = 0; i < count; ++i) {
    r.decision = decision;
    if (use_verdicts && i < who.verdicts.size()) r.decision = who.verdicts[i].decision;
    if (metrics_ && i < rec.metric_ids.size()) {
      metrics_->count_request(rec.metric_ids[i].first, rec.metric_ids[i].second, grant, r.decision);
      if (who.server_id != no_label) metrics_->count_server(who.server_id, r.decision);
    }
    if (i < rec.audit_ends.size()) {
      lines_.append(rec.audit_heads, begin, rec.audit_ends[i] - begin);
      append_audit_tail(lines_, r);
      begin = rec.audit_ends[i];
    }
  }
  if (audit_ && !lines_.empty()) audit_->append(lines_);
  lines_.clear();
  rec.audit_heads.clear();
  rec.audit_ends.clear();
  rec.metric_ids.clear();
}

void recorder::tool_changed(const exchange_record& rec, const record_subject& who,
                            const tool_change_record& change) {
  if (!audit_) return;
  // Stamped when the response showed the change, not when the list was asked for.
  append_tool_change_line(lines_, line_base(rec, who, core::realtime_ns()), change);
  audit_->append(lines_);
  lines_.clear();
}

void recorder::refused_connection(uint64_t conn, uint64_t req, uint64_t bytes_out,
                                  std::string_view rule) {
  if (!audit_) return;
  audit_record r;
  r.realtime_ns = core::realtime_ns();
  r.shard = shard_;
  r.conn = conn;
  r.req = req;
  r.decision = call_decision::invalid;
  r.rule = rule;
  r.bytes_out = bytes_out;
  append_audit_line(lines_, r, arguments_);
  audit_->append(lines_);
  lines_.clear();
}

}  // namespace mcpgate::net
