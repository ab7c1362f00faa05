#include "net/exchange/relay.h"
#include "core/stderr_log.h"

#include <cerrno>
#include <cstdio>

#include "core/clock.h"
#include "net/http/writer.h"
#include "net/mcp/request_rules.h"

namespace mcpgate::net {
namespace {

bool is_event_stream(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
  return equals_ignore_case(media, "text/event-stream");
}

void assign(std::string& to, std::string_view from) {
  to.assign(from.data(), from.size());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Requests

void relay::forward(client_conn& c) {
  exchange& ex = c.ex;
  uint32_t index = ex.target->upstream;
  upstream_conn* u = pool_.take(index, *ex.upstream);
  if (!u) {
    // No socket could be made (descriptor limit).
    ctx_.stats.upstream_errors.add();
    ex.ticket->completed(0, false);
    clients_.reply_error(c, gateway_error::upstream_no_socket);
    return;
  }
  ex.record.forwarded_ns = core::monotonic_ns();
  c.up_slot = u->slot;
  c.up_gen = u->gen;
  u->client_slot = c.slot;
  u->client_gen = c.gen;
  u->request.swap(ex.fwd);
  u->request_sent = 0;
  u->retried = false;
  u->write_refused = false;
  u->not_run = false;
  u->head_done = false;
  u->head_relayed = false;
  u->head_resume = 0;
  u->dechunk = ex.http10;
  u->response_timeout_ms = ex.upstream->response_timeout_ms;
  u->sse_idle_timeout_ms = ex.upstream->sse_idle_timeout_ms;
  if (u->st == upstream_conn::state::busy) {
    pool_.set_deadline(*u, ctx_.now_ns() + u->response_timeout_ms * 1'000'000);
    pool_.send(*u);
  }
}

void relay::client_gone(client_conn& c) {
  if (upstream_conn* u = pool_.find(c.up_slot, c.up_gen)) {
    u->client_slot = no_slot;
    pool_.close(*u);
  }
}

void relay::client_drained(client_conn& c) {
  if (upstream_conn* u = pool_.find(c.up_slot, c.up_gen); u && u->paused) pool_.resume(*u);
}

// ---------------------------------------------------------------------------------------------
// Responses

void relay::count_sse(upstream_conn& u) {
  u.sse_counted = true;
  ctx_.stats.sse_streams_open.add();
  if (ctx_.metrics) ctx_.metrics->sse_stream_opened();
}

// However a stream ends (completed, failed, the client gone, the gateway draining), it leaves
// the gauge exactly once (the pool does the same when it closes the connection).
void relay::uncount_sse(upstream_conn& u) {
  if (!u.sse_counted) return;
  u.sse_counted = false;
  ctx_.stats.sse_streams_open.sub();
  if (ctx_.metrics) ctx_.metrics->sse_stream_closed();
}

// The token for a session id the upstream just gave (or repeated), sealed for the caller.
bool relay::seal_session(client_conn& c, std::string_view upstream_id, std::string& out) {
  exchange& ex = c.ex;
  std::string_view who = ex.identity();
  if (upstream_id == ex.cached_upstream_id && who == ex.cached_owner &&
      ex.session_flags == ex.cached_flags && !ex.cached_token.empty()) {
    out += ex.cached_token;
    return true;
  }
  size_t before = out.size();
  if (!ctx_.sealer.seal(upstream_id, who, out, ex.session_flags)) return false;
  ex.cached_flags = ex.session_flags;
  assign(ex.cached_token, std::string_view(out).substr(before));
  assign(ex.cached_upstream_id, upstream_id);
  assign(ex.cached_owner, who);
  // An initialize learns its session here: its audit line names it.
  if (ex.session_id.empty()) ex.session_id = ex.cached_upstream_id;
  return true;
}

// Parses and relays the response head; false when the exchange ended (failed) meanwhile.
bool relay::relay_head(upstream_conn& u, client_conn& c, std::string_view data, size_t& used) {
  exchange& ex = c.ex;
  const gateway_config& config = *ex.config;
  while (!u.head_done) {
    response_head rh = parse_response_head(data.substr(used), config.http, false, u.head_resume);
    if (rh.status() == parse_status::incomplete) {
      u.head_resume = rh.resume_offset();
      return true;
    }
    u.head_resume = 0;
    if (rh.status() == parse_status::error) {
      core::logf(core::log_level::warn, "mcpgate: upstream sent a malformed response head: %.*s",
                 static_cast<int>(rh.error_reason().size()), rh.error_reason().data());
      on_failed(u, EPROTO);
      return false;
    }
    if (rh.is_interim()) {
      used += rh.head_length();  // 100 Continue and the like: ours to absorb
      continue;
    }
    u.head_done = true;
    u.status = rh.status_code();
    u.framing = rh.framing();
    u.remaining = rh.content_length();
    u.keep_alive = rh.keep_alive();
    u.sse = is_event_stream(rh.headers().find("content-type"));
    u.filtering = ex.ticket->filter_response && u.status == 200 && u.framing != body_framing::none;
    u.into_stream = ex.response_streaming;
    if (u.into_stream) u.filtering = true;
    // A relayed body has no size limit (an event stream may run for days); one the gateway
    // holds to filter (a JSON tools/list) has the request body's.
    bool held_whole = u.filtering && !u.sse;
    if (held_whole && u.framing == body_framing::content_length &&
        u.remaining > config.http.max_body) {
      on_failed(u, EPROTO);
      return false;
    }
    if (u.framing == body_framing::chunked) {
      http_limits limits = config.http;
      if (!held_whole) limits.max_body = UINT64_MAX;
      u.chunks = chunked_decoder(limits);
    }
    if (u.framing == body_framing::until_close) ex.keep_alive = false;
    if (u.dechunk && u.framing == body_framing::chunked) ex.keep_alive = false;
    if (ctx_.draining) ex.keep_alive = false;

    std::string& h = u.filtering ? u.held_head : head_scratch_;
    h.clear();
    append_status_line(h, u.status, rh.reason());
    std::string_view connection = rh.headers().find("connection");
    bool has_connection = rh.headers().count("connection") > 0;
    bool keep_chunked = u.framing == body_framing::chunked && !u.dechunk && !u.filtering;
    for (const http_header& hd : rh.headers()) {
      bool chunked_te = keep_chunked && equals_ignore_case(hd.name, "transfer-encoding");
      if (!chunked_te && is_hop_by_hop(hd.name)) continue;
      if (has_connection && header_has_token(connection, hd.name)) continue;
      if (u.filtering && equals_ignore_case(hd.name, "content-length")) continue;
      if (equals_ignore_case(hd.name, not_run_header)) {
        // The bridge's word that the child never got the request; from anyone else, ignored.
        u.not_run = ex.upstream->stdio;
        continue;
      }
      if (equals_ignore_case(hd.name, federation_answer_header)) {
        // The hub answered itself: the request is audited here, as the hub decided.
        if (ex.upstream->federation) {
          ex.record.quiet = false;
          ex.record.hub_decision = hd.value == "invalid"          ? call_decision::invalid
                                   : hd.value == "upstream_error" ? call_decision::upstream_error
                                                                  : call_decision::allowed;
          if (ex.record.hub_decision == call_decision::upstream_error)
            ex.record.upstream_failure = "unavailable";
        }
        continue;
      }
      h += hd.name;
      h += ": ";
      if (equals_ignore_case(hd.name, "mcp-session-id")) {
        // The client gets the session bound to its identity, never the upstream's bare id.
        if (!seal_session(c, hd.value, h)) {
          core::logf(core::log_level::warn,
                     "mcpgate: upstream sent an Mcp-Session-Id that is not a session id");
          on_failed(u, EPROTO);
          return false;
        }
      } else {
        h += hd.value;
      }
      h += "\r\n";
    }
    used += rh.head_length();
    if (u.sse) count_sse(u);
    pool_.set_deadline(u, u.body_deadline_ns(ctx_.now_ns()));
    if (u.filtering) {
      u.filter_body.clear();
      u.events_base = 0;
      if (u.into_stream) {
        // The client has the stream's head already: only events go to it from here on.
        u.head_relayed = true;
        if (u.sse) u.events = std::make_unique<sse_parser>(config.http.max_body);
        continue;
      }
      if (u.sse) {
        // Events are re-emitted one by one: the client gets a chunked stream (or, for an
        // HTTP/1.0 client, one delimited by the close).
        if (ex.http10)
          ex.keep_alive = false;
        else
          h += "Transfer-Encoding: chunked\r\n";
        if (!ex.keep_alive) h += "Connection: close\r\n";
        h += "\r\n";
        clients_.send(c, h);
        u.head_relayed = true;
        u.events = std::make_unique<sse_parser>(config.http.max_body);
      }
      continue;  // a JSON body is held until complete: its length changes
    }
    if (!ex.keep_alive) h += "Connection: close\r\n";
    h += "\r\n";
    clients_.send(c, h);
    u.head_relayed = true;
  }
  return true;
}

// Works on `fresh` (bytes just received, still in the provided buffer) directly when nothing
// is pending in u.in, so a response that arrives whole is copied once, into the client's send
// queue; otherwise on u.in with `fresh` appended. What is left unconsumed ends in u.in.
void relay::on_bytes(upstream_conn& u, std::string_view fresh) {
  client_conn* c = clients_.find(u.client_slot, u.client_gen);
  if (!c) {
    pool_.close(u);
    return;
  }
  bool direct = u.in.empty();
  if (!direct) u.in.append(fresh);
  std::string_view data = direct ? fresh : u.in.view();
  size_t used = 0;
  auto keep_rest = [&] {
    if (direct)
      u.in.append(data.substr(used));
    else
      u.in.consume(used);
  };
  if (!relay_head(u, *c, data, used)) return;
  if (!u.head_done) {
    keep_rest();
    return;
  }

  std::string_view body = data.substr(used);
  // Without filtering, body bytes go to the client as they are (chunk framing included);
  // with it, they are decoded into u.filter_body for the gate.
  auto pass = [&](std::string_view bytes) {
    if (u.filtering)
      u.filter_body += bytes;
    else if (!bytes.empty())
      clients_.send(*c, bytes);
  };
  bool done = false;
  switch (u.framing) {
    case body_framing::none:
      done = true;
      break;
    case body_framing::content_length: {
      size_t n = static_cast<size_t>(std::min<uint64_t>(u.remaining, body.size()));
      pass(body.substr(0, n));
      used += n;
      u.remaining -= n;
      done = u.remaining == 0;
      break;
    }
    case body_framing::chunked: {
      u.decoded.clear();
      bool decode = u.dechunk || u.filtering;
      chunk_step step = u.chunks.feed(body, decode ? &u.decoded : nullptr);
      if (step.consumed) pass(decode ? std::string_view(u.decoded) : body.substr(0, step.consumed));
      used += step.consumed;
      if (step.status == chunk_status::error) {
        on_failed(u, EPROTO);
        return;
      }
      done = step.status == chunk_status::done;
      break;
    }
    case body_framing::until_close:
      pass(body);
      used += body.size();
      break;
  }
  keep_rest();
  if (u.filtering && !u.sse && u.filter_body.size() > c->ex.config->http.max_body) {
    on_failed(u, EPROTO);  // a body held to filter is bounded like a request's
    return;
  }
  if (u.filtering && !emit_filtered(u, *c, done)) {
    on_failed(u, EPROTO);
    return;
  }
  pool_.set_deadline(u, u.body_deadline_ns(ctx_.now_ns()));
  if (!done) {
    if (c->out.pending_bytes() > ctx_.config()->relay_high_water) pool_.pause(u);
    return;
  }
  complete(u, *c);
}

// The response is whole: the counts stay (or go back, for a refusal), the record is written,
// the connection goes back to the pool, and the client's next request may start.
void relay::complete(upstream_conn& u, client_conn& c) {
  uncount_sse(u);
  ctx_.stats.responses_relayed.add();
  u.client_slot = no_slot;
  c.up_slot = no_slot;
  // 503 and 429 say the upstream did not take the request; so does the stdio bridge's mark.
  c.ex.ticket->completed(u.status, !u.not_run && u.status != 503 && u.status != 429);
  clients_.record_finish(c, c.ex.record.hub_decision, false, true, u.status);
  bool reusable = u.keep_alive && u.in.empty() && !ctx_.draining;
  if (reusable)
    pool_.release_to_pool(u, c.ex.upstream->max_idle);
  else
    pool_.close(u);
  clients_.finish_exchange(c);
}

void relay::on_closed(upstream_conn& u) {
  if (!(u.head_done && u.framing == body_framing::until_close)) {
    on_failed(u, ECONNRESET);
    return;
  }
  // The body ran until close, as announced: the exchange is complete.
  u.keep_alive = false;
  client_conn* c = clients_.find(u.client_slot, u.client_gen);
  if (!c) {
    pool_.close(u);
    return;
  }
  c->ex.keep_alive = false;
  if (u.filtering && !emit_filtered(u, *c, true)) {
    on_failed(u, EPROTO);
    return;
  }
  complete(u, *c);
}

void relay::on_failed(upstream_conn& u, int err) {
  // Before the client has a byte of the response (a filtered JSON body is held whole) the
  // gateway answers the failure itself.
  bool before_response = !u.head_relayed;
  ctx_.stats.upstream_errors.add();
  if (ctx_.metrics)
    ctx_.metrics->count_upstream_error(err == ETIMEDOUT ? upstream_error_kind::timeout
                                       : err == EPROTO  ? upstream_error_kind::protocol
                                       : err == ECONNREFUSED || !u.head_done
                                           ? (u.st == upstream_conn::state::connecting
                                                  ? upstream_error_kind::connect
                                                  : upstream_error_kind::reset)
                                           : upstream_error_kind::reset);
  client_conn* c = clients_.find(u.client_slot, u.client_gen);
  u.client_slot = no_slot;
  // A tools/call may have effects: it is sent again, or its count given back, only when the
  // upstream provably never saw it (RFC 9112 9.3.1): the connection was never made, or the
  // kernel refused the first write before taking a byte. A request whose bytes went out may
  // have run, whatever happened to its answer.
  bool not_delivered = u.st == upstream_conn::state::connecting || u.write_refused;
  if (c && not_delivered && u.reused && !u.retried) {
    // A pooled connection the upstream had closed while idle. Retry once on a fresh one.
    std::string request;
    request.swap(u.request);
    uncount_sse(u);
    pool_.close(u);
    c->ex.fwd.swap(request);
    forward(*c);
    if (upstream_conn* fresh = pool_.find(c->up_slot, c->up_gen)) fresh->retried = true;
    return;
  }
  bool was_chunked_at_boundary =
      u.framing == body_framing::chunked && !u.dechunk && u.chunks.at_chunk_boundary();
  int status = u.status;
  uncount_sse(u);
  pool_.close(u);
  if (!c) return;
  c->up_slot = no_slot;
  c->ex.record.quiet = false;  // the federation hub itself failed: nothing else records it
  if (before_response) {
    c->ex.ticket->completed(0, !not_delivered);
    clients_.reply_error(*c, err == ETIMEDOUT      ? gateway_error::upstream_timeout
                             : err == ECONNREFUSED ? gateway_error::upstream_refused
                             : err == EPROTO       ? gateway_error::upstream_malformed
                                                   : gateway_error::upstream_reset);
    return;
  }
  // The response had started: end the stream cleanly if its framing allows, else close.
  c->ex.record.upstream_failure = err == ETIMEDOUT ? "timeout"
                                  : err == EPROTO  ? "malformed"
                                                   : "reset";
  c->ex.ticket->completed(status, true);
  clients_.record_finish(*c, call_decision::upstream_error, false, true, status);
  if (c->ex.response_streaming) {
    // The gateway frames this stream: it ends with an event saying what failed.
    std::string out, error;
    append_jsonrpc_error(
        error, c->ex.reply_id, -32603,
        "the upstream's response broke off: " + std::string(c->ex.record.upstream_failure));
    append_stream_end(out, error);
    clients_.send(*c, out);
  } else if (was_chunked_at_boundary) {
    clients_.send(*c, last_chunk);
  }
  clients_.end_broken_response(*c);
}

void relay::record_tool_changes(const gate& g, const client_conn& c) {
  for (const tool_change_record& change : g.tool_changes())
    ctx_.record->tool_changed(c.ex.record, c.ex.subject(), change);
}

// Hands the decoded body of a filtered response to the gate and sends the client its result:
// a JSON body once complete, with its new length; an SSE stream event by event, each event
// either as received or with its data replaced. False when the gate found the response
// malformed: it is not forwarded.
bool relay::emit_filtered(upstream_conn& u, client_conn& c, bool done) {
  gate& g = ctx_.current_gate();
  bool filter = c.ex.ticket->filter_response;
  if (!u.sse && u.into_stream) {
    if (!done) return true;
    std::string& out = head_scratch_;
    out.clear();
    std::string_view body = u.filter_body;
    size_t first = body.find_first_not_of(" \t\r\n");
    if (u.status == 200 && first != std::string_view::npos && body[first] == '{') {
      // Validated JSON can hold a raw line break only as whitespace: as a space it stays the
      // same message on one data line.
      for (char& ch : u.filter_body)
        if (ch == '\n' || ch == '\r') ch = ' ';
      append_stream_end(out, u.filter_body);
    } else {
      std::string error;
      append_jsonrpc_error(error, c.ex.reply_id, -32603,
                           "the upstream answered HTTP " + std::to_string(u.status) +
                               " without a JSON-RPC response");
      append_stream_end(out, error);
    }
    clients_.send(c, out);
    return true;
  }
  if (!u.sse) {
    if (!done) return true;
    std::string_view body = u.filter_body;
    filter_result fr = g.filter_response(*c.ex.ticket, body, u.filter_out);
    record_tool_changes(g, c);
    switch (fr) {
      case filter_result::invalid:
        return false;
      case filter_result::replaced:
        body = u.filter_out;
        break;
      case filter_result::unchanged:
        break;
    }
    std::string& h = u.held_head;
    append_content_length(h, body.size());
    if (!c.ex.keep_alive) h += "Connection: close\r\n";
    h += "\r\n";
    clients_.send(c, h);
    clients_.send(c, body);
    u.head_relayed = true;
    return true;
  }
  bool chunked = !c.ex.http10;
  std::string& framed = head_scratch_;
  auto emit = [&](std::string_view bytes) {
    if (bytes.empty()) return;
    if (!chunked) {
      clients_.send(c, bytes);
      return;
    }
    framed.clear();
    append_chunk(framed, bytes);
    clients_.send(c, framed);
  };
  size_t fed = static_cast<size_t>(u.events->offset() - u.events_base);
  size_t emitted_to = 0;  // raw bytes before this are sent; after it, an incomplete block
  for (;;) {
    sse_step step = u.events->feed(std::string_view(u.filter_body).substr(fed));
    fed += step.consumed;
    if (step.status == sse_status::error) return false;
    if (step.status == sse_status::need_more) break;
    const sse_event& ev = u.events->event();
    size_t begin = static_cast<size_t>(ev.begin - u.events_base);
    size_t end = static_cast<size_t>(ev.end - u.events_base);
    std::string_view raw = std::string_view(u.filter_body).substr(begin, end - begin);
    emitted_to = end;
    // Only an event carrying a message goes to the gate: comments, retry and id fields, and
    // events with empty data (the priming event a 2025-11-25 server opens its stream with)
    // carry none, and are passed on as they came.
    bool message =
        filter && ev.dispatch && ev.data.find_first_not_of(" \t\r\n") != std::string_view::npos;
    filter_result fr =
        message ? g.filter_response(*c.ex.ticket, ev.data, u.filter_out) : filter_result::unchanged;
    if (message) record_tool_changes(g, c);
    if (fr == filter_result::invalid) return false;
    if (fr == filter_result::unchanged) {
      emit(raw);
    } else {
      // The same event with its data replaced; the filtered JSON may span lines only where the
      // original had whitespace, and SSE joins data lines with the newline they replace.
      std::string event;
      if (!ev.type.empty()) event.append("event: ").append(ev.type).append("\n");
      if (!ev.id.empty()) event.append("id: ").append(ev.id).append("\n");
      if (ev.retry) event.append("retry: ").append(std::to_string(*ev.retry)).append("\n");
      std::string_view data = u.filter_out;
      for (;;) {
        size_t nl = data.find('\n');
        event.append("data: ").append(data.substr(0, nl)).append("\n");
        if (nl == std::string_view::npos) break;
        data.remove_prefix(nl + 1);
      }
      event += "\n";
      emit(event);
    }
  }
  // Drop what has been emitted; keep the raw bytes of an incomplete block.
  u.filter_body.erase(0, emitted_to);
  u.events_base += emitted_to;
  if (done) {
    if (!u.filter_body.empty()) emit(u.filter_body);  // an unterminated last block, as received
    if (chunked) clients_.send(c, last_chunk);
  }
  return true;
}

}  // namespace mcpgate::net
