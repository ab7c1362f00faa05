#pragma once

// HTTP/1.1 message heads and chunked framing as the gateway writes them: one implementation for
// the proxy, the stdio bridge and the admin listener. Appends only; never allocates beyond
// growing `out`.

#include <cstddef>
#include <string>
#include <string_view>

namespace mcpgate::net {

// "HTTP/1.1 404 Not Found\r\n"
void append_status_line(std::string& out, int status);
// "HTTP/1.1 <status> <reason as given>\r\n" (a relayed response keeps its reason phrase).
void append_status_line(std::string& out, int status, std::string_view reason);
// The reason phrase for a status code ("Unknown" for codes the gateway never sends).
std::string_view reason_phrase(int status);
// "<name>: <value>\r\n"
void append_header(std::string& out, std::string_view name, std::string_view value);
// "Content-Length: <n>\r\n"
void append_content_length(std::string& out, size_t n);
// A whole chunk: "<hex size>\r\n<data>\r\n" (nothing for empty data: that would end the body).
void append_chunk(std::string& out, std::string_view data);
// The chunk-size line alone, for a chunk whose data the caller appends (then "\r\n").
void append_chunk_size(std::string& out, size_t n);
inline constexpr std::string_view last_chunk = "0\r\n\r\n";
// A JSON-RPC message as one event of a chunked event stream ("event: message", its data on one
// line: the message must hold no raw line break), in one chunk.
void append_event_chunk(std::string& out, std::string_view message);
// The last event of a chunked event stream, then the last chunk; no event for an empty message.
void append_stream_end(std::string& out, std::string_view message);

// A complete response: status line, `extra_headers` (complete lines), Content-Type when
// given, Content-Length, "Connection: close" when `close`, and the body (left out when
// `head_only`, as the answer to a HEAD request must).
void append_response(std::string& out, int status, std::string_view extra_headers,
                     std::string_view content_type, std::string_view body, bool close,
                     bool head_only = false);

// {"jsonrpc":"2.0","id":<id>,"error":{"code":<code>,"message":"<message>"}}; id is a raw JSON
// token (empty means null); message is escaped.
void append_jsonrpc_error(std::string& out, std::string_view id, int code,
                          std::string_view message);

}  // namespace mcpgate::net
