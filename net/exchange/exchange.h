#pragma once

// One request/response exchange on a client connection, from its head to the end of its
// response: what the request said, who is making it, where it goes, how far through the stage
// chain it is, and its record for the audit log. A connection runs one exchange at a time and
// reuses this object for the next, so the request path does not allocate.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/timer_wheel.h"
#include "net/exchange/gate.h"
#include "net/exchange/gateway_config.h"
#include "net/exchange/stage.h"
#include "net/http/parser.h"
#include "net/mcp/jsonrpc.h"
#include "net/observe/recorder.h"

namespace mcpgate::net {

// A reply the gateway makes instead of forwarding, as a stage or the intake describes it.
struct gateway_reply {
  int status = 200;
  std::string_view extra_headers;  // complete "Name: value\r\n" lines, static or the gate's
  std::string_view content_type;   // empty: no body
  std::string_view body;           // points at storage that outlives the reply (gate, scratch)
  bool close = false;              // the connection closes after the reply
  call_decision decision = call_decision::invalid;
  bool use_verdicts = false;  // each message gets the gate's verdict (denials)
};

// The gate's reply as the exchange sends it.
inline gateway_reply from_gate(const gate_reply& r, call_decision decision, bool use_verdicts,
                               bool close = false) {
  return {r.http_status, r.extra_headers, r.content_type, r.body, close, decision, use_verdicts};
}

// The name of an exchange in a message to its shard: the connection's slot and generation in
// `value`, the exchange's seq in `extra`.
struct exchange_token {
  uint32_t slot = 0;
  uint32_t gen = 0;
  uint64_t seq = 0;
};

// A call held for a human's approval (net/approval/stage.h): what the approval stage keeps of
// it across the hold (the extractor's views do not last that long).
struct held_approval {
  std::string id;  // the registry's record
  std::string tool;
  std::string rule;
  std::string by;  // who decided
  std::string reason;
  int64_t timeout_ms = 0;
  int64_t held_ns = 0;      // monotonic
  int64_t deadline_ns = 0;  // the rule's timeout from held_ns
  // params._meta.progressToken as sent (raw JSON), when the call carried one: the client gets
  // progress notifications while the call waits.
  std::string progress_token;
};

struct exchange {
  // Which exchange of the connection this is: a message for a held exchange names it, so one
  // that arrives after the exchange ended (and the next began) is recognised.
  uint64_t seq = 0;
  // The configuration generation the exchange started with, to its end.
  std::shared_ptr<const gateway_config> config;
  const route* target = nullptr;  // set by the route stage
  const upstream_target* upstream = nullptr;

  // The request.
  http_method method = http_method::other;
  bool keep_alive = true;
  bool http10 = false;
  bool expect_continue = false;
  body_framing framing = body_framing::none;
  uint64_t content_length = 0;
  std::string path;  // the endpoint path (without the query)
  std::string query;
  std::string_view head;  // the request head's bytes; valid while head stages run
  const request_head* parsed_head = nullptr;  // likewise
  std::string held_head;  // a copy of the head, kept while a head stage holds the exchange
  // A copy of the body, kept while a body stage holds the exchange: the connection goes on
  // reading meanwhile (a pipelined request), and its buffer may move.
  std::string held_body;
  std::string session_token;  // Mcp-Session-Id as the client sent it, when it sent one
  bool names_session = false;
  // The upstream's id of the session, once its token opened for the caller.
  std::string session_id;
  // The last token opened or sealed on this connection, for whom, and what it holds (the
  // exchange object lives as long as its connection): a client sending the same token on
  // every request costs a comparison, not a decryption.
  std::string cached_token;
  std::string cached_owner;
  std::string cached_upstream_id;
  uint8_t cached_flags = 0;
  // What the session's token says of its client (session_sealer::flag_*); an initialize sets
  // what its client declared, to be sealed into the token its response carries.
  uint8_t session_flags = 0;
  std::string protocol_version;
  std::string authorization;
  std::string mcp_method_header;  // 2026-07-28 routing headers, checked against the body
  std::string mcp_name_header;
  bool has_mcp_method_header = false;
  bool has_mcp_name_header = false;
  std::string reply_id;  // raw id token of a single request, for replies the gateway makes
  std::string fwd;       // the upstream request being built; moved to the upstream connection

  // The body, once complete (views into the connection's buffers), and what was read from it.
  padded_body body;
  // While head stages run: a Content-Length body that came whole with the head (data null
  // otherwise), so a refusal at the head can name the request's id without reading more.
  padded_body early_body;
  std::string_view body_bytes;
  jsonrpc_result messages;  // views into the shard's extractor: valid until the next extract
  bool messages_current = false;

  // Who is calling and what the gate concluded; made once per connection by the gate.
  std::unique_ptr<gate_ticket> ticket;
  exchange_record record;

  // The connection the exchange runs on, for its token.
  uint32_t conn_slot = 0;
  uint32_t conn_gen = 0;

  // The stage chain.
  uint16_t cursor = 0;  // the next stage to run
  // A stage returning held may set when the hold ends (monotonic ns); 0: the configuration's
  // hold_timeout_ms from now.
  int64_t hold_until_ns = 0;
  bool head_stages_done = false;
  stage* holder = nullptr;  // the stage holding the exchange, when held
  core::deadline_slot hold_deadline;
  gateway_reply reply;  // filled by a stage that returns replied
  held_approval approval;
  // What a stage that holds the exchange wants the client to have meanwhile: the head of an
  // event stream (chunked) and its first events, sent when the hold begins. From then on the
  // response is that stream: whatever answers the request (the upstream's response, a reply
  // of the gateway's) goes out as events in it, and its last chunk ends it.
  std::string interim;
  bool response_streaming = false;

  bool held() const { return holder != nullptr; }
  // The name a message for this exchange carries (net/exchange/shard.h: resume_message).
  exchange_token token() const;
  std::string_view identity() const { return ticket ? ticket->identity : std::string_view(); }
  std::string_view grant() const { return ticket ? ticket->grant : std::string_view(); }
  record_subject subject() const {
    record_subject s;
    if (ticket) {
      s.identity = ticket->identity;
      s.grant = ticket->grant;
      s.issuer = ticket->issuer;
      s.verdicts = ticket->verdicts;
    }
    s.session = session_id;
    if (upstream) {
      s.server = upstream->name;
      s.server_id = upstream->index;
    }
    if (method == http_method::get) s.bodyless_method = "GET";
    if (method == http_method::delete_) s.bodyless_method = "DELETE";
    return s;
  }

  // Before a request is admitted, nothing learned from an earlier one (on this connection, or
  // on the previous connection of the same slot) may be attributed to it: an audit line for a
  // malformed or timed-out request must not name the identity or session of someone else.
  void forget_attribution() {
    session_id.clear();
    if (ticket) {
      ticket->identity = {};
      ticket->grant = {};
      ticket->issuer = {};
      ticket->verdicts.clear();
    }
  }
};

inline exchange_token exchange::token() const {
  return {conn_slot, conn_gen, seq};
}

}  // namespace mcpgate::net
