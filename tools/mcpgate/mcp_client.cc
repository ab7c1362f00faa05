#include "tools/mcpgate/mcp_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "core/build_info.h"
#include "core/child_process.h"
#include "net/address.h"
#include "net/http/chunked.h"
#include "net/http/parser.h"
#include "net/http/sse.h"
#include "policy/json_writer.h"
#include "tools/mcpgate/mcp_transport_parts.h"

extern char** environ;

namespace mcpgate::tools {

using namespace transport_detail;

namespace transport_detail {

std::string errno_text(int e) {
  return std::strerror(e);
}

std::string excerpt(std::string_view text, std::size_t max) {
  std::string out;
  for (char c : text.substr(0, max)) out.push_back(static_cast<unsigned char>(c) < 0x20 ? ' ' : c);
  if (text.size() > max) out += "...";
  return out;
}

int ms_left(mcp_deadline deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 1'000'000));
}

received sort_message(std::string_view text, std::int64_t id) {
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(text).get_object().get(obj)) return {};
  std::string_view jsonrpc;
  if (obj["jsonrpc"].get_string().get(jsonrpc) || jsonrpc != "2.0") return {};
  simdjson::dom::element id_value;
  bool has_id = !obj["id"].get(id_value);
  if (obj["method"].error() == simdjson::SUCCESS) {
    if (!has_id) return {message_kind::notification, {}};
    return {message_kind::server_request, simdjson::minify(id_value)};
  }
  if (!has_id || (obj["result"].error() && obj["error"].error())) return {};
  std::int64_t got = 0;
  if (!id_value.get_int64().get(got) && got == id) return {message_kind::awaited_response, {}};
  return {message_kind::other_response, {}};
}

}  // namespace transport_detail

namespace {

// ---------------------------------------------------------------------------------------------
// Streamable HTTP

class http_transport final : public mcp_transport {
 public:
  http_transport(const std::string& url, mcp_deadline deadline, std::int64_t timeout_ms,
                 std::string extra_headers)
      : url_text_(url),
        deadline_(deadline),
        timeout_ms_(timeout_ms),
        extra_headers_(std::move(extra_headers)) {
    try {
      url_ = net::parse_http_url(url, "--upstream");
    } catch (const std::exception& e) {
      throw mcp_client_error(e.what());
    }
  }

  std::string request(const std::string& message, std::int64_t id,
                      std::string_view method) override {
    return post(message, id, method).value_or(std::string());
  }

  void notify(const std::string& message) override { post(message, std::nullopt, "notification"); }

  void set_protocol_version(std::string_view v) override { protocol_version_ = v; }

  std::string describe() const override { return url_text_; }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw mcp_client_error(url_text_ + ": " + why);
  }

  [[noreturn]] void timed_out(std::string_view method) const {
    fail("no answer to " + std::string(method) + " within " + std::to_string(timeout_ms_) + " ms");
  }

  int connect_socket(std::string_view method) {
    const net::endpoint& at = url_.where;
    int fd = ::socket(at.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket: " + errno_text(errno));
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&at.addr), at.addr_len) != 0 &&
        errno != EINPROGRESS) {
      int e = errno;
      ::close(fd);
      fail("cannot connect: " + errno_text(e));
    }
    pollfd p{fd, POLLOUT, 0};
    int n = ::poll(&p, 1, ms_left(deadline_));
    if (n == 0) {
      ::close(fd);
      timed_out(method);
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (n < 0 || err != 0) {
      ::close(fd);
      fail("cannot connect: " + errno_text(n < 0 ? errno : err));
    }
    return fd;
  }

  void send_all(int fd, std::string_view bytes, std::string_view method) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n > 0) {
        bytes.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) fail("send: " + errno_text(errno));
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, ms_left(deadline_)) == 0) timed_out(method);
    }
  }

  // Appends what arrives to `buf`; false at end of stream.
  bool receive(int fd, std::string& buf, std::string_view method) {
    for (;;) {
      char chunk[16384];
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n > 0) {
        if (buf.size() + static_cast<std::size_t>(n) > kMaxMessageBytes)
          fail("the response to " + std::string(method) + " is larger than 64 MiB");
        buf.append(chunk, static_cast<std::size_t>(n));
        return true;
      }
      if (n == 0) return false;
      if (errno != EAGAIN && errno != EINTR) fail("receive: " + errno_text(errno));
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, ms_left(deadline_)) == 0) timed_out(method);
    }
  }

  // POSTs `message`. For a request (`id` set) returns the response message; for a
  // notification returns nullopt once the server has acknowledged it.
  std::optional<std::string> post(const std::string& message, std::optional<std::int64_t> id,
                                  std::string_view method) {
    fd_guard fd(connect_socket(method));
    std::string req = "POST " + url_.path + " HTTP/1.1\r\nHost: " + url_.host_header +
                      "\r\nContent-Type: application/json\r\n"
                      "Accept: application/json, text/event-stream\r\n"
                      "User-Agent: mcpgate-catalogue/" +
                      std::string(mcpgate::version) + "\r\n";
    if (!session_id_.empty()) req += "Mcp-Session-Id: " + session_id_ + "\r\n";
    if (!protocol_version_.empty()) req += "MCP-Protocol-Version: " + protocol_version_ + "\r\n";
    req += extra_headers_;
    req += "Content-Length: " + std::to_string(message.size()) + "\r\nConnection: close\r\n\r\n";
    req += message;
    send_all(fd.get(), req, method);

    // The head, skipping interim (1xx) responses.
    std::string buf;
    net::http_limits limits;
    limits.max_body = kMaxMessageBytes;
    std::size_t resume = 0;
    for (;;) {
      net::response_head head = net::parse_response_head(buf, limits, false, resume);
      if (head.status() == net::parse_status::incomplete) {
        resume = head.resume_offset();
        if (!receive(fd.get(), buf, method)) {
          if (buf.empty())
            fail("the server closed the connection without answering " + std::string(method));
          fail("the server closed the connection in the middle of a response head");
        }
        continue;
      }
      if (head.status() == net::parse_status::error)
        fail("not an HTTP response (" + std::string(head.error_reason()) + "): '" +
             excerpt(buf, 40) + "'");
      if (head.is_interim()) {
        buf.erase(0, head.head_length());
        resume = 0;
        continue;
      }
      return read_response(fd.get(), head, buf, id, method);
    }
  }

  // Yields the decoded body of a response in pieces as they arrive.
  class body_reader {
   public:
    body_reader(http_transport& owner, int fd, const net::response_head& head, std::string rest,
                std::string_view method)
        : owner_(owner),
          fd_(fd),
          framing_(head.framing()),
          left_(head.content_length()),
          pending_(std::move(rest)),
          method_(method) {
      net::http_limits limits;
      limits.max_body = kMaxMessageBytes;
      chunks_ = net::chunked_decoder(limits);
    }

    // Appends the next decoded piece to `out`; false at the end of the body.
    bool next(std::string& out) {
      for (;;) {
        switch (framing_) {
          case net::body_framing::none:
            return false;
          case net::body_framing::content_length: {
            if (left_ == 0) return false;
            if (!pending_.empty()) {
              std::size_t take =
                  static_cast<std::size_t>(std::min<std::uint64_t>(left_, pending_.size()));
              out.append(pending_, 0, take);
              pending_.erase(0, take);
              left_ -= take;
              return true;
            }
            if (!owner_.receive(fd_, pending_, method_))
              owner_.fail("the server closed the connection in the middle of a response body");
            continue;
          }
          case net::body_framing::until_close:
            if (!pending_.empty()) {
              out += pending_;
              pending_.clear();
              return true;
            }
            if (!owner_.receive(fd_, pending_, method_)) return false;
            continue;
          case net::body_framing::chunked: {
            if (chunks_.done()) return false;
            if (!pending_.empty()) {
              std::size_t before = out.size();
              net::chunk_step step = chunks_.feed(pending_, &out);
              pending_.erase(0, step.consumed);
              if (step.status == net::chunk_status::error)
                owner_.fail("malformed chunked body (" + std::string(chunks_.error_reason()) + ")");
              if (out.size() > before || step.status == net::chunk_status::done) return true;
              continue;
            }
            if (!owner_.receive(fd_, pending_, method_))
              owner_.fail("the server closed the connection in the middle of a chunked body");
            continue;
          }
        }
      }
    }

   private:
    http_transport& owner_;
    int fd_;
    net::body_framing framing_;
    std::uint64_t left_;
    std::string pending_;
    std::string_view method_;
    net::chunked_decoder chunks_;
  };

  std::optional<std::string> read_response(int fd, const net::response_head& head,
                                           const std::string& buf, std::optional<std::int64_t> id,
                                           std::string_view method) {
    int status = head.status_code();
    std::string session = std::string(head.headers().find("Mcp-Session-Id"));
    std::string content_type = std::string(head.headers().find("Content-Type"));
    content_type = content_type.substr(0, 200);
    body_reader body(*this, fd, head, buf.substr(head.head_length()), method);
    if (status < 200 || status >= 300) {
      std::string text;
      while (text.size() < 200 && body.next(text)) {
      }
      std::string why = "HTTP " + std::to_string(status);
      if (!head.reason().empty()) why += " " + std::string(head.reason());
      why += " answering " + std::string(method);
      // An HTML error page says nothing a one-line message can use.
      if (!text.empty() && content_type.find("html") == std::string::npos)
        why += ": " + excerpt(text, 120);
      fail(why);
    }
    if (!session.empty()) session_id_ = session;
    if (!id) return std::nullopt;  // a notification: 202 (or any 2xx) is the acknowledgement

    std::string media = content_type.substr(0, content_type.find(';'));
    media.erase(media.find_last_not_of(" \t") + 1);
    if (net::equals_ignore_case(media, "application/json")) {
      std::string text;
      while (body.next(text)) {
      }
      received r = sort_message(text, *id);
      if (r.kind == message_kind::awaited_response) return text;
      fail("the answer to " + std::string(method) + " is not its JSON-RPC response: '" +
           excerpt(text) + "'");
    }
    if (net::equals_ignore_case(media, "text/event-stream")) {
      net::sse_parser events(kMaxMessageBytes);
      std::string piece;
      while (body.next(piece)) {
        std::string_view in = piece;
        while (!in.empty()) {
          net::sse_step step = events.feed(in);
          in.remove_prefix(step.consumed);
          if (step.status == net::sse_status::error)
            fail("malformed event stream (" + std::string(events.error_reason()) + ")");
          if (step.status != net::sse_status::event || !events.event().dispatch) continue;
          std::string_view data = events.event().data;
          received r = sort_message(data, *id);
          if (r.kind == message_kind::awaited_response) return std::string(data);
          if (r.kind == message_kind::garbage)
            fail("an event of the stream answering " + std::string(method) + " is not JSON-RPC: '" +
                 excerpt(data) + "'");
        }
        piece.clear();
      }
      fail("the event stream ended without the response to " + std::string(method));
    }
    fail("the answer to " + std::string(method) + " has Content-Type '" + excerpt(content_type) +
         "', expected application/json or text/event-stream");
  }

  std::string url_text_;
  net::http_url url_;
  mcp_deadline deadline_;
  std::int64_t timeout_ms_;
  std::string extra_headers_;  // "Name: value\r\n" lines of --header
  std::string session_id_;
  std::string protocol_version_;
};

std::string int_text(std::int64_t v) {
  return std::to_string(v);
}

}  // namespace

std::unique_ptr<mcp_transport> connect_http(const std::string& url, mcp_deadline deadline,
                                            std::int64_t timeout_ms,
                                            const std::vector<std::string>& headers) {
  std::string lines;
  for (const std::string& h : headers) {
    size_t colon = h.find(':');
    std::string_view name = std::string_view(h).substr(0, colon);
    bool token = colon != std::string::npos && colon > 0 &&
                 name.find_first_of(" \t\r\n\"(),/:;<=>?@[\\]{}") == std::string_view::npos;
    if (!token || h.find_first_of("\r\n") != std::string::npos)
      throw mcp_client_error("--header: expected NAME:VALUE on one line, got '" + h + "'");
    std::string_view value = std::string_view(h).substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    lines.append(name).append(": ").append(value).append("\r\n");
  }
  return std::make_unique<http_transport>(url, deadline, timeout_ms, std::move(lines));
}

mcp_client::mcp_client(std::unique_ptr<mcp_transport> transport)
    : transport_(std::move(transport)) {}

std::string mcp_client::call(std::string_view method, const std::string& params_json) {
  std::int64_t id = next_id_++;
  std::string message = "{\"jsonrpc\":\"2.0\",\"id\":" + int_text(id) + ",\"method\":";
  policy::append_json_string(message, method);
  if (!params_json.empty()) message += ",\"params\":" + params_json;
  message += "}";
  std::string response = transport_->request(message, id, method);

  simdjson::dom::parser parser;
  simdjson::dom::object obj = parser.parse(response).get_object().value_unsafe();
  simdjson::dom::object error;
  if (!obj["error"].get_object().get(error)) {
    std::int64_t code = 0;
    std::string_view text;
    if (error["code"].get_int64().get(code)) code = 0;
    if (error["message"].get_string().get(text)) text = {};
    throw mcp_client_error(transport_->describe() + ": " + std::string(method) +
                           " failed: JSON-RPC error " + std::to_string(code) +
                           (text.empty() ? "" : ": " + excerpt(text, 160)));
  }
  simdjson::dom::object result;
  if (obj["result"].get_object().get(result))
    throw mcp_client_error(transport_->describe() + ": the result of " + std::string(method) +
                           " is not an object");
  return simdjson::minify(result);
}

mcp_server_info mcp_client::initialize() {
  std::string params = "{\"protocolVersion\":\"" + std::string(kProtocolVersion) +
                       "\",\"capabilities\":{},\"clientInfo\":{\"name\":\"mcpgate-catalogue\","
                       "\"version\":\"" +
                       std::string(mcpgate::version) + "\"}}";
  std::string result = call("initialize", params);
  simdjson::dom::parser parser;
  simdjson::dom::object obj = parser.parse(result).get_object().value_unsafe();
  mcp_server_info info;
  std::string_view v;
  if (obj["protocolVersion"].get_string().get(v) || v.empty())
    throw mcp_client_error(transport_->describe() +
                           ": the initialize result has no protocolVersion");
  info.protocol_version = v;
  if (!obj["serverInfo"]["name"].get_string().get(v)) info.name = v;
  if (!obj["serverInfo"]["version"].get_string().get(v)) info.version = v;
  info.has_tools = obj["capabilities"]["tools"].error() == simdjson::SUCCESS;
  transport_->set_protocol_version(info.protocol_version);
  transport_->notify("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
  return info;
}

std::vector<std::string> mcp_client::list_tools() {
  std::vector<std::string> tools;
  std::string cursor;
  std::vector<std::string> seen_cursors;
  for (int page = 0;; ++page) {
    if (page == kMaxToolPages)
      throw mcp_client_error(transport_->describe() + ": tools/list went on for more than " +
                             std::to_string(kMaxToolPages) + " pages");
    std::string params;
    if (!cursor.empty()) {
      params = "{\"cursor\":";
      policy::append_json_string(params, cursor);
      params += "}";
    }
    std::string result = call("tools/list", params);
    simdjson::dom::parser parser;
    simdjson::dom::object obj = parser.parse(result).get_object().value_unsafe();
    simdjson::dom::array list;
    if (obj["tools"].get_array().get(list))
      throw mcp_client_error(transport_->describe() + ": the tools/list result has no tools array");
    for (simdjson::dom::element t : list) tools.push_back(simdjson::minify(t));
    std::string_view next;
    if (obj["nextCursor"].get_string().get(next) || next.empty()) return tools;
    cursor = next;
    if (std::find(seen_cursors.begin(), seen_cursors.end(), cursor) != seen_cursors.end())
      throw mcp_client_error(transport_->describe() + ": tools/list repeated the cursor '" +
                             excerpt(cursor) + "'");
    seen_cursors.push_back(cursor);
  }
}

server_tools fetch_tools(const std::string& url, const core::spawn_options& command,
                         std::int64_t timeout_ms, const std::vector<std::string>& headers) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  mcp_client client(url.empty() ? start_stdio(command, deadline, timeout_ms)
                                : connect_http(url, deadline, timeout_ms, headers));
  server_tools out;
  out.info = client.initialize();
  out.source = client.transport().describe();
  if (!out.info.has_tools) return out;
  std::vector<std::string>& names = out.names;
  simdjson::dom::parser parser;
  for (std::string& raw : client.list_tools()) {
    std::string_view name;
    simdjson::dom::element tool;
    if (parser.parse(raw).get(tool) || tool["name"].get_string().get(name))
      throw mcp_client_error(out.source +
                             ": tools/list holds an entry without a name: " + raw.substr(0, 80));
    if (std::find(names.begin(), names.end(), name) != names.end())
      throw mcp_client_error(out.source + ": tools/list names the tool '" + std::string(name) +
                             "' twice");
    names.emplace_back(name);
    out.tools.push_back(std::move(raw));
  }
  return out;
}

}  // namespace mcpgate::tools
