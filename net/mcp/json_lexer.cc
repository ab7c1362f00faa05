#include "net/mcp/json_lexer.h"

#include <bit>
#include <cstdint>
#include <cstring>

namespace mcpgate::net::json_lexer {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads the 4 hex digits of a \u escape at p (just after "\u"); -1 when malformed.
int read_hex4(const char* p, const char* end) {
  if (end - p < 4) return -1;
  int value = 0;
  for (int i = 0; i < 4; ++i) {
    const int d = hex_digit(p[i]);
    if (d < 0) return -1;
    value = value * 16 + d;
  }
  return value;
}

// Number of leading bytes in the 8 at p that need no attention in a string: not '"', not
// '\\' and not a control character. SWAR: the lowest flagged byte is exact even though
// borrows may flag bytes above it.
static_assert(std::endian::native == std::endian::little, "plain_run assumes little endian");

std::size_t plain_run(const char* p) {
  std::uint64_t word;
  std::memcpy(&word, p, sizeof word);
  constexpr std::uint64_t ones = 0x0101010101010101;
  constexpr std::uint64_t highs = 0x8080808080808080;
  auto zero_bytes = [](std::uint64_t x) { return (x - ones) & ~x & highs; };
  const std::uint64_t flagged = zero_bytes(word ^ (ones * '"')) | zero_bytes(word ^ (ones * '\\')) |
                                ((word - ones * 0x20) & ~word & highs);
  if (flagged == 0) return 8;
  return static_cast<std::size_t>(std::countr_zero(flagged)) / 8;
}

}  // namespace

std::string_view trim_end(std::string_view s) {
  while (!s.empty() && is_json_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_json_space(s.front())) s.remove_prefix(1);
  return trim_end(s);
}

bool is_json_number(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  if (i < n && s[i] == '-') ++i;
  if (i == n) return false;
  if (s[i] == '0') {
    ++i;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && is_digit(s[i])) ++i;
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (i == n || !is_digit(s[i])) return false;
    while (i < n && is_digit(s[i])) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (i == n || !is_digit(s[i])) return false;
    while (i < n && is_digit(s[i])) ++i;
  }
  return i == n;
}

bool is_exact_integer(std::string_view number) {
  if (!number.empty() && number.front() == '-') number.remove_prefix(1);
  if (number.empty() || number.size() > 16) return false;
  std::uint64_t value = 0;
  for (char c : number) {
    if (!is_digit(c)) return false;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value <= (std::uint64_t{1} << 53);
}

// Scans a JSON string body from p (just after the opening quote), never reading at or past
// end. When out is non-null, writes the unescaped bytes there (never more than the raw
// length). We unescape ourselves rather than through simdjson so that the rules that matter
// for agreement with upstream parsers are ours and visible: lone or reversed surrogates are
// errors, as are control characters and unknown escapes. UTF-8 itself was validated for the
// whole input by simdjson's first stage.
scanned_string scan_string(const char* p, const char* end, char* out) {
  scanned_string result;
  std::size_t length = 0;
  auto put = [&](char c) {
    if (out != nullptr) out[length] = c;
    ++length;
  };
  while (p < end) {
    // Skip plain bytes eight at a time. Reading up to 7 bytes past end is safe: every input
    // is followed by jsonrpc_padding bytes, and a stop found past end is treated as none.
    const std::size_t run = plain_run(p);
    if (run != 0) {
      const std::size_t n = std::min<std::size_t>(run, static_cast<std::size_t>(end - p));
      if (out != nullptr) std::memcpy(out + length, p, n);
      length += n;
      p += n;
      continue;
    }
    const char c = *p;
    if (c == '"') {
      result.valid = true;
      result.close = p;
      result.length = length;
      return result;
    }
    if (static_cast<unsigned char>(c) < 0x20) return result;
    if (c != '\\') {
      put(c);
      ++p;
      continue;
    }
    result.escaped = true;
    if (end - p < 2) return result;
    const char e = p[1];
    p += 2;
    switch (e) {
      case '"':
        put('"');
        continue;
      case '\\':
        put('\\');
        continue;
      case '/':
        put('/');
        continue;
      case 'b':
        put('\b');
        continue;
      case 'f':
        put('\f');
        continue;
      case 'n':
        put('\n');
        continue;
      case 'r':
        put('\r');
        continue;
      case 't':
        put('\t');
        continue;
      case 'u':
        break;
      default:
        return result;
    }
    int code = read_hex4(p, end);
    if (code < 0) return result;
    p += 4;
    std::uint32_t cp = static_cast<std::uint32_t>(code);
    if (cp >= 0xDC00 && cp <= 0xDFFF) return result;  // low surrogate without a high one
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (end - p < 2 || p[0] != '\\' || p[1] != 'u') return result;
      const int low = read_hex4(p + 2, end);
      if (low < 0xDC00 || low > 0xDFFF) return result;
      p += 6;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (static_cast<std::uint32_t>(low) - 0xDC00);
    }
    if (cp < 0x80) {
      put(static_cast<char>(cp));
    } else if (cp < 0x800) {
      put(static_cast<char>(0xC0 | (cp >> 6)));
      put(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      put(static_cast<char>(0xE0 | (cp >> 12)));
      put(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      put(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      put(static_cast<char>(0xF0 | (cp >> 18)));
      put(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      put(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      put(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return result;
}

}  // namespace mcpgate::net::json_lexer
