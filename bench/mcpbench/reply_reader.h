#pragma once

// Reading MCP Streamable HTTP replies on the load generator's side: one HTTP/1.1 response at a
// time off a keep-alive connection (Content-Length, chunked or no body), then the JSON-RPC
// reply inside it, whether sent as application/json or as a text/event-stream whose events
// carry notifications before the response.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "net/http/chunked.h"
#include "net/http/parser.h"

namespace mcpgate::bench {

// What went wrong with one exchange; each has its own counter in the result.
enum class error_kind : std::uint8_t {
  connect,         // the connection could not be opened
  send,            // the request could not be written
  recv,            // reading failed (reset)
  closed,          // the peer closed before the reply was complete
  http_status,     // a reply other than 2xx
  malformed_http,  // a response head or chunked body the strict parser rejects
  malformed_body,  // not a JSON-RPC reply, or an SSE stream without one
  id_mismatch,     // a JSON-RPC reply for another request
  rpc_error,       // a JSON-RPC error other than a policy denial
  timeout,         // no reply before the run's grace period ended
};
inline constexpr std::size_t error_kind_count = 10;
std::string_view error_kind_name(error_kind kind);

// How a JSON-RPC reply came back.
enum class reply_kind : std::uint8_t {
  ok,      // a result
  denied,  // a tool result with isError true, or error -32010/-32011/-32012 (policy denials)
  error,   // something else; see the error_kind
};

struct reply_outcome {
  reply_kind kind = reply_kind::error;
  error_kind error = error_kind::malformed_body;  // meaningful when kind == error
};

// Reads one HTTP response after another from a connection's byte stream.
class response_reader {
 public:
  enum class status { incomplete, complete, error };
  struct step {
    std::size_t consumed = 0;  // bytes of the input taken; bytes after a complete reply are left
    status state = status::incomplete;
  };

  // Feeds bytes as they arrive. After complete, the accessors describe the response until
  // reset(); after error, nothing more is accepted (the connection must be closed).
  step feed(std::string_view in);
  void reset();

  int status_code() const { return status_code_; }
  bool keep_alive() const { return keep_alive_; }
  bool is_event_stream() const { return event_stream_; }
  // The decoded body (chunked framing removed).
  const std::string& body() const { return body_; }
  // The Mcp-Session-Id header, or empty.
  const std::string& session_id() const { return session_id_; }

 private:
  enum class phase { head, length_body, chunked_body, done, failed };

  net::http_limits limits_{.max_head = 64 * 1024, .max_body = 64 * 1024 * 1024};
  phase phase_ = phase::head;
  std::string head_;
  std::size_t resume_ = 0;
  std::uint64_t body_left_ = 0;
  net::chunked_decoder chunked_{limits_};
  std::string body_;
  std::string session_id_;
  int status_code_ = 0;
  bool keep_alive_ = false;
  bool event_stream_ = false;
};

// Classifies JSON-RPC replies. Holds a reused simdjson parser and padded scratch buffer, so
// one instance per load thread.
class reply_classifier {
 public:
  // `body` is a JSON-RPC response object; `expected_id` is the request's id as sent (its JSON
  // text, e.g. `17` or `"a"`), or empty to accept any id.
  reply_outcome classify_json(std::string_view body, std::string_view expected_id);
  // `stream` is a whole text/event-stream body: events without a response (notifications,
  // server requests, priming events) are skipped; the first response decides.
  reply_outcome classify_event_stream(std::string_view stream, std::string_view expected_id);
  // Dispatches on the response's media type.
  reply_outcome classify(const response_reader& response, std::string_view expected_id);

 private:
  struct message_outcome {
    reply_outcome outcome;
    // False when `body` is not a response (a notification, a request, not JSON-RPC): outcome
    // is then an error of kind malformed_body, and an event stream reads on.
    bool is_response = false;
  };
  message_outcome classify_message(std::string_view body, std::string_view expected_id);

  simdjson::ondemand::parser parser_;
  std::string scratch_;
};

}  // namespace mcpgate::bench
