#include "net/http/writer.h"

#include <charconv>

#include "policy/json_writer.h"

namespace mcpgate::net {

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

void append_status_line(std::string& out, int status) {
  append_status_line(out, status, reason_phrase(status));
}

void append_status_line(std::string& out, int status, std::string_view reason) {
  out += "HTTP/1.1 ";
  char digits[8];
  auto r = std::to_chars(digits, digits + sizeof digits, status);
  out.append(digits, r.ptr);
  out += ' ';
  out += reason;
  out += "\r\n";
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

void append_content_length(std::string& out, size_t n) {
  out += "Content-Length: ";
  char digits[24];
  auto r = std::to_chars(digits, digits + sizeof digits, n);
  out.append(digits, r.ptr);
  out += "\r\n";
}

void append_chunk_size(std::string& out, size_t n) {
  char digits[24];
  auto r = std::to_chars(digits, digits + sizeof digits, n, 16);
  out.append(digits, r.ptr);
  out += "\r\n";
}

void append_chunk(std::string& out, std::string_view data) {
  if (data.empty()) return;
  append_chunk_size(out, data.size());
  out += data;
  out += "\r\n";
}

void append_response(std::string& out, int status, std::string_view extra_headers,
                     std::string_view content_type, std::string_view body, bool close,
                     bool head_only) {
  append_status_line(out, status);
  out += extra_headers;
  if (!content_type.empty()) append_header(out, "Content-Type", content_type);
  if (!content_type.empty() || status >= 200) append_content_length(out, body.size());
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  if (!head_only) out += body;
}

void append_jsonrpc_error(std::string& out, std::string_view id, int code,
                          std::string_view message) {
  out += R"({"jsonrpc":"2.0","id":)";
  out += id.empty() ? std::string_view("null") : id;
  out += R"(,"error":{"code":)";
  char digits[16];
  auto r = std::to_chars(digits, digits + sizeof digits, code);
  out.append(digits, r.ptr);
  out += R"(,"message":)";
  policy::append_json_string(out, message);
  out += "}}";
}

void append_event_chunk(std::string& out, std::string_view message) {
  static constexpr std::string_view head = "event: message\ndata: ";
  append_chunk_size(out, head.size() + message.size() + 2);
  out += head;
  out += message;
  out += "\n\n\r\n";
}

void append_stream_end(std::string& out, std::string_view message) {
  if (!message.empty()) append_event_chunk(out, message);
  out += last_chunk;
}

}  // namespace mcpgate::net
