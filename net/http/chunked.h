#pragma once

// The chunked transfer coding (RFC 9112 7.1), decoded incrementally and strictly.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "net/http/parser.h"  // http_limits

namespace mcpgate::net {

enum class chunk_status { need_more, done, error };

struct chunk_step {
  std::size_t consumed = 0;  // bytes of the input that belong to the chunked body
  chunk_status status = chunk_status::need_more;
};

// An incremental decoder for one chunked body (RFC 9112 7.1), fed arbitrary splits of it.
// Strict: chunk sizes are 1-16 hex digits with no whitespace, every line ends in CRLF,
// extensions and trailers are bounded and free of control characters.
class chunked_decoder {
 public:
  explicit chunked_decoder(const http_limits& limits = {});

  // Consumes a prefix of `in`. Decoded data is appended to `*out`, or only scanned when `out`
  // is null. Stops right after the body's last byte (the trailer section's final CRLF), so
  // bytes after it, such as a pipelined request, are left unconsumed. After done or error,
  // consumes nothing and repeats that status.
  chunk_step feed(std::string_view in, std::string* out);

  bool done() const { return state_ == state::done; }
  bool failed() const { return state_ == state::failed; }
  // True when the bytes so far end exactly between chunks (or before the first one): a relay
  // that must stop forwarding here can end the body cleanly by sending "0\r\n\r\n".
  bool at_chunk_boundary() const { return state_ == state::size_start; }
  // Data bytes decoded so far.
  std::uint64_t decoded_size() const { return decoded_; }
  // After failed(): 413 when the decoded size would pass limits.max_body, else 400.
  int error_status() const { return error_status_; }
  std::string_view error_reason() const { return error_reason_; }

 private:
  enum class state : std::uint8_t {
    size_start,
    size,
    extension,
    size_lf,
    data,
    data_cr,
    data_lf,
    trailer_start,
    trailer_name,
    trailer_value,
    trailer_lf,
    final_lf,
    done,
    failed,
  };

  chunk_step fail(std::size_t consumed, int status, std::string_view reason);

  std::uint64_t max_body_;
  std::size_t max_extension_;
  std::size_t max_trailer_;
  state state_ = state::size_start;
  std::uint64_t chunk_size_ = 0;
  std::uint64_t chunk_left_ = 0;
  std::size_t size_digits_ = 0;
  std::size_t extension_bytes_ = 0;
  std::size_t trailer_bytes_ = 0;
  std::uint64_t decoded_ = 0;
  int error_status_ = 0;
  std::string_view error_reason_;
};

}  // namespace mcpgate::net
