#include "bench/mcpbench/reply_reader.h"

#include <algorithm>
#include <utility>

#include "net/http/sse.h"

namespace mcpgate::bench {
namespace {

std::string_view trim(std::string_view s) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool is_denial_code(std::int64_t code) {
  // -32010 denied, -32011 rate limited, -32012 batch member of a denied batch (README).
  return code == -32010 || code == -32011 || code == -32012;
}

}  // namespace

std::string_view error_kind_name(error_kind kind) {
  switch (kind) {
    case error_kind::connect:
      return "connect";
    case error_kind::send:
      return "send";
    case error_kind::recv:
      return "recv";
    case error_kind::closed:
      return "closed";
    case error_kind::http_status:
      return "http_status";
    case error_kind::malformed_http:
      return "malformed_http";
    case error_kind::malformed_body:
      return "malformed_body";
    case error_kind::id_mismatch:
      return "id_mismatch";
    case error_kind::rpc_error:
      return "rpc_error";
    case error_kind::timeout:
      return "timeout";
  }
  return "unknown";
}

void response_reader::reset() {
  phase_ = phase::head;
  head_.clear();
  resume_ = 0;
  body_left_ = 0;
  chunked_ = net::chunked_decoder(limits_);
  body_.clear();
  session_id_.clear();
  status_code_ = 0;
  keep_alive_ = false;
  event_stream_ = false;
}

response_reader::step response_reader::feed(std::string_view in) {
  std::size_t taken = 0;
  if (phase_ == phase::head) {
    // The head is copied until complete so it can be parsed across reads; the parser resumes
    // where it stopped, so the cost stays linear in the head's size.
    std::size_t before = head_.size();
    head_.append(in);
    auto head = net::parse_response_head(head_, limits_, false, resume_);
    if (head.status() == net::parse_status::incomplete) {
      resume_ = head.resume_offset();
      return {in.size(), status::incomplete};
    }
    if (head.status() == net::parse_status::error) {
      phase_ = phase::failed;
      return {0, status::error};
    }
    if (head.is_interim()) {
      // A 100 Continue or 103 Early Hints: the final response follows.
      std::size_t used = head.head_length() - before;
      head_.clear();
      resume_ = 0;
      auto rest = feed(in.substr(used));
      return {used + rest.consumed, rest.state};
    }
    status_code_ = head.status_code();
    keep_alive_ = head.keep_alive();
    session_id_ = std::string(head.headers().find("mcp-session-id"));
    event_stream_ = head.headers().find("content-type").starts_with("text/event-stream");
    taken = head.head_length() - before;
    switch (head.framing()) {
      case net::body_framing::none:
        phase_ = phase::done;
        break;
      case net::body_framing::content_length:
        body_left_ = head.content_length();
        phase_ = body_left_ == 0 ? phase::done : phase::length_body;
        break;
      case net::body_framing::chunked:
        phase_ = phase::chunked_body;
        break;
      case net::body_framing::until_close:
        // A keep-alive load run cannot tell where such a body ends; every server we drive
        // frames its replies.
        phase_ = phase::failed;
        return {taken, status::error};
    }
    head_.clear();
  }
  std::string_view rest = in.substr(taken);
  if (phase_ == phase::length_body) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(body_left_, rest.size()));
    body_.append(rest.substr(0, n));
    body_left_ -= n;
    taken += n;
    if (body_left_ == 0) phase_ = phase::done;
  } else if (phase_ == phase::chunked_body) {
    auto s = chunked_.feed(rest, &body_);
    taken += s.consumed;
    if (s.status == net::chunk_status::error) {
      phase_ = phase::failed;
      return {taken, status::error};
    }
    if (s.status == net::chunk_status::done) phase_ = phase::done;
  }
  if (phase_ == phase::failed) return {taken, status::error};
  return {taken, phase_ == phase::done ? status::complete : status::incomplete};
}

reply_classifier::message_outcome reply_classifier::classify_message(std::string_view body,
                                                                     std::string_view expected_id) {
  namespace od = simdjson::ondemand;
  message_outcome malformed{{reply_kind::error, error_kind::malformed_body}, false};
  // simdjson reads up to SIMDJSON_PADDING bytes past the end; zeroed so sanitizers stay quiet.
  scratch_.assign(body);
  scratch_.append(simdjson::SIMDJSON_PADDING, '\0');
  od::document doc;
  if (parser_.iterate(scratch_.data(), body.size(), scratch_.size()).get(doc)) return malformed;
  od::object message;
  if (doc.get_object().get(message)) return malformed;

  std::string_view id;
  bool has_id = false, has_result = false, has_error = false, has_method = false;
  bool tool_error = false;
  std::int64_t code = 0;
  for (auto field_result : message) {
    od::field field;
    if (std::move(field_result).get(field)) return malformed;
    std::string_view key;
    if (field.unescaped_key().get(key)) return malformed;
    if (key == "id") {
      id = trim(field.value().raw_json_token());
      has_id = true;
    } else if (key == "method") {
      has_method = true;
    } else if (key == "result") {
      has_result = true;
      od::object result;
      // A result that is not an object (never sent by MCP servers) counts as a plain result.
      if (field.value().get_object().get(result) == simdjson::SUCCESS) {
        for (auto r : result) {
          od::field rf;
          if (std::move(r).get(rf)) return malformed;
          std::string_view rkey;
          if (rf.unescaped_key().get(rkey)) return malformed;
          if (rkey == "isError") {
            bool b = false;
            if (rf.value().get_bool().get(b) == simdjson::SUCCESS) tool_error = b;
          }
        }
      }
    } else if (key == "error") {
      has_error = true;
      od::object error;
      if (field.value().get_object().get(error)) return malformed;
      for (auto e : error) {
        od::field ef;
        if (std::move(e).get(ef)) return malformed;
        std::string_view ekey;
        if (ef.unescaped_key().get(ekey)) return malformed;
        if (ekey == "code" && ef.value().get_int64().get(code)) return malformed;
      }
    }
  }
  if (has_method || !(has_result || has_error) || !has_id) return malformed;
  if (!expected_id.empty() && id != expected_id)
    return {{reply_kind::error, error_kind::id_mismatch}, true};
  if (has_error) {
    if (is_denial_code(code)) return {{reply_kind::denied, error_kind::rpc_error}, true};
    return {{reply_kind::error, error_kind::rpc_error}, true};
  }
  return {{tool_error ? reply_kind::denied : reply_kind::ok, error_kind::rpc_error}, true};
}

reply_outcome reply_classifier::classify_json(std::string_view body, std::string_view expected_id) {
  return classify_message(body, expected_id).outcome;
}

reply_outcome reply_classifier::classify_event_stream(std::string_view stream,
                                                      std::string_view expected_id) {
  net::sse_parser events;
  while (!stream.empty()) {
    auto s = events.feed(stream);
    stream.remove_prefix(s.consumed);
    if (s.status == net::sse_status::error) break;
    if (s.status == net::sse_status::need_more) break;
    const auto& e = events.event();
    if (!e.dispatch || e.data.empty()) continue;
    auto m = classify_message(e.data, expected_id);
    if (m.is_response) return m.outcome;
  }
  return {reply_kind::error, error_kind::malformed_body};
}

reply_outcome reply_classifier::classify(const response_reader& response,
                                         std::string_view expected_id) {
  if (response.status_code() < 200 || response.status_code() > 299)
    return {reply_kind::error, error_kind::http_status};
  if (response.is_event_stream()) return classify_event_stream(response.body(), expected_id);
  return classify_json(response.body(), expected_id);
}

}  // namespace mcpgate::bench
