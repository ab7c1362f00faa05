#include "net/exchange/stages.h"

#include <algorithm>
#include <optional>
#include <string>

#include "core/byte_buffer.h"
#include "net/exchange/context.h"
#include "net/exchange/errors.h"
#include "net/exchange/exchange.h"
#include "net/http/writer.h"
#include "net/mcp/request_rules.h"

namespace mcpgate::net {
namespace {

std::string_view method_name(http_method m) {
  switch (m) {
    case http_method::get:
      return "GET";
    case http_method::post:
      return "POST";
    case http_method::delete_:
      return "DELETE";
    default:
      return "";
  }
}

void assign(std::string& to, std::string_view from) {
  to.assign(from.data(), from.size());
}

// A JSON-RPC error reply made in ctx.error_body.
stage_result error_reply(exchange& ex, shard_context& ctx, int status, int code,
                         std::string_view message, std::string_view id, bool close,
                         call_decision decision = call_decision::invalid) {
  ctx.error_body.clear();
  append_jsonrpc_error(ctx.error_body, id, code, message);
  ex.reply = {status, {}, "application/json", ctx.error_body, close, decision, false};
  return stage_result::replied;
}

stage_result error_reply(exchange& ex, shard_context& ctx, gateway_error e, std::string_view id,
                         bool close) {
  gateway_error_reply r = describe(e);
  return error_reply(ex, ctx, r.http_status, r.code, r.message, id, close, r.decision);
}

bool has_body(const exchange& ex) {
  return ex.framing != body_framing::none;
}

class transport_stage final : public stage {
  // GET of the metadata of a protected resource this gateway serves (RFC 9728): the bare
  // well-known path, or it followed by an endpoint's path. Public, as the 401 points to it.
  bool serves_metadata(exchange& ex, shard_context& ctx) {
    std::string_view rest = std::string_view(ex.path).substr(metadata_prefix.size());
    const std::vector<std::string>& paths = ctx.rules().paths;
    std::string_view endpoint = rest;
    if (rest.empty()) {
      if (paths.empty()) return false;
      endpoint = paths.front();
    } else if (std::find(paths.begin(), paths.end(), rest) == paths.end()) {
      return false;
    }
    request_view view;
    view.method = ex.method;
    view.host = ex.parsed_head->headers().find("host");
    view.path = endpoint;
    gate_reply doc;
    if (!ctx.current_gate().resource_metadata(view, doc)) return false;
    ex.record.reply_rule = "resource_metadata";
    ex.reply = from_gate(doc, call_decision::allowed, false);
    return true;
  }

 public:
  std::string_view name() const override { return "transport"; }
  stage_phase phase() const override { return stage_phase::head; }
  stage_result run(exchange& ex, shard_context& ctx) override {
    if (ex.method == http_method::get && ex.path.starts_with(metadata_prefix) &&
        serves_metadata(ex, ctx))
      return stage_result::replied;
    std::optional<head_rejection> no =
        check_request_head(*ex.parsed_head, ex.path, ctx.rules(), ex.expect_continue);
    if (!no) return stage_result::proceed;
    ex.record.reply_rule = no->rule;
    if (no->code == 0) {
      ex.reply = {no->status, no->extra_headers, {}, {}, no->close, call_decision::invalid, false};
      return stage_result::replied;
    }
    stage_result r = error_reply(ex, ctx, no->status, no->code, no->message, {}, no->close);
    ex.reply.extra_headers = no->extra_headers;
    return r;
  }
};

class authenticate_stage final : public stage {
 public:
  std::string_view name() const override { return "authenticate"; }
  stage_phase phase() const override { return stage_phase::head; }
  stage_result run(exchange& ex, shard_context& ctx) override {
    gate& g = ctx.current_gate();
    if (!ex.ticket || !g.owns(*ex.ticket)) ex.ticket = g.new_ticket();
    request_view view{ex.method, ex.authorization, {}, ex.protocol_version, {}, {}};
    view.host = ex.parsed_head->headers().find("host");
    view.path = ex.path;
    gate_reply denied;
    if (g.admit(view, *ex.ticket, denied)) return stage_result::proceed;
    // The 401 names the request's id when its body came with the head: it is parsed only
    // then, after the refusal, and no further byte is read for a caller who did not
    // authenticate.
    if (ex.method == http_method::post && ex.early_body.data != nullptr) {
      jsonrpc_result parsed = ctx.extractor.extract(ex.early_body);
      if (parsed.status == jsonrpc_status::ok && !parsed.batch &&
          parsed.messages.front().kind == message_kind::request) {
        view.request_id = parsed.messages.front().id;
        g.admit(view, *ex.ticket, denied);
      }
    }
    ex.record.reply_rule = denied.rule;
    ex.reply = from_gate(denied, call_decision::unauthenticated, false, has_body(ex));
    return stage_result::replied;
  }
};

// A session belongs to the identity that created it: its token opens only for that identity,
// and to anyone else it is as unknown as an id never issued. The upstream gets its own id.
class session_stage final : public stage {
 public:
  std::string_view name() const override { return "session"; }
  stage_phase phase() const override { return stage_phase::head; }
  stage_result run(exchange& ex, shard_context& ctx) override {
    ex.session_flags = 0;
    if (!ex.names_session) return stage_result::proceed;
    std::string_view who = ex.identity();
    if (ex.session_token != ex.cached_token || who != ex.cached_owner) {
      std::optional<std::string_view> upstream_id =
          ctx.sealer.open(ex.session_token, who, &ex.cached_flags);
      if (!upstream_id) {
        ex.record.reply_rule = "session";
        return error_reply(ex, ctx, gateway_error::session_not_found, {}, has_body(ex));
      }
      assign(ex.cached_upstream_id, *upstream_id);
      ex.cached_token = ex.session_token;
      assign(ex.cached_owner, who);
    }
    ex.session_id = ex.cached_upstream_id;
    ex.session_flags = ex.cached_flags;
    return stage_result::proceed;
  }
};

class route_stage final : public stage {
 public:
  std::string_view name() const override { return "route"; }
  stage_phase phase() const override { return stage_phase::head; }
  stage_result run(exchange& ex, shard_context&) override {
    // The transport stage answered 404 for a path no route serves.
    ex.target = ex.config->find_route(ex.path);
    ex.upstream = &ex.config->upstreams[ex.target->upstream];
    return stage_result::proceed;
  }
};

// The upstream request head: the client's header lines byte for byte, less the hop-by-hop
// fields and the framing the gateway sets itself.
class forward_head_stage final : public stage {
 public:
  std::string_view name() const override { return "forward_head"; }
  stage_phase phase() const override { return stage_phase::head; }
  stage_result run(exchange& ex, shard_context&) override {
    const header_list& headers = ex.parsed_head->headers();
    const upstream_target& up = *ex.upstream;
    std::string& f = ex.fwd;
    f.clear();
    f += method_name(ex.method);
    f += ' ';
    f += up.path;
    f += ex.query;
    f += " HTTP/1.1\r\n";
    append_header(f, "Host", up.host_header);
    std::string_view connection = headers.find("connection");
    bool has_connection = headers.count("connection") > 0;
    // The gateway's own credential stays with the gateway (the MCP security guidance forbids
    // passing a client's token through), unless the upstream is configured to need it.
    bool drop_authorization = ex.ticket->consumed_credential && !up.forward_authorization;
    for (const http_header& hd : headers) {
      if (equals_ignore_case(hd.name, "host") || equals_ignore_case(hd.name, "content-length") ||
          equals_ignore_case(hd.name, "expect") || is_hop_by_hop(hd.name))
        continue;
      if (has_connection && header_has_token(connection, hd.name)) continue;
      if (drop_authorization && equals_ignore_case(hd.name, "authorization")) continue;
      // The gateway's own credential for this upstream replaces whatever the client sent.
      if (!up.credential_header.empty() && equals_ignore_case(hd.name, up.credential_header))
        continue;
      // With tracing the gateway's span is the upstream's parent (the trace stage adds it).
      if (ex.config->tracing && equals_ignore_case(hd.name, "traceparent")) continue;
      append_header(f, hd.name,
                    equals_ignore_case(hd.name, "mcp-session-id") ? std::string_view(ex.session_id)
                                                                  : hd.value);
    }
    // The bridge counts children per authenticated identity (max_processes_per_identity);
    // the federation hub's sessions are counted per identity too.
    if ((up.stdio || up.federation) && ex.ticket->consumed_credential)
      append_header(f, "Mcp-Gateway-Identity", ex.identity());
    if (!up.credential_header.empty()) append_header(f, up.credential_header, up.credential_value);
    return stage_result::proceed;
  }
};

class parse_stage final : public stage {
 public:
  std::string_view name() const override { return "parse"; }
  stage_phase phase() const override { return stage_phase::body; }
  stage_result run(exchange& ex, shard_context& ctx) override {
    ex.messages_current = false;
    if (ex.method != http_method::post) return stage_result::proceed;
    ex.messages = ctx.extractor.extract(ex.body);
    if (ex.messages.status != jsonrpc_status::ok) {
      std::string message = ex.messages.status == jsonrpc_status::parse_error
                                ? std::string("Parse error: ").append(ex.messages.reason)
                                : std::string("Invalid Request: ").append(ex.messages.reason);
      return error_reply(ex, ctx, 400, jsonrpc_error_code(ex.messages.status), message, {}, false);
    }
    ex.messages_current = true;
    const jsonrpc_message& first = ex.messages.messages.front();
    if (!ex.messages.batch && first.kind == message_kind::request) assign(ex.reply_id, first.id);
    return stage_result::proceed;
  }
};

class messages_stage final : public stage {
 public:
  std::string_view name() const override { return "messages"; }
  stage_phase phase() const override { return stage_phase::body; }
  stage_result run(exchange& ex, shard_context& ctx) override {
    if (!ex.messages_current) return stage_result::proceed;
    const jsonrpc_result& r = ex.messages;
    // JSON-RPC batches exist only in revision 2025-03-26; later revisions removed them, so a
    // batch that names a later revision is refused rather than forwarded for the upstream to
    // interpret. (Revisions are dates: they compare as strings.)
    if (r.batch && !ex.protocol_version.empty() && ex.protocol_version > "2025-03-26")
      return error_reply(ex, ctx, 400, -32600,
                         std::string(describe(gateway_error::batch_not_allowed).message) + " " +
                             ex.protocol_version,
                         {}, false);
    // A tools/call names its tool in params.name; without it there is nothing to decide on,
    // and no call may pass as the tool named "".
    for (const jsonrpc_message& m : r.messages) {
      bool call = (m.kind == message_kind::request || m.kind == message_kind::notification) &&
                  m.method == "tools/call";
      if (!call || (m.params && m.params->front() == '{' && m.name)) continue;
      ex.record.reply_rule = "params";
      stage_result replied =
          error_reply(ex, ctx, gateway_error::invalid_params,
                      r.batch ? std::string_view() : std::string_view(ex.reply_id), false);
      if (r.batch) ex.reply.status = 400;
      return replied;
    }
    // Protocol 2026-07-28 routes on Mcp-Method / Mcp-Name; the upstream may act on the header
    // while we decide on the body, so they must agree.
    if (ex.has_mcp_method_header || ex.has_mcp_name_header) {
      const jsonrpc_message& first = r.messages.front();
      bool agree = !r.batch && (!ex.has_mcp_method_header || ex.mcp_method_header == first.method);
      if (agree && ex.has_mcp_name_header) {
        std::string_view name = first.name  ? *first.name
                                : first.uri ? *first.uri
                                            : std::string_view();
        agree = ex.mcp_name_header == name;
      }
      if (!agree) return error_reply(ex, ctx, gateway_error::header_mismatch, ex.reply_id, false);
    }
    return stage_result::proceed;
  }
};

// Tracing: the exchange's trace context, continued from the client's traceparent header or
// from params._meta.traceparent of a single request, or a new trace; the forwarded request
// names the gateway's upstream span as its parent.
class trace_stage final : public stage {
 public:
  std::string_view name() const override { return "trace"; }
  stage_phase phase() const override { return stage_phase::body; }
  stage_result run(exchange& ex, shard_context& ctx) override {
    if (!ex.config->tracing) return stage_result::proceed;
    trace_context& t = ex.record.trace;
    if (!t.has_parent && ex.messages_current && !ex.messages.batch) {
      const jsonrpc_message& m = ex.messages.messages.front();
      if (m.params) parse_traceparent(ctx.trace_meta.traceparent(*m.params), t);
    }
    ctx.trace_ids_.fill(t);
    if (ex.messages_current) {
      const jsonrpc_message& m = ex.messages.messages.front();
      t.method = ex.messages.batch ? "batch" : m.method.empty() ? "response" : m.method;
      if (!ex.messages.batch && m.name && m.method == "tools/call") t.tool = *m.name;
    } else {
      t.method = method_name(ex.method);
    }
    append_traceparent_header(ex.fwd, t);
    return stage_result::proceed;
  }
};

// The policy, per message; and the audit record's head, now that what was decided is known.
class decide_stage final : public stage {
 public:
  std::string_view name() const override { return "decide"; }
  stage_phase phase() const override { return stage_phase::body; }
  stage_result run(exchange& ex, shard_context& ctx) override {
    if (ex.target->federated) {
      // Decided, and audited, at each server's route; recorded here in case the hub answers.
      ctx.record->prepare(ex.record, ex.messages_current ? &ex.messages : nullptr, ex.subject(),
                          ctx.labels());
      ex.record.quiet = true;
      return stage_result::proceed;
    }
    if (!ex.messages_current) {
      ctx.record->prepare(ex.record, nullptr, ex.subject(), ctx.labels());
      return stage_result::proceed;
    }
    request_view view{ex.method,           ex.authorization,  ex.session_id,
                      ex.protocol_version, ex.target->server, {}};
    gate_reply denied;
    bool allowed = ctx.current_gate().decide(view, ex.messages, *ex.ticket, denied);
    ctx.record->prepare(ex.record, &ex.messages, ex.subject(), ctx.labels());
    if (allowed) return stage_result::proceed;
    ex.reply = from_gate(denied, call_decision::denied, true);
    return stage_result::replied;
  }
};

// Nothing crosses the gateway that the audit log cannot record.
class audit_stage final : public stage {
 public:
  std::string_view name() const override { return "audit"; }
  stage_phase phase() const override { return stage_phase::body; }
  stage_result run(exchange& ex, shard_context& ctx) override {
    if (!ctx.audit_refuses_calls()) return stage_result::proceed;
    ex.ticket->completed(0, false);
    return error_reply(ex, ctx, gateway_error::audit_unwritable, ex.reply_id, false);
  }
};

}  // namespace

stage_list make_stages(stage_list extra) {
  stage_list stages;
  stages.push_back(std::make_unique<transport_stage>());
  stages.push_back(std::make_unique<authenticate_stage>());
  stages.push_back(std::make_unique<session_stage>());
  stages.push_back(std::make_unique<route_stage>());
  stages.push_back(std::make_unique<forward_head_stage>());
  stages.push_back(std::make_unique<parse_stage>());
  stages.push_back(std::make_unique<messages_stage>());
  stages.push_back(std::make_unique<trace_stage>());
  stages.push_back(std::make_unique<decide_stage>());
  for (auto& s : extra) stages.push_back(std::move(s));
  stages.push_back(std::make_unique<audit_stage>());
  return stages;
}

}  // namespace mcpgate::net
