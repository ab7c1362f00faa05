#pragma once

// Strict HTTP/1.1 message-head parsers (RFC 9110, RFC 9112); chunked bodies: chunked.h.
//
// These see hostile bytes from clients and upstreams. Where the RFCs allow a recipient to be
// lenient, these parsers are not: every ambiguity that two HTTP implementations could resolve
// differently (and so smuggle a request past the policy) is an error. None of the head parsers
// allocate; results hold std::string_views into the caller's buffer and are valid only while
// that buffer is unchanged.

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <string_view>

namespace mcpgate::net {

// Bounds on what a peer may make us hold or scan. Plain aggregate: set what you need with
// designated initialisers.
struct http_limits {
  // Bytes of a message head, including leading empty lines and the final CRLFCRLF (431).
  std::size_t max_head = 16 * 1024;
  // Bytes of a request-target (414).
  std::size_t max_target = 8 * 1024;
  // Header fields per head (431); clamped to header_list::capacity.
  std::size_t max_headers = 100;
  // Empty lines tolerated before a request-line (RFC 9112 2.2); more is an error (400).
  std::size_t max_leading_empty_lines = 4;
  // Bytes of a request body, by Content-Length at head time or decoded chunked size (413).
  std::uint64_t max_body = 4 * 1024 * 1024;
  // Bytes of one chunk-size line's extension (the part from ';' to CRLF).
  std::size_t max_chunk_extension = 256;
  // Bytes of a chunked body's trailer section, including its final CRLF.
  std::size_t max_trailer = 4 * 1024;
};

enum class parse_status { complete, incomplete, error };

enum class http_method { get, post, put, delete_, head, patch, options, other };

enum class http_version { http_1_0, http_1_1 };

// How the body after a head is delimited (RFC 9112 6.3).
enum class body_framing {
  none,            // no body follows the head
  content_length,  // exactly content_length() bytes follow
  chunked,         // a chunked body follows; use chunked_decoder
  until_close,     // responses only: the body runs until the upstream closes
};

// Which request-target form the request used (RFC 9112 3.2).
enum class target_form { origin, absolute, authority, asterisk };

struct http_header {
  std::string_view name;   // an RFC 9110 token, as received (case preserved)
  std::string_view value;  // surrounding OWS trimmed; may be empty
};

// A fixed-capacity header array: parsing never allocates.
class header_list {
 public:
  static constexpr std::size_t capacity = 128;

  // Appends a field; false (and no change) when full.
  bool push_back(http_header header);

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const http_header& operator[](std::size_t i) const { return slots()[i]; }
  const http_header* begin() const { return slots(); }
  const http_header* end() const { return slots() + size_; }

  // The value of the first field named `name` (ASCII case-insensitive), or empty when absent.
  // Use count() to tell an absent field from an empty one.
  std::string_view find(std::string_view name) const;
  // How many fields are named `name` (ASCII case-insensitive).
  std::size_t count(std::string_view name) const;

 private:
  const http_header* slots() const {
    return std::launder(reinterpret_cast<const http_header*>(storage_));
  }

  // Raw storage rather than an array of http_header: value-initialising 4 KiB of slots that a
  // parse mostly leaves unused was most of the cost of parsing a typical head. Slots at and
  // past size_ hold no object and are never read.
  alignas(http_header) std::byte storage_[capacity * sizeof(http_header)];
  std::size_t size_ = 0;
};

// The result of parse_request_head(). Which accessors mean something depends on status():
// complete -> the head accessors; incomplete -> resume_offset(); error -> error_status() and
// error_reason().
class request_head {
 public:
  parse_status status() const { return status_; }

  // Bytes of the head from the start of the input, including skipped leading empty lines and
  // the final CRLFCRLF; the body (or the next pipelined request) starts here.
  std::size_t head_length() const { return head_length_; }
  http_method method() const { return method_; }
  std::string_view method_text() const { return method_text_; }
  std::string_view target() const { return target_; }
  target_form form() const { return form_; }
  http_version version() const { return version_; }
  const header_list& headers() const { return headers_; }
  body_framing framing() const { return framing_; }
  // Meaningful when framing() == content_length.
  std::uint64_t content_length() const { return content_length_; }
  // HTTP/1.1: unless "Connection: close"; HTTP/1.0: only with "Connection: keep-alive".
  bool keep_alive() const { return keep_alive_; }

  // On incomplete: pass this back as `resume_offset` with the same buffer grown, so the next
  // call scans only new bytes.
  std::size_t resume_offset() const { return resume_offset_; }

  // On error: the status to answer with (400, 413, 414, 431, 501, 505) and a short static
  // reason naming the rule that was broken.
  int error_status() const { return error_status_; }
  std::string_view error_reason() const { return error_reason_; }

 private:
  friend request_head parse_request_head(std::string_view, const http_limits&, std::size_t);

  parse_status status_ = parse_status::incomplete;
  std::size_t head_length_ = 0;
  http_method method_ = http_method::other;
  std::string_view method_text_;
  std::string_view target_;
  target_form form_ = target_form::origin;
  http_version version_ = http_version::http_1_1;
  header_list headers_;
  body_framing framing_ = body_framing::none;
  std::uint64_t content_length_ = 0;
  bool keep_alive_ = false;
  std::size_t resume_offset_ = 0;
  int error_status_ = 0;
  std::string_view error_reason_;
};

// Parses a request head at the start of `bytes`, the contiguous bytes received so far on a
// connection (or after the previous pipelined message). Call again with the grown buffer while
// the result is incomplete; `resume_offset` is the previous result's resume_offset() (or 0),
// and must be reset to 0 whenever the buffer start moves. With it, the work per call is
// proportional to the new bytes until the head is complete, then one pass over the head.
request_head parse_request_head(std::string_view bytes, const http_limits& limits,
                                std::size_t resume_offset = 0);

// The result of parse_response_head(); same conventions as request_head. Every error is a
// fault of the upstream, so error_status() is always 502.
class response_head {
 public:
  parse_status status() const { return status_; }

  std::size_t head_length() const { return head_length_; }
  http_version version() const { return version_; }
  int status_code() const { return status_code_; }
  std::string_view reason() const { return reason_; }
  const header_list& headers() const { return headers_; }
  // 1xx other than 101: a final response follows on the same connection after this head.
  // 101 (Switching Protocols) is reported as a final response with framing none and
  // keep_alive false: the connection no longer speaks HTTP.
  bool is_interim() const {
    return status_code_ >= 100 && status_code_ < 200 && status_code_ != 101;
  }
  body_framing framing() const { return framing_; }
  std::uint64_t content_length() const { return content_length_; }
  bool keep_alive() const { return keep_alive_; }

  std::size_t resume_offset() const { return resume_offset_; }
  int error_status() const { return error_status_; }
  std::string_view error_reason() const { return error_reason_; }

 private:
  friend response_head parse_response_head(std::string_view, const http_limits&, bool, std::size_t);

  parse_status status_ = parse_status::incomplete;
  std::size_t head_length_ = 0;
  http_version version_ = http_version::http_1_1;
  int status_code_ = 0;
  std::string_view reason_;
  header_list headers_;
  body_framing framing_ = body_framing::none;
  std::uint64_t content_length_ = 0;
  bool keep_alive_ = false;
  std::size_t resume_offset_ = 0;
  int error_status_ = 0;
  std::string_view error_reason_;
};

// Parses a response head, as parse_request_head() does a request head. `request_was_head`
// says the response answers a HEAD request, so no body follows whatever the headers say.
// Content-Length is not checked against limits.max_body: relayed bodies may be large.
response_head parse_response_head(std::string_view bytes, const http_limits& limits,
                                  bool request_was_head, std::size_t resume_offset = 0);

// Whether the comma-separated list `value` (e.g. a Connection or Upgrade field value) holds
// `token`, compared ASCII case-insensitively, with OWS around elements ignored.
bool header_has_token(std::string_view value, std::string_view token);

// Whether `name` is a hop-by-hop field a proxy must not forward (RFC 9110 7.6.1): Connection,
// Proxy-Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade. Fields listed in the
// message's Connection header are hop-by-hop too; check those with header_has_token().
bool is_hop_by_hop(std::string_view name);

// ASCII case-insensitive equality, as RFC 9110 field names and tokens compare.
bool equals_ignore_case(std::string_view a, std::string_view b);

}  // namespace mcpgate::net
