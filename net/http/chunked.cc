#include "net/http/chunked.h"

#include "net/http/chars.h"

namespace mcpgate::net {

using namespace http_chars;

chunked_decoder::chunked_decoder(const http_limits& limits)
    : max_body_(limits.max_body),
      max_extension_(limits.max_chunk_extension),
      max_trailer_(limits.max_trailer) {}

chunk_step chunked_decoder::fail(std::size_t consumed, int status, std::string_view reason) {
  state_ = state::failed;
  error_status_ = status;
  error_reason_ = reason;
  return {consumed, chunk_status::error};
}

chunk_step chunked_decoder::feed(std::string_view in, std::string* out) {
  if (state_ == state::done) return {0, chunk_status::done};
  if (state_ == state::failed) return {0, chunk_status::error};

  // 16 hex digits fill a uint64_t; leading zeros count, so no size can overflow.
  constexpr std::size_t max_size_digits = 16;
  std::size_t i = 0;
  while (i < in.size()) {
    const char c = in[i];
    switch (state_) {
      case state::size_start:
      case state::size:
        if (is(c, hexdig)) {
          if (++size_digits_ > max_size_digits) return fail(i, 400, "chunk size too long");
          const int d = c <= '9' ? c - '0' : lower(c) - 'a' + 10;
          chunk_size_ = chunk_size_ * 16 + static_cast<std::uint64_t>(d);
          state_ = state::size;
        } else if (state_ == state::size_start) {
          return fail(i, 400, "invalid chunk size");
        } else if (c == ';') {
          extension_bytes_ = 0;
          state_ = state::extension;
        } else if (c == '\r') {
          state_ = state::size_lf;
        } else {
          return fail(i, 400, "invalid chunk size");
        }
        ++i;
        break;
      case state::extension:
        if (c == '\r') {
          state_ = state::size_lf;
        } else if (!is(c, field_vchar)) {
          return fail(i, 400, "control character in chunk extension");
        } else if (++extension_bytes_ > max_extension_) {
          return fail(i, 400, "chunk extension too long");
        }
        ++i;
        break;
      case state::size_lf:
        if (c != '\n') return fail(i, 400, "bare CR in chunk size line");
        ++i;
        size_digits_ = 0;
        if (chunk_size_ == 0) {
          trailer_bytes_ = 0;
          state_ = state::trailer_start;
        } else {
          // Refuse before taking any of the chunk: a huge size is itself the signal.
          if (chunk_size_ > max_body_ - decoded_) return fail(i, 413, "chunked body too large");
          chunk_left_ = chunk_size_;
          state_ = state::data;
        }
        chunk_size_ = 0;
        break;
      case state::data: {
        const std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(chunk_left_, in.size() - i));
        if (out != nullptr) out->append(in.data() + i, take);
        chunk_left_ -= take;
        decoded_ += take;
        i += take;
        if (chunk_left_ == 0) state_ = state::data_cr;
        break;
      }
      case state::data_cr:
        if (c != '\r') return fail(i, 400, "chunk data not followed by CRLF");
        state_ = state::data_lf;
        ++i;
        break;
      case state::data_lf:
        if (c != '\n') return fail(i, 400, "chunk data not followed by CRLF");
        state_ = state::size_start;
        ++i;
        break;
      case state::trailer_start:
      case state::trailer_name:
      case state::trailer_value:
      case state::trailer_lf:
      case state::final_lf:
        if (++trailer_bytes_ > max_trailer_) return fail(i, 400, "trailer section too large");
        if (state_ == state::trailer_start) {
          if (c == '\r') {
            state_ = state::final_lf;
          } else if (is(c, tchar)) {
            state_ = state::trailer_name;
          } else {
            return fail(i, 400, "malformed trailer field");
          }
        } else if (state_ == state::trailer_name) {
          if (c == ':') {
            state_ = state::trailer_value;
          } else if (!is(c, tchar)) {
            return fail(i, 400, "malformed trailer field");
          }
        } else if (state_ == state::trailer_value) {
          if (c == '\r') {
            state_ = state::trailer_lf;
          } else if (!is(c, field_vchar)) {
            return fail(i, 400, "control character in trailer field");
          }
        } else if (state_ == state::trailer_lf) {
          if (c != '\n') return fail(i, 400, "bare CR in trailer section");
          state_ = state::trailer_start;
        } else {
          if (c != '\n') return fail(i, 400, "bare CR in trailer section");
          state_ = state::done;
          return {i + 1, chunk_status::done};
        }
        ++i;
        break;
      case state::done:
      case state::failed:
        break;  // unreachable: both return above
    }
  }
  return {i, chunk_status::need_more};
}

}  // namespace mcpgate::net
