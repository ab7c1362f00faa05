#include "net/federation/wire.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <simdjson.h>

#include <cerrno>
#include <cstring>

#include "net/http/sse.h"
#include "net/http/writer.h"

namespace mcpgate::net {
namespace {

constexpr size_t max_message = 16 * 1024 * 1024;  // one response read whole

std::string errno_text(std::string_view what) {
  return std::string(what) + ": " + std::strerror(errno);
}

// Whether a message is a JSON-RPC response (an id and a result or an error, no method).
bool is_response(std::string_view message) {
  simdjson::padded_string padded(message);
  simdjson::dom::parser parser;
  simdjson::dom::object m;
  if (parser.parse(padded).get(m) != simdjson::SUCCESS) return false;
  simdjson::dom::element ignored;
  return m["method"].get(ignored) != simdjson::SUCCESS &&
         (m["result"].get(ignored) == simdjson::SUCCESS ||
          m["error"].get(ignored) == simdjson::SUCCESS);
}

// An event as the hub writes it on a stream it merges: its type and data lines, no id (ids
// of several servers mean nothing on one stream).
std::string frame_event(std::string_view type, std::string_view data) {
  std::string out;
  if (!type.empty()) {
    out += "event: ";
    out += type;
    out += '\n';
  }
  size_t begin = 0;
  for (;;) {
    size_t end = data.find('\n', begin);
    out += "data: ";
    out += data.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin);
    out += '\n';
    if (end == std::string_view::npos) break;
    begin = end + 1;
  }
  out += '\n';
  return out;
}

}  // namespace

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void set_timeouts(int fd, int64_t ms) {
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string jsonrpc_error_body(std::string_view id, int code, std::string_view message) {
  std::string out;
  append_jsonrpc_error(out, id, code, message);
  return out;
}

void reply_json(int fd, int status, std::string_view body, std::string_view extra_headers) {
  std::string out;
  append_response(out, status, extra_headers,
                  body.empty() ? std::string_view() : "application/json", body, false);
  send_all(fd, out);
}

bool request_reader::fill() {
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    in_.append(buf, static_cast<size_t>(n));
    return true;
  }
}

bool request_reader::next(request& out) {
  http_limits limits;
  request_head head;
  for (;;) {
    head = parse_request_head(in_, limits);
    if (head.status() == parse_status::complete) break;
    if (head.status() == parse_status::error) {
      reply_json(fd_, head.error_status(), {}, "Connection: close\r\n");
      return false;
    }
    if (!fill()) return false;
  }
  out = {};
  out.method = head.method_text();
  const header_list& h = head.headers();
  out.session = h.find("mcp-session-id");
  out.authorization = h.find("authorization");
  out.protocol_version = h.find("mcp-protocol-version");
  out.identity = h.find("mcp-gateway-identity");
  out.last_event_id = h.find("last-event-id");
  out.keep_alive = head.keep_alive();
  size_t consumed = head.head_length();
  if (head.framing() == body_framing::content_length) {
    if (head.content_length() > limits.max_body) {
      reply_json(fd_, 413, {}, "Connection: close\r\n");
      return false;
    }
    size_t want = consumed + static_cast<size_t>(head.content_length());
    while (in_.size() < want)
      if (!fill()) return false;
    out.body.assign(in_, consumed, static_cast<size_t>(head.content_length()));
    consumed = want;
  } else if (head.framing() == body_framing::chunked) {
    chunked_decoder decoder(limits);
    for (;;) {
      chunk_step step = decoder.feed(std::string_view(in_).substr(consumed), &out.body);
      consumed += step.consumed;
      if (step.status == chunk_status::done) break;
      if (step.status == chunk_status::error) {
        reply_json(fd_, decoder.error_status(), {}, "Connection: close\r\n");
        return false;
      }
      if (!fill()) return false;
    }
  }
  in_.erase(0, consumed);
  return true;
}

void server_reply::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool server_reply::event_stream() const {
  return content_type.rfind("text/event-stream", 0) == 0;
}

bool open_server_request(const endpoint& at, int64_t timeout_ms, const server_request& r,
                         server_reply& reply, std::string& error) {
  int fd = ::socket(at.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = errno_text("socket");
    return false;
  }
  reply.fd_ = fd;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&at.addr), at.addr_len) != 0) {
    if (errno != EINPROGRESS) {
      error = errno_text("connect to the gateway's listener");
      reply.close();
      return false;
    }
    pollfd p{fd, POLLOUT, 0};
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (::poll(&p, 1, static_cast<int>(timeout_ms)) != 1 ||
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
      errno = soerr ? soerr : ETIMEDOUT;
      error = errno_text("connect to the gateway's listener");
      reply.close();
      return false;
    }
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  set_timeouts(fd, timeout_ms);
  std::string out;
  out += r.method;
  out += ' ';
  out += r.path;
  out += " HTTP/1.1\r\n";
  append_header(out, "Host", r.host);
  append_header(out, "Accept",
                r.method == "GET" ? "text/event-stream" : "application/json, text/event-stream");
  if (!r.authorization.empty()) append_header(out, "Authorization", r.authorization);
  if (!r.session.empty()) append_header(out, "Mcp-Session-Id", r.session);
  if (!r.protocol_version.empty()) append_header(out, "MCP-Protocol-Version", r.protocol_version);
  if (r.method == "GET" && !r.last_event_id.empty())
    append_header(out, "Last-Event-ID", r.last_event_id);
  if (r.method == "POST") {
    append_header(out, "Content-Type", "application/json");
    append_content_length(out, r.body.size());
  }
  out += "Connection: close\r\n\r\n";
  out += r.body;
  if (!send_all(fd, out)) {
    error = errno_text("send to the gateway's listener");
    reply.close();
    return false;
  }
  http_limits limits;
  char buf[16384];
  for (;;) {
    response_head head = parse_response_head(reply.in_, limits, false);
    if (head.status() == parse_status::complete) {
      if (head.is_interim()) {
        reply.in_.erase(0, head.head_length());
        continue;
      }
      reply.status = head.status_code();
      reply.reason = head.reason();
      reply.content_type = head.headers().find("content-type");
      reply.session = head.headers().find("mcp-session-id");
      reply.framing_ = head.framing();
      reply.left_ = head.content_length();
      reply.in_.erase(0, head.head_length());
      reply.ended_ = reply.framing_ == body_framing::none;
      return true;
    }
    if (head.status() == parse_status::error) {
      error = "malformed response from the gateway's listener: " + std::string(head.error_reason());
      reply.close();
      return false;
    }
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = n == 0            ? std::string("the gateway's listener closed before answering")
              : errno == EAGAIN ? std::string("timed out waiting for the server's answer")
                                : errno_text("recv from the gateway's listener");
      reply.close();
      return false;
    }
    reply.in_.append(buf, static_cast<size_t>(n));
  }
}

bool server_reply::next_body(std::string& out, std::string& error) {
  char buf[16384];
  for (;;) {
    if (ended_) return false;
    if (!in_.empty()) {
      switch (framing_) {
        case body_framing::content_length: {
          size_t take = std::min<uint64_t>(left_, in_.size());
          out.append(in_, 0, take);
          in_.erase(0, take);
          left_ -= take;
          if (left_ == 0) ended_ = true;
          return true;
        }
        case body_framing::chunked: {
          size_t before = out.size();
          chunk_step step = chunks_.feed(in_, &out);
          in_.erase(0, step.consumed);
          if (step.status == chunk_status::error) {
            error = "malformed chunked body from the server's route";
            ended_ = true;
            return false;
          }
          if (step.status == chunk_status::done) ended_ = true;
          if (out.size() > before || ended_) return true;
          break;
        }
        case body_framing::until_close:
          out += in_;
          in_.clear();
          return true;
        case body_framing::none:
          ended_ = true;
          return false;
      }
    }
    if (framing_ == body_framing::content_length && left_ == 0) {
      ended_ = true;
      return false;
    }
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ended_ = true;
      if (framing_ == body_framing::until_close && n == 0) return false;
      error = n == 0            ? std::string("the response ended early")
              : errno == EAGAIN ? std::string("timed out reading the server's answer")
                                : errno_text("recv");
      return false;
    }
    in_.append(buf, static_cast<size_t>(n));
  }
}

bool server_reply::read_message(std::string& out, std::string& error) {
  out.clear();
  if (!event_stream()) {
    std::string body;
    error.clear();
    while (next_body(body, error)) {
      if (body.size() > max_message) {
        error = "the server's answer is over 16 MiB";
        return false;
      }
    }
    if (!error.empty()) return false;
    out = std::move(body);
    return true;
  }
  sse_parser parser(max_message);
  std::string data;
  error.clear();
  for (;;) {
    std::string_view rest = data;
    while (!rest.empty()) {
      sse_step step = parser.feed(rest);
      rest.remove_prefix(step.consumed);
      if (step.status == sse_status::error) {
        error = "malformed event stream from the server's route";
        return false;
      }
      if (step.status != sse_status::event || !parser.event().dispatch) continue;
      std::string_view d = parser.event().data;
      // The answer, not a notification or a request of the server's on the way to it.
      if (is_response(d)) {
        out = d;
        return true;
      }
    }
    data.clear();
    if (!next_body(data, error)) {
      if (error.empty()) error = "the event stream ended without an answer";
      return false;
    }
  }
}

bool server_reply::relay(int client, const std::function<void(std::string_view)>& on_event) {
  std::string head;
  append_status_line(head, status, reason);
  if (!content_type.empty()) append_header(head, "Content-Type", content_type);
  bool streams = event_stream() || framing_ != body_framing::content_length;
  std::string error;
  if (!streams) {
    std::string body;
    while (next_body(body, error)) {
    }
    if (!error.empty()) {
      reply_json(client, 502, jsonrpc_error_body({}, -32603, "Bad Gateway: " + error), {});
      return true;
    }
    append_content_length(head, body.size());
    head += "\r\n";
    head += body;
    return send_all(client, head);
  }
  if (framing_ == body_framing::none) {
    append_content_length(head, 0);
    head += "\r\n";
    return send_all(client, head);
  }
  append_header(head, "Cache-Control", "no-cache");
  append_header(head, "Transfer-Encoding", "chunked");
  head += "\r\n";
  if (!send_all(client, head)) return false;
  sse_parser parser(max_message);
  std::string data;
  for (;;) {
    data.clear();
    if (!next_body(data, error)) break;
    if (data.empty()) continue;
    if (event_stream()) {
      std::string_view rest = data;
      while (!rest.empty()) {
        sse_step step = parser.feed(rest);
        rest.remove_prefix(step.consumed);
        if (step.status == sse_status::error) break;
        if (step.status == sse_status::event && parser.event().dispatch)
          on_event(parser.event().data);
      }
    }
    std::string chunk;
    append_chunk(chunk, data);
    if (!send_all(client, chunk)) return false;
  }
  return send_all(client, last_chunk);
}

void server_reply::for_each_event(const std::function<bool(std::string_view)>& write) {
  set_timeouts(fd_, 0);  // a server's stream may be quiet for ever
  sse_parser parser(max_message);
  std::string data;
  std::string error;
  for (;;) {
    data.clear();
    if (!next_body(data, error)) return;
    std::string_view rest = data;
    while (!rest.empty()) {
      sse_step step = parser.feed(rest);
      rest.remove_prefix(step.consumed);
      if (step.status == sse_status::error) return;
      if (step.status == sse_status::event && parser.event().dispatch &&
          !write(frame_event(parser.event().type, parser.event().data)))
        return;
    }
  }
}

}  // namespace mcpgate::net
