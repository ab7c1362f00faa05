// The client side's intake: reading each request off a connection (head, then a bounded body),
// and running its exchange through the stage chain until it is answered, held or forwarded.

#include <cstring>
#include <memory>

#include "core/clock.h"
#include "core/user_data.h"
#include "net/exchange/client_side.h"
#include "net/http/writer.h"

namespace mcpgate::net {
namespace {

constexpr int64_t ms = 1'000'000;

// "/mcp?x=1" -> path "/mcp", query "?x=1"; absolute-form "http://h/mcp" -> "/mcp".
void split_target(std::string_view target, target_form form, std::string_view& path,
                  std::string_view& query) {
  if (form == target_form::absolute) {
    size_t scheme = target.find("://");
    size_t slash = scheme == std::string_view::npos ? 0 : target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  size_t q = target.find('?');
  path = target.substr(0, q);
  query = q == std::string_view::npos ? std::string_view() : target.substr(q);
}

void assign(std::string& to, std::string_view from) {
  to.assign(from.data(), from.size());
}

// A POST without Content-Length or Transfer-Encoding has an empty body (RFC 9112 6.3): the
// extractor must see an empty document (a parse error), not a missing buffer.
constexpr char no_body[core::byte_buffer::padding] = {};

}  // namespace

void client_side::process(client_conn& c) {
  while (c.st == client_conn::state::head || c.st == client_conn::state::body) {
    if (c.close_after_send) {
      c.in.clear();  // a reply that closes the connection ends the conversation
      return;
    }
    if (c.st == client_conn::state::head) {
      if (c.in.empty()) {
        c.in.shrink_if_above(0);
        return;
      }
      request_head h = parse_request_head(c.in.view(), ctx_.config()->http, c.head_resume);
      if (h.status() == parse_status::incomplete) {
        c.head_resume = h.resume_offset();
        int64_t limit = ctx_.now_ns() + ctx_.config()->header_timeout_ms * ms;
        if (c.deadline.deadline_ns == 0 || c.deadline.deadline_ns > limit) set_deadline(c, limit);
        return;
      }
      c.head_resume = 0;
      c.ex.reply_id.clear();
      if (h.status() == parse_status::error) {
        c.ex.record.start(++ctx_.next_req, core::monotonic_ns(), 0, c.in.size());
        c.ex.record.conn = c.id;
        c.ex.forget_attribution();
        c.ex.keep_alive = false;
        ctx_.error_body.clear();
        append_jsonrpc_error(ctx_.error_body, {}, -32600, h.error_reason());
        reply(c, {h.error_status(),
                  {},
                  "application/json",
                  ctx_.error_body,
                  true,
                  call_decision::invalid,
                  false});
        return;
      }
      ctx_.stats.requests.add();
      // A request answered at its head (404, 405, 401, ...) may leave the connection open;
      // the loop then goes on to a request pipelined behind it, already buffered.
      if (!begin_request(c, h)) continue;
    }
    if (!read_body(c)) return;
    if (c.ex.held()) {
      c.st = client_conn::state::held;  // a head stage still holds it
      return;
    }
    run_stages(c);
  }
}

// The facts of a new request, then its head stages. False when a stage answered it.
bool client_side::begin_request(client_conn& c, const request_head& h) {
  exchange& ex = c.ex;
  const header_list& headers = h.headers();
  ++ex.seq;
  ex.conn_slot = c.slot;
  ex.conn_gen = c.gen;
  ex.config = ctx_.config();
  ex.target = nullptr;
  ex.upstream = nullptr;
  ex.record.start(
      ++ctx_.next_req, core::monotonic_ns(), ctx_.record->auditing() ? core::realtime_ns() : 0,
      h.head_length() + (h.framing() == body_framing::content_length ? h.content_length() : 0));
  ex.record.conn = c.id;
  // Tracing: the client's parent, when it sent one (exactly one header; a second would be read
  // two ways). The context is completed by the trace stage.
  if (ex.config->tracing && headers.count("traceparent") == 1)
    parse_traceparent(headers.find("traceparent"), ex.record.trace);
  ex.forget_attribution();
  ex.method = h.method();
  ex.http10 = h.version() == http_version::http_1_0;
  ex.keep_alive = h.keep_alive();
  ex.framing = h.framing();
  ex.content_length = h.content_length();
  ex.expect_continue = false;
  ex.messages_current = false;
  ex.body = {};
  ex.body_bytes = {};
  ex.cursor = 0;
  ex.head_stages_done = false;
  ex.holder = nullptr;
  ex.hold_deadline = {};
  ex.interim.clear();
  ex.response_streaming = false;
  set_deadline(c, ctx_.now_ns() + ex.config->header_timeout_ms * ms);

  std::string_view path, query;
  split_target(h.target(), h.form(), path, query);
  assign(ex.path, path);
  assign(ex.query, query);
  ex.names_session = headers.count("mcp-session-id") > 0;
  assign(ex.session_token, headers.find("mcp-session-id"));
  assign(ex.protocol_version, headers.find("mcp-protocol-version"));
  assign(ex.authorization, headers.find("authorization"));
  ex.has_mcp_method_header = headers.count("mcp-method") > 0;
  ex.has_mcp_name_header = headers.count("mcp-name") > 0;
  assign(ex.mcp_method_header, headers.find("mcp-method"));
  assign(ex.mcp_name_header, headers.find("mcp-name"));
  ex.parsed_head = &h;
  ex.head = c.in.view().substr(0, h.head_length());
  ex.held_head.clear();

  c.st = client_conn::state::body;
  size_t head_length = h.head_length();
  ex.early_body = {};
  if (ex.framing == body_framing::content_length && ex.content_length > 0 &&
      c.in.size() >= head_length + ex.content_length) {
    // The body ends at or before the buffer's end, past which byte_buffer keeps padding.
    ex.early_body = {c.in.data() + head_length, ex.content_length,
                     ex.content_length + core::byte_buffer::padding};
  }
  run_stages(c);
  ex.early_body = {};
  ex.parsed_head = nullptr;  // views into c.in: gone once the head is consumed
  ex.head = {};
  if (c.st == client_conn::state::closing) return false;
  c.in.consume(head_length);
  if (c.st != client_conn::state::body) return false;  // answered at its head
  if (ex.framing == body_framing::chunked) {
    c.chunks = chunked_decoder(ex.config->http);
    c.chunked_body.clear();
  }
  return true;
}

// True once the whole body is in (c.in for Content-Length, c.chunked_body for chunked); then
// the exchange's body views are set.
bool client_side::read_body(client_conn& c) {
  exchange& ex = c.ex;
  bool complete = true;
  if (ex.framing == body_framing::content_length) {
    complete = c.in.size() >= ex.content_length;
  } else if (ex.framing == body_framing::chunked) {
    chunk_step step = c.chunks.feed(c.in.view(), &c.chunked_body);
    c.in.consume(step.consumed);
    if (step.status == chunk_status::error) {
      ex.keep_alive = false;
      ctx_.error_body.clear();
      append_jsonrpc_error(ctx_.error_body, {}, -32600, c.chunks.error_reason());
      reply(c, {c.chunks.error_status(),
                {},
                "application/json",
                ctx_.error_body,
                true,
                call_decision::invalid,
                false});
      return false;
    }
    complete = step.status == chunk_status::done;
  }
  if (!complete && ex.expect_continue) {
    ex.expect_continue = false;
    send(c, "HTTP/1.1 100 Continue\r\n\r\n");
  }
  if (!complete) return false;
  if (ex.framing == body_framing::content_length) {
    ex.body_bytes = std::string_view(c.in.data(), ex.content_length);
    // byte_buffer keeps `padding` readable bytes past its end, and the body ends at or before
    // it.
    ex.body = {ex.body_bytes.data(), ex.body_bytes.size(),
               ex.body_bytes.size() + core::byte_buffer::padding};
  } else if (ex.framing == body_framing::chunked) {
    c.chunked_body.reserve(c.chunked_body.size() + core::byte_buffer::padding);
    ex.body_bytes = c.chunked_body;
    ex.body = {ex.body_bytes.data(), ex.body_bytes.size(), c.chunked_body.capacity()};
  } else {
    ex.body_bytes = {};
    ex.body = {no_body, 0, sizeof no_body};
  }
  return true;
}

// Runs stages from the cursor: head stages at once, body stages once the body is in.
void client_side::run_stages(client_conn& c) {
  exchange& ex = c.ex;
  bool body_ready = ex.body.data != nullptr;
  std::unique_ptr<request_head> reparsed;
  if (!ex.head_stages_done && !ex.parsed_head && !ex.held_head.empty()) {
    // Head stages go on after a hold: their view of the head is the copy hold() kept.
    reparsed = std::make_unique<request_head>(parse_request_head(ex.held_head, ex.config->http));
    ex.parsed_head = reparsed.get();
  }
  struct forget_head {
    exchange& ex;
    bool owned;
    ~forget_head() {
      if (owned) ex.parsed_head = nullptr;
    }
  } forget{ex, reparsed != nullptr};
  while (ex.cursor < stages_.size()) {
    stage& s = *stages_[ex.cursor];
    if (s.phase() == stage_phase::body && !ex.head_stages_done) {
      ex.head_stages_done = true;
      ex.held_head.clear();
      if (!body_ready) return;  // the body comes first
    }
    stage_result r = s.run(ex, ctx_);
    if (r == stage_result::held) {
      hold(c, s);
      return;
    }
    ++ex.cursor;
    if (r == stage_result::replied) {
      continue_after(c, r);
      return;
    }
  }
  forward(c);
}

// Goes on after a stage answered (or a held one resumed).
void client_side::continue_after(client_conn& c, stage_result r) {
  exchange& ex = c.ex;
  if (r == stage_result::replied) {
    // A body already read is dropped with the request (a head still in c.in is consumed by
    // begin_request).
    if (ex.body.data && ex.framing == body_framing::content_length) c.in.consume(ex.content_length);
    ex.body = {};
    gateway_reply reply_copy = ex.reply;
    reply(c, reply_copy);
    return;
  }
  run_stages(c);
}

void client_side::forward(client_conn& c) {
  exchange& ex = c.ex;
  if (ex.method == http_method::post || !ex.body_bytes.empty()) {
    append_content_length(ex.fwd, ex.body_bytes.size());
    ex.fwd += "\r\n";
    ex.fwd += ex.body_bytes;
  } else {
    ex.fwd += "\r\n";
  }
  if (ex.framing == body_framing::content_length) c.in.consume(ex.content_length);
  ex.body_bytes = {};
  c.st = client_conn::state::upstream;
  c.deadline.clear();
  forwarder_->forward(c);
}

// ---------------------------------------------------------------------------------------------
// Held exchanges

void client_side::hold(client_conn& c, stage& holder) {
  exchange& ex = c.ex;
  ex.holder = &holder;
  if (!ex.head_stages_done && ex.parsed_head && ex.held_head.empty())
    ex.held_head.assign(ex.head);  // the head stages after this one read the head again
  send_interim(c);
  if (ex.body.data && ex.body.data != ex.held_body.data()) {
    ex.held_body.reserve(ex.body.size + core::byte_buffer::padding);
    ex.held_body.assign(ex.body.data, ex.body.size);
    ex.body = {ex.held_body.data(), ex.body.size, ex.held_body.capacity()};
    ex.body_bytes = {ex.held_body.data(), ex.body.size};
  }
  if (c.st != client_conn::state::body) c.st = client_conn::state::held;
  c.deadline.clear();  // the hold's own deadline replaces the header timeout
  int64_t until = ex.hold_until_ns;
  if (until == 0) until = ctx_.now_ns() + ex.config->hold_timeout_ms * ms;
  ex.hold_until_ns = 0;
  ex.hold_deadline = {};
  if (ex.hold_deadline.set(until))
    ctx_.timers.schedule(until, core::encode({op_hold_deadline, c.slot, c.gen}));
}

// What a holding stage wants the client to have meanwhile; from then on the response is an
// event stream (exchange::interim).
void client_side::send_interim(client_conn& c) {
  exchange& ex = c.ex;
  if (ex.interim.empty()) return;
  send(c, ex.interim);
  ex.interim.clear();
  ex.response_streaming = true;
}

void client_side::extend_hold(client_conn& c) {
  exchange& ex = c.ex;
  send_interim(c);
  int64_t until = ex.hold_until_ns;
  ex.hold_until_ns = 0;
  ex.hold_deadline = {};
  if (ex.hold_deadline.set(until))
    ctx_.timers.schedule(until, core::encode({op_hold_deadline, c.slot, c.gen}));
}

void client_side::end_hold(client_conn& c, hold_end why) {
  exchange& ex = c.ex;
  stage* holder = ex.holder;
  if (!holder) return;
  ex.holder = nullptr;
  ex.hold_deadline.clear();
  holder->cancel(ex, ctx_, why);
  // The request ends here: its body, if it was read, goes with it.
  if (ex.body.data && ex.framing == body_framing::content_length) c.in.consume(ex.content_length);
  ex.body = {};
  if (why != hold_end::deadline) {
    if (!ex.record.prepared())
      ctx_.record->prepare(ex.record, nullptr, ex.subject(), ctx_.labels());
    record_finish(c, call_decision::cancelled, false, false, 0);
  }
}

void client_side::on_resume(const core::message& m) {
  client_conn* c = conns_.find(static_cast<uint32_t>(m.value >> 32),
                               static_cast<uint32_t>(m.value & 0xffffffff));
  if (!c || c->fd < 0 || c->ex.seq != m.extra || !c->ex.held()) return;  // stale
  exchange& ex = c->ex;
  stage_result r = ex.holder->resume(ex, ctx_, m);
  if (r == stage_result::held) return;
  ex.holder = nullptr;
  ex.hold_deadline.clear();
  ++ex.cursor;
  // The extractor's views may belong to another exchange by now: the stages after a hold
  // read the body again if they need it.
  ex.messages_current = false;
  bool body_pending = c->st == client_conn::state::body;
  if (r == stage_result::replied) {
    continue_after(*c, r);
  } else if (!body_pending) {
    c->st = client_conn::state::held;
    run_stages(*c);
  }
  // A head stage resumed with the body still arriving: process() runs the rest when it is in.
  if (c->st == client_conn::state::head) {
    process(*c);
    resume_reading(*c);
  }
  maybe_release(*c);
}

}  // namespace mcpgate::net
