#pragma once

// The federated endpoint's HTTP, on blocking sockets with timeouts (net/federation/hub.h says
// why): requests from the shards, and requests to the servers' routes on the gateway's own
// listener with their responses read whole (JSON, or the response inside an event stream) or
// relayed as they arrive. The strict parsers of net/http read every byte.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "net/address.h"
#include "net/http/chunked.h"
#include "net/http/parser.h"

namespace mcpgate::net {

// What the hub reads of a request from a shard.
struct request {
  std::string method;
  std::string session;  // Mcp-Session-Id: the hub's session id (the shard opened the token)
  std::string authorization;
  std::string protocol_version;
  std::string identity;  // Mcp-Gateway-Identity, as the shard authenticated the caller
  std::string last_event_id;
  std::string body;
  bool keep_alive = true;
};

// Reads requests one after another from a connection; false at its end or on a malformed
// request (answered 400 first).
class request_reader {
 public:
  explicit request_reader(int fd) : fd_(fd) {}
  bool next(request& out);

 private:
  bool fill();
  int fd_;
  std::string in_;
};

bool send_all(int fd, std::string_view data);
// SO_RCVTIMEO and SO_SNDTIMEO; 0: none.
void set_timeouts(int fd, int64_t ms);
// A whole response; Content-Type application/json when there is a body.
void reply_json(int fd, int status, std::string_view body, std::string_view extra_headers);
std::string jsonrpc_error_body(std::string_view id, int code, std::string_view message);

struct server_request {
  std::string_view method;  // POST, GET, DELETE
  std::string_view path;
  std::string_view host;
  std::string_view authorization;
  std::string_view session;
  std::string_view protocol_version;
  std::string_view last_event_id;
  std::string_view body;
};

// A response from a server's route: its head, then its body read in one of three ways.
class server_reply {
 public:
  server_reply() = default;
  ~server_reply() { close(); }
  server_reply(const server_reply&) = delete;
  server_reply& operator=(const server_reply&) = delete;

  int status = 0;
  std::string reason;
  std::string content_type;
  std::string session;  // Mcp-Session-Id

  int fd() const { return fd_; }
  void close();
  bool event_stream() const;

  // The JSON-RPC message that answers the request: the body, or the first response in an
  // event stream. False (and `error`) when it cannot be read.
  bool read_message(std::string& out, std::string& error);
  // Relays the response to `client` (a shard's connection) as it arrives: head, then body,
  // re-framed chunked when it streams. `on_event` sees each event's data. False when either
  // side failed mid-way (the client's connection is then unusable).
  bool relay(int client, const std::function<void(std::string_view)>& on_event);
  // Each event of an event stream, framed anew ("event:", "data:" lines); stops when `write`
  // returns false or the stream ends.
  void for_each_event(const std::function<bool(std::string_view)>& write);

 private:
  friend bool open_server_request(const endpoint&, int64_t, const server_request&, server_reply&,
                                  std::string&);
  // The body's next decoded bytes into `out` (appended); false at its end or on an error.
  bool next_body(std::string& out, std::string& error);

  int fd_ = -1;
  std::string in_;  // received, not yet consumed (after the head)
  body_framing framing_ = body_framing::none;
  uint64_t left_ = 0;  // content_length: bytes still to come
  chunked_decoder chunks_;
  bool ended_ = false;
};

// Connects to the gateway at `at`, sends the request and reads the response head. False
// (and `error`, naming the cause) when it could not be sent whole or no head came back.
bool open_server_request(const endpoint& at, int64_t timeout_ms, const server_request& r,
                         server_reply& reply, std::string& error);

}  // namespace mcpgate::net
