#pragma once

// Byte classes of HTTP/1.1 (RFC 9110, RFC 9112) as one table, so that each byte costs one load;
// shared by the head parsers (parser.cc) and the chunked decoder (chunked.cc).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mcpgate::net::http_chars {

// Character classes as bit flags in one table, so each byte costs one load.
enum char_class : std::uint8_t {
  tchar = 1 << 0,        // RFC 9110 token character
  field_vchar = 1 << 1,  // allowed inside a field value or reason phrase: VCHAR, obs-text, SP, HTAB
  target_char = 1 << 2,  // allowed inside a request-target: VCHAR except '#'
  hexdig = 1 << 3,
  host_char = 1 << 4,  // allowed in a Host value: reg-name, IP-literal and port characters
};

constexpr std::array<std::uint8_t, 256> make_classes() {
  std::array<std::uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    std::uint8_t v = 0;
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    if (alpha || digit ||
        std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos) {
      v |= tchar;
    }
    if (c == '\t' || (c >= 0x20 && c != 0x7f)) v |= field_vchar;
    if (c > 0x20 && c < 0x7f && c != '#') v |= target_char;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= hexdig;
    // A comma is a sub-delim but never appears in a real host; rejecting it stops
    // "Host: a, b" from meaning different hosts to different implementations.
    if (alpha || digit ||
        std::string_view("-._~!$&'()*+;=:[]%").find(static_cast<char>(c)) !=
            std::string_view::npos) {
      v |= host_char;
    }
    t[static_cast<std::size_t>(c)] = v;
  }
  return t;
}

inline constexpr std::array<std::uint8_t, 256> classes = make_classes();

inline bool is(char c, char_class k) {
  return (classes[static_cast<std::uint8_t>(c)] & k) != 0;
}

inline char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

inline bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace mcpgate::net::http_chars
