#include "net/approval/stage.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdio>

#include "net/exchange/context.h"
#include "net/exchange/exchange.h"
#include "net/exchange/shard.h"
#include "net/http/writer.h"
#include "net/mcp/session_token.h"
#include "net/observe/audit_record.h"
#include "policy/identity.h"
#include "policy/json_writer.h"
#include "policy/tool_pins.h"

namespace mcpgate::net {
namespace {

std::string sha256_hex(std::string_view bytes) {
  return policy::digest_hex(policy::sha256(bytes));
}

// A JSON-RPC id by value: "n:" and the number as written, "s:" and the unescaped string; empty
// when it is neither.
std::string id_key(simdjson::dom::element id) {
  std::string_view text;
  if (id.get_string().get(text) == simdjson::SUCCESS) return "s:" + std::string(text);
  if (id.is_number()) return "n:" + simdjson::minify(id);
  return {};
}

std::string raw_id_key(std::string_view token) {
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  if (parser.parse(simdjson::padded_string(token)).get(e) != simdjson::SUCCESS) return {};
  return id_key(e);
}

// params._meta.progressToken as its raw JSON; empty when it is not a string or number.
std::string progress_token_of(std::string_view params) {
  simdjson::dom::parser parser;
  simdjson::dom::element e, token;
  if (parser.parse(simdjson::padded_string(params)).get(e) != simdjson::SUCCESS ||
      e["_meta"]["progressToken"].get(token) != simdjson::SUCCESS ||
      !(token.is_string() || token.is_number()))
    return {};
  return simdjson::minify(token);
}

// params.requestId of a notifications/cancelled.
std::string cancelled_key(std::string_view params) {
  simdjson::dom::parser parser;
  simdjson::dom::element e, id;
  if (parser.parse(simdjson::padded_string(params)).get(e) != simdjson::SUCCESS ||
      e["requestId"].get(id) != simdjson::SUCCESS)
    return {};
  return id_key(id);
}

// The id of the elicitation request that asks the human at the client, and how its answer is
// recognised: a response whose id is a string with this prefix is the gateway's, never the
// upstream's.
constexpr std::string_view elicitation_prefix = "mcpgate-approval-";

bool declares_elicitation(std::string_view params) {
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  simdjson::dom::object elicitation;
  return parser.parse(simdjson::padded_string(params)).get(e) == simdjson::SUCCESS &&
         e["capabilities"]["elicitation"].get(elicitation) == simdjson::SUCCESS;
}

// What the human answered: approved only on an explicit accept (and not with approve: false).
struct client_answer {
  bool approve = false;
  std::string reason;
};

client_answer read_answer(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  if (parser.parse(simdjson::padded_string(body)).get(e) != simdjson::SUCCESS)
    return {false, "the client's answer could not be read"};
  std::string_view action, message;
  if (e["error"]["message"].get(message) == simdjson::SUCCESS)
    return {false, "the client could not ask its user: " + std::string(message)};
  if (e["result"]["action"].get(action) != simdjson::SUCCESS)
    return {false, "the client's answer has no action"};
  if (action != "accept") return {false, "the user chose " + std::string(action)};
  bool approve = true;
  simdjson::dom::element flag;
  if (e["result"]["content"]["approve"].get(flag) == simdjson::SUCCESS &&
      flag.get_bool().get(approve) != simdjson::SUCCESS)
    return {false, "the client's answer has an approve that is not true or false"};
  if (!approve) return {false, "the user did not tick approve"};
  return {true, {}};
}

// Elicitation as a request in a POST's response stream: revisions 2025-06-18 and 2025-11-25.
bool can_elicit(const exchange& ex) {
  return (ex.session_flags & session_sealer::flag_elicitation) && !ex.http10 &&
         (ex.protocol_version == "2025-06-18" || ex.protocol_version == "2025-11-25");
}

}  // namespace

stage_result approval_stage::run(exchange& ex, shard_context& ctx) {
  if (!ex.messages_current) return stage_result::proceed;
  std::string_view server = ex.upstream ? std::string_view(ex.upstream->name) : std::string_view();
  const jsonrpc_message& first = ex.messages.messages.front();
  if (!ex.messages.batch && first.kind == message_kind::request && first.method == "initialize" &&
      first.params && declares_elicitation(*first.params))
    ex.session_flags |= session_sealer::flag_elicitation;  // sealed into the session's token
  if (!ex.messages.batch &&
      (first.kind == message_kind::response || first.kind == message_kind::error_response) &&
      first.id.size() > elicitation_prefix.size() + 2 && first.id.front() == '"' &&
      first.id.substr(1, elicitation_prefix.size()) == elicitation_prefix) {
    // The human at the client answered the gateway's question: the held call is decided, and
    // the answer goes no further (the upstream never asked). Only the caller's own calls.
    std::string_view id = first.id.substr(1 + elicitation_prefix.size());
    id.remove_suffix(1);
    client_answer a = read_answer(ex.body_bytes);
    registry_.decide_as_client(id, a.approve, a.reason, ex.identity(), ex.session_id);
    ex.reply = {202, {}, {}, {}, false, call_decision::allowed, false};
    return stage_result::replied;
  }
  if (!ex.messages.batch && first.kind == message_kind::notification &&
      first.method == "notifications/cancelled" && first.params && registry_.pending_any()) {
    // The client gives up a call that waits for approval: it ends here (the upstream never
    // saw it, and would not know the id).
    std::string key = cancelled_key(*first.params);
    if (!key.empty() && registry_.cancel_request(ex.identity(), server, ex.session_id, key)) {
      ex.reply = {202, {}, {}, {}, false, call_decision::allowed, false};
      return stage_result::replied;
    }
  }
  if (!ex.ticket || !ex.ticket->approval.needed) return stage_result::proceed;
  const approval_ask& ask = ex.ticket->approval;
  held_approval& h = ex.approval;
  h.id.clear();
  h.by.clear();
  h.reason.clear();
  h.tool.assign(ask.tool);
  h.rule.assign(ask.rule);
  h.timeout_ms = ask.timeout_ms;
  std::string digest = sha256_hex(ask.arguments);
  if (std::optional<std::string> by = registry_.standing(ex.identity(), server, ask.tool, digest)) {
    h.id = "standing";
    h.by = std::move(*by);
    ex.record.approval_id = h.id;
    ex.record.approval_by = h.by;
    ex.record.approval_granted = true;
    return approved(ex, ctx);
  }

  bool elicit = ask.via_client && can_elicit(ex);
  approval_subject s;
  s.via_client = elicit;
  s.identity.assign(ex.identity());
  s.session = ex.session_id;
  s.server.assign(server);
  s.tool.assign(ask.tool);
  s.arguments_sha256 = std::move(digest);
  std::optional<raw_arguments> raw;
  if (!ask.arguments.empty()) raw = raw_arguments{ask.arguments.data(), ask.arguments.size()};
  append_audit_arguments(s.arguments, raw, ex.config->audit.arguments);
  s.rule.assign(ask.rule);
  s.message.assign(ask.message);
  s.policy_revision.assign(ask.policy_revision);
  s.request_key = raw_id_key(ex.reply_id);
  std::string arguments_shown = s.arguments;
  approval_registry::hold_result held =
      registry_.hold(std::move(s), ask.timeout_ms, ctx.id(), resume_message(ex.token()));
  if (held.status != approval_registry::hold_status::held) {
    message_ = "tool '" + h.tool + "' needs a human's approval, but ";
    message_ += held.status == approval_registry::hold_status::full_identity
                    ? "this identity already has " +
                          std::to_string(registry_.limits().max_pending_per_identity) +
                          " calls waiting for one; retry when they are decided"
                    : "the gateway already holds " +
                          std::to_string(registry_.limits().max_pending) +
                          " calls waiting for one; retry later";
    return refuse(ex, ctx, call_decision::approval_denied);
  }
  h.id = std::move(held.id);
  ex.record.approval_id = h.id;
  int64_t now = ctx.now_ns();
  h.held_ns = now;
  h.deadline_ns = now + ask.timeout_ms * 1'000'000;
  h.progress_token.clear();
  if (first.has_progress_token && !ex.http10 && first.params)
    h.progress_token = progress_token_of(*first.params);
  if (elicit) {
    ask_client(ex, arguments_shown);
  } else if (!h.progress_token.empty()) {
    start_stream(ex);
  }
  if (!h.progress_token.empty()) append_progress(ex, now);
  ex.hold_until_ns = next_wake(ex, now);
  return stage_result::held;
}

stage_result approval_stage::resume(exchange& ex, shard_context& ctx, const core::message&) {
  held_approval& h = ex.approval;
  approval_resolution r = registry_.take(h.id);
  h.by = std::move(r.by);
  h.reason = std::move(r.reason);
  ex.record.approval_id = h.id;
  ex.record.approval_by = h.by;
  ex.record.approval_reason = h.reason;
  if (r.state == approval_state::approved) {
    ex.record.approval_granted = true;
    return approved(ex, ctx);
  }
  if (r.state == approval_state::cancelled) {
    // The client cancelled it (notifications/cancelled): it expects no answer, but its request
    // is still open and gets one.
    ctx.error_body.clear();
    append_jsonrpc_error(ctx.error_body, ex.reply_id, -32800,
                         "request cancelled by the client while it waited for approval");
    ex.reply = {200,  {}, "application/json", ctx.error_body, false, call_decision::cancelled,
                false};
    return stage_result::replied;
  }
  message_ = "tool '" + h.tool + "' was not approved: denied";
  if (!h.by.empty()) message_ += " by " + h.by;
  if (!h.reason.empty()) message_ += ": " + h.reason;
  return refuse(ex, ctx, call_decision::approval_denied);
}

stage_result approval_stage::approved(exchange& ex, shard_context& ctx) {
  // The body was parsed before the hold; the extractor has parsed others since.
  ex.messages = ctx.extractor.extract(ex.body);
  ex.messages_current = ex.messages.status == jsonrpc_status::ok;
  if (!ex.messages_current) {
    message_ = "tool '" + ex.approval.tool + "' could not be read again after its approval";
    return refuse(ex, ctx, call_decision::approval_denied);
  }
  gate& g = ctx.current_gate();
  if (!g.owns(*ex.ticket)) {
    // The configuration was reloaded during the hold: the call is decided by the policy now
    // in force, for whoever its credential names now.
    ex.ticket = g.new_ticket();
    request_view who{ex.method, ex.authorization, {}, ex.protocol_version, {}, {}, false};
    gate_reply no;
    if (!g.admit(who, *ex.ticket, no)) {
      message_ = "tool '" + ex.approval.tool +
                 "' was approved, but its caller's credential is no longer valid";
      return refuse(ex, ctx, call_decision::approval_denied);
    }
  }
  request_view view{
      ex.method, ex.authorization, ex.session_id, ex.protocol_version, ex.target->server, {}, true};
  gate_reply denied;
  if (g.decide(view, ex.messages, *ex.ticket, denied)) return stage_result::proceed;
  // Approved, but a limit (or a policy reloaded meanwhile) refuses it now.
  ex.reply = from_gate(denied, call_decision::denied, true);
  return stage_result::replied;
}

stage_result approval_stage::refuse(exchange& ex, shard_context& ctx, call_decision outcome) {
  gate_reply r;
  ctx.current_gate().refuse_held(ex.reply_id, ex.approval.tool, ex.approval.rule, outcome, message_,
                                 r);
  ex.reply = from_gate(r, outcome, false);
  return stage_result::replied;
}

// The question, as an elicitation/create request at the head of the call's own response
// stream: the client's user sees what is called with what, and a form with one box to tick.
void approval_stage::ask_client(exchange& ex, std::string_view arguments_shown) {
  using policy::append_json_string;
  std::string text = "The gateway holds a call to the tool '" + ex.approval.tool + "'";
  if (ex.upstream) text += " of server '" + ex.upstream->name + "'";
  text += " for your approval.";
  if (!ex.ticket->approval.message.empty()) text += " " + std::string(ex.ticket->approval.message);
  if (!arguments_shown.empty() && arguments_shown != "null")
    text += " Arguments: " + std::string(arguments_shown);
  std::string request = "{\"jsonrpc\":\"2.0\",\"id\":\"";
  request += elicitation_prefix;
  request += ex.approval.id;
  request += "\",\"method\":\"elicitation/create\",\"params\":{\"message\":";
  append_json_string(request, text);
  request +=
      ",\"requestedSchema\":{\"type\":\"object\",\"properties\":{\"approve\":{\"type\":"
      "\"boolean\",\"title\":\"Approve\",\"description\":\"Run this call once\"}},"
      "\"required\":[\"approve\"]}}}";
  start_stream(ex);
  append_event_chunk(ex.interim, request);
}

// The call's response becomes a chunked event stream: its head goes out with the first event.
void approval_stage::start_stream(exchange& ex) {
  std::string& out = ex.interim;
  out =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
      "Transfer-Encoding: chunked\r\n";
  if (!ex.keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
}

// A notifications/progress for the waiting call: how long it has waited of its timeout.
void approval_stage::append_progress(exchange& ex, int64_t now_ns) {
  const held_approval& h = ex.approval;
  char waited[32], total[32];
  std::snprintf(waited, sizeof waited, "%.3f", static_cast<double>(now_ns - h.held_ns) / 1e9);
  std::snprintf(total, sizeof total, "%.3f", static_cast<double>(h.timeout_ms) / 1e3);
  std::string note =
      "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{"
      "\"progressToken\":";
  note += h.progress_token;
  note += ",\"progress\":";
  note += waited;
  note += ",\"total\":";
  note += total;
  note += ",\"message\":\"waiting for a human's approval\"}}";
  append_event_chunk(ex.interim, note);
}

// When the next progress notification is due, or the deadline when that comes first.
int64_t approval_stage::next_wake(const exchange& ex, int64_t now_ns) {
  const held_approval& h = ex.approval;
  if (h.progress_token.empty()) return h.deadline_ns;
  int64_t interval = std::min<int64_t>(progress_interval_ns, h.timeout_ms * 1'000'000 / 4);
  return std::min(h.deadline_ns, now_ns + interval);
}

hold_expiry approval_stage::expired(exchange& ex, shard_context& ctx) {
  int64_t now = ctx.now_ns();
  const held_approval& h = ex.approval;
  // The timer wheel fires within a tick of the time asked for.
  if (!h.progress_token.empty() && h.deadline_ns - now > 50'000'000) {
    ex.interim.clear();
    append_progress(ex, now);
    ex.hold_until_ns = next_wake(ex, now);
    return hold_expiry::extended;
  }
  message_ =
      "tool '" + h.tool + "' was not approved within " + std::to_string(h.timeout_ms) + " ms";
  refuse(ex, ctx, call_decision::approval_timeout);
  return hold_expiry::replied;
}

void approval_stage::cancel(exchange& ex, shard_context&, hold_end why) {
  registry_.end(ex.approval.id,
                why == hold_end::deadline ? approval_state::timed_out : approval_state::cancelled);
}

}  // namespace mcpgate::net
