#pragma once

// JSON's lexical rules as the gateway applies them, stricter than any one parser it forwards
// to: the number grammar of RFC 8259, integers every implementation reads alike, and string
// unescaping that refuses lone surrogates, control characters and unknown escapes. Used by the
// JSON-RPC extractor (jsonrpc.cc); no simdjson here.

#include <cstddef>
#include <string_view>

namespace mcpgate::net::json_lexer {

// JSON whitespace only; \f, \v and friends are not whitespace and simdjson would treat them
// as part of an atom, which our scalar grammar then rejects.
constexpr bool is_json_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

constexpr bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string_view trim_end(std::string_view s);
std::string_view trim(std::string_view s);

// RFC 8259 number grammar. simdjson's own number parsers are lenient in places and refuse
// valid numbers in others (1e400); checking the grammar ourselves keeps the accepted language
// exactly JSON's.
bool is_json_number(std::string_view s);

// An id every JSON implementation reads as the same integer: no fraction or exponent (1.0
// and 1e0 may be echoed back differently) and within +-2^53, where doubles stay exact.
bool is_exact_integer(std::string_view number);

struct scanned_string {
  bool valid = false;
  bool escaped = false;
  const char* close = nullptr;  // the closing quote
  std::size_t length = 0;       // unescaped length
};

// Scans a JSON string body from p (just after the opening quote), never reading at or past
// end. When out is non-null, writes the unescaped bytes there (never more than the raw
// length). UTF-8 itself is not checked here: simdjson's first stage validated the whole input.
scanned_string scan_string(const char* p, const char* end, char* out);

}  // namespace mcpgate::net::json_lexer
