#include "net/http/parser.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <type_traits>

#include "net/http/chars.h"

namespace mcpgate::net {
namespace {

using namespace http_chars;

// A head failure: the status to answer and why.
struct head_error {
  int status = 0;
  std::string_view reason;
};

constexpr std::size_t max_method_length = 32;

// Where the end-of-head scan stands.
struct head_scan {
  enum { found, need_more, failed } outcome = need_more;
  std::size_t end = 0;     // on found: offset just past the CRLFCRLF
  std::size_t resume = 0;  // on need_more: every '\n' before this has been checked
};

// Finds the CRLFCRLF that ends a head starting at `start`, checking on the way that every LF
// is part of a CRLF (a bare LF is a line end to some implementations and not to others). Only
// bytes from `resume` on are scanned; bytes before it were checked by an earlier call.
head_scan scan_head_end(std::string_view bytes, std::size_t start, std::size_t resume) {
  std::size_t p = std::max(start, resume);
  const char* data = bytes.data();
  while (p < bytes.size()) {
    const void* hit = std::memchr(data + p, '\n', bytes.size() - p);
    if (hit == nullptr) break;
    const std::size_t q = static_cast<std::size_t>(static_cast<const char*>(hit) - data);
    if (q == start || data[q - 1] != '\r') return {head_scan::failed, 0, 0};
    // Every earlier LF was checked to follow a CR, so "\n\r\n" here means CRLF CRLF.
    if (q >= start + 3 && data[q - 2] == '\n') return {head_scan::found, q + 1, 0};
    p = q + 1;
  }
  return {head_scan::need_more, 0, bytes.size()};
}

// Splits the next CRLF-terminated line off `rest` (which the scan proved well formed).
std::string_view next_line(std::string_view& rest) {
  const std::size_t lf = rest.find('\n');
  const std::string_view line = rest.substr(0, lf - 1);
  rest.remove_prefix(lf + 1);
  return line;
}

// What the header fields say about framing and the connection, gathered in one pass.
struct field_facts {
  std::size_t content_length_count = 0;
  std::string_view content_length;
  std::size_t transfer_encoding_count = 0;
  bool transfer_encoding_chunked_last = false;
  bool transfer_encoding_chunked_early = false;  // chunked not last, or more than once
  bool transfer_encoding_unknown = false;        // a coding other than chunked
  bool transfer_encoding_malformed = false;      // an empty list or a non-token element
  std::size_t host_count = 0;
  std::string_view host;
  bool connection_close = false;
  bool connection_keep_alive = false;
};

// Folds one Transfer-Encoding field value into `facts`. Several fields form one list
// (RFC 9110 5.3), so "gzip" then "chunked" is the list "gzip, chunked".
void note_transfer_encoding(std::string_view value, field_facts& facts) {
  bool any = false;
  while (true) {
    const std::size_t comma = value.find(',');
    const std::string_view element = trim_ows(value.substr(0, comma));
    if (!element.empty()) {
      any = true;
      if (facts.transfer_encoding_chunked_last) facts.transfer_encoding_chunked_early = true;
      facts.transfer_encoding_chunked_last = false;
      if (!std::all_of(element.begin(), element.end(), [](char c) { return is(c, tchar); })) {
        // Parameters (";q=1") and junk alike: no coding we accept takes parameters.
        facts.transfer_encoding_malformed = true;
      } else if (equals_ignore_case(element, "chunked")) {
        facts.transfer_encoding_chunked_last = true;
      } else {
        facts.transfer_encoding_unknown = true;
      }
    }
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  if (!any) facts.transfer_encoding_malformed = true;
}

void note_field(const http_header& h, field_facts& facts) {
  // Dispatch on length first: most fields are none of these and leave after one compare.
  switch (h.name.size()) {
    case 4:
      if (equals_ignore_case(h.name, "host")) {
        ++facts.host_count;
        facts.host = h.value;
      }
      break;
    case 10:
      if (equals_ignore_case(h.name, "connection")) {
        facts.connection_close |= header_has_token(h.value, "close");
        facts.connection_keep_alive |= header_has_token(h.value, "keep-alive");
      }
      break;
    case 14:
      if (equals_ignore_case(h.name, "content-length")) {
        ++facts.content_length_count;
        facts.content_length = h.value;
      }
      break;
    case 17:
      if (equals_ignore_case(h.name, "transfer-encoding")) {
        ++facts.transfer_encoding_count;
        note_transfer_encoding(h.value, facts);
      }
      break;
    default:
      break;
  }
}

// The offset of the first byte of `value` that may not appear in a field value (a CTL other
// than HTAB), or npos. Values are most of a head's bytes, so eight are checked at a time.
std::size_t find_invalid_value_char(std::string_view value) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL;
  constexpr std::uint64_t highs = 0x8080808080808080ULL;
  std::size_t i = 0;
  for (; i + 8 <= value.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, value.data() + i, 8);
    // Exact "some byte is below 0x20" and "some byte is 0x7F" tests; bytes >= 0x80 (obs-text)
    // pass both. A hit (maybe just an HTAB) sends this word to the byte-wise check below.
    const std::uint64_t below_space = (w - ones * 0x20) & ~w & highs;
    const std::uint64_t x = w ^ (ones * 0x7f);
    const std::uint64_t is_del = (x - ones) & ~x & highs;
    if ((below_space | is_del) != 0) break;
  }
  for (; i < value.size(); ++i) {
    if (!is(value[i], field_vchar)) return i;
  }
  return std::string_view::npos;
}

// Parses the field lines in `rest` (everything after the start line, up to and including the
// final empty line) into `headers` and `facts`.
head_error parse_fields(std::string_view rest, const http_limits& limits, header_list& headers,
                        field_facts& facts) {
  const std::size_t max_headers = std::min(limits.max_headers, header_list::capacity);
  while (true) {
    const std::string_view line = next_line(rest);
    if (line.empty()) return {};
    if (is_ows(line.front())) return {400, "obsolete line folding"};
    std::size_t colon = 0;
    while (colon < line.size() && is(line[colon], tchar)) ++colon;
    if (colon == line.size()) return {400, "header line without colon"};
    if (line[colon] != ':') {
      if (is_ows(line[colon])) return {400, "whitespace between header name and colon"};
      return {400, "invalid character in header name"};
    }
    if (colon == 0) return {400, "empty header name"};
    const std::string_view value = line.substr(colon + 1);
    if (const std::size_t bad = find_invalid_value_char(value); bad != std::string_view::npos) {
      return {400, value[bad] == '\r' ? "bare CR in header" : "control character in header value"};
    }
    if (headers.size() == max_headers) return {431, "too many header fields"};
    const http_header h{line.substr(0, colon), trim_ows(value)};
    headers.push_back(h);
    note_field(h, facts);
  }
}

// Parses a Content-Length value: 1*DIGIT and nothing else, no sign, no list.
bool parse_content_length(std::string_view s, std::uint64_t& value) {
  if (s.empty()) return false;
  std::uint64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  value = v;
  return true;
}

struct version_parse {
  enum { ok, unsupported, malformed } outcome = malformed;
  http_version version = http_version::http_1_1;
};

version_parse parse_version(std::string_view s) {
  if (s.size() != 8 || s.substr(0, 5) != "HTTP/" || s[6] != '.' || s[5] < '0' || s[5] > '9' ||
      s[7] < '0' || s[7] > '9') {
    return {};
  }
  if (s[5] == '1' && s[7] == '1') return {version_parse::ok, http_version::http_1_1};
  if (s[5] == '1' && s[7] == '0') return {version_parse::ok, http_version::http_1_0};
  return {version_parse::unsupported};
}

http_method classify_method(std::string_view m) {
  if (m == "GET") return http_method::get;
  if (m == "POST") return http_method::post;
  if (m == "PUT") return http_method::put;
  if (m == "DELETE") return http_method::delete_;
  if (m == "HEAD") return http_method::head;
  if (m == "PATCH") return http_method::patch;
  if (m == "OPTIONS") return http_method::options;
  return http_method::other;
}

bool is_method_char(char c) {
  return is(c, tchar) && !(c >= 'a' && c <= 'z');
}

// Checks what has arrived of the method, so that a peer speaking something other than HTTP
// (a TLS hello, a lowercase method) is refused at once rather than when the head limit is hit.
// Bounded by max_method_length, so it costs little to redo on every call.
head_error check_method_prefix(std::string_view bytes, std::size_t start) {
  const std::size_t end = std::min(bytes.size(), start + max_method_length + 1);
  for (std::size_t i = start; i < end; ++i) {
    const char c = bytes[i];
    if (c == ' ') return i == start ? head_error{400, "empty method"} : head_error{};
    if (!is_method_char(c)) return {400, "invalid character in method"};
  }
  if (end - start > max_method_length) return {400, "method too long"};
  return {};
}

bool starts_with_ignore_case(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && equals_ignore_case(s.substr(0, prefix.size()), prefix);
}

// Which error an over-long head earns: 414 when the request-line alone is still unterminated
// and its target already passes max_target, 431 otherwise.
head_error oversized_request(std::string_view bytes, std::size_t start, const http_limits& limits) {
  const std::string_view head = bytes.substr(start);
  const std::size_t line_end = head.find('\n');
  const std::string_view line = head.substr(0, line_end);
  const std::size_t sp = line.find(' ');
  if (sp != std::string_view::npos) {
    const std::size_t sp2 = line.find(' ', sp + 1);
    const std::size_t target_length =
        (sp2 == std::string_view::npos ? line.size() : sp2) - (sp + 1);
    if (target_length > limits.max_target) return {414, "request target too long"};
  }
  return {431, "request head too large"};
}

}  // namespace

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool header_list::push_back(http_header header) {
  if (size_ == capacity) return false;
  static_assert(std::is_trivially_copyable_v<http_header> &&
                std::is_trivially_destructible_v<http_header>);
  ::new (static_cast<void*>(storage_ + size_ * sizeof(http_header))) http_header(header);
  ++size_;
  return true;
}

std::string_view header_list::find(std::string_view name) const {
  for (const http_header& h : *this) {
    if (equals_ignore_case(h.name, name)) return h.value;
  }
  return {};
}

std::size_t header_list::count(std::string_view name) const {
  return static_cast<std::size_t>(std::count_if(
      begin(), end(), [name](const http_header& h) { return equals_ignore_case(h.name, name); }));
}

bool header_has_token(std::string_view value, std::string_view token) {
  while (true) {
    const std::size_t comma = value.find(',');
    if (equals_ignore_case(trim_ows(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) return false;
    value.remove_prefix(comma + 1);
  }
}

bool is_hop_by_hop(std::string_view name) {
  static constexpr std::string_view hop_by_hop[] = {
      "connection", "proxy-connection",  "keep-alive", "te",
      "trailer",    "transfer-encoding", "upgrade",
  };
  return std::any_of(std::begin(hop_by_hop), std::end(hop_by_hop),
                     [name](std::string_view h) { return equals_ignore_case(name, h); });
}

request_head parse_request_head(std::string_view bytes, const http_limits& limits,
                                std::size_t resume_offset) {
  request_head r;
  // The parse runs in a lambda that reports failure as a value, so that every path returns
  // the one named result and the compiler constructs it in place (a request_head is 4 KiB).
  const head_error failure = [&]() -> head_error {
    // RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request-line.
    // Bounded, so that a stream of CRLFs cannot hold a connection forever.
    std::size_t start = 0;
    std::size_t empty_lines = 0;
    while (start < bytes.size() && (bytes[start] == '\r' || bytes[start] == '\n')) {
      if (bytes[start] == '\n') return head_error{400, "bare LF in head"};
      if (start + 1 == bytes.size()) return head_error{};  // incomplete, resume from 0
      if (bytes[start + 1] != '\n') return head_error{400, "bare CR in head"};
      if (++empty_lines > limits.max_leading_empty_lines) {
        return head_error{400, "too many empty lines before request line"};
      }
      start += 2;
    }
    if (const head_error e = check_method_prefix(bytes, start); e.status != 0) return e;

    if (resume_offset > bytes.size()) resume_offset = 0;
    const head_scan scan = scan_head_end(bytes, start, resume_offset);
    if (scan.outcome == head_scan::failed) return head_error{400, "bare LF in head"};
    if (scan.outcome == head_scan::need_more) {
      if (bytes.size() >= limits.max_head) return oversized_request(bytes, start, limits);
      r.resume_offset_ = scan.resume;
      return head_error{};
    }
    if (scan.end > limits.max_head) return oversized_request(bytes, start, limits);

    std::string_view rest = bytes.substr(start, scan.end - start);
    const std::string_view line = next_line(rest);

    // request-line = method SP request-target SP HTTP-version, single spaces only.
    const std::size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) return head_error{400, "malformed request line"};
    const std::string_view method = line.substr(0, sp1);
    if (method.empty()) return head_error{400, "empty method"};
    if (!std::all_of(method.begin(), method.end(), is_method_char)) {
      return head_error{400, "invalid character in method"};
    }
    const std::size_t sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return head_error{400, "malformed request line"};
    const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (target.empty()) return head_error{400, "empty request target"};
    if (target.size() > limits.max_target) return head_error{414, "request target too long"};
    if (!std::all_of(target.begin(), target.end(), [](char c) { return is(c, target_char); })) {
      return head_error{400, "invalid character in request target"};
    }
    const version_parse version = parse_version(line.substr(sp2 + 1));
    if (version.outcome == version_parse::malformed) {
      return head_error{400, "malformed HTTP version"};
    }
    if (version.outcome == version_parse::unsupported) {
      return head_error{505, "HTTP version not supported"};
    }

    r.method_text_ = method;
    r.method_ = classify_method(method);
    r.target_ = target;
    r.version_ = version.version;
    if (target.front() == '/') {
      r.form_ = target_form::origin;
    } else if (target == "*") {
      if (r.method_ != http_method::options)
        return head_error{400, "asterisk target without OPTIONS"};
      r.form_ = target_form::asterisk;
    } else if (starts_with_ignore_case(target, "http://") ||
               starts_with_ignore_case(target, "https://")) {
      r.form_ = target_form::absolute;
    } else if (method == "CONNECT") {
      r.form_ = target_form::authority;
    } else {
      return head_error{400, "malformed request target"};
    }

    field_facts facts;
    if (const head_error e = parse_fields(rest, limits, r.headers_, facts); e.status != 0) {
      return e;
    }

    if (facts.host_count > 1) return head_error{400, "more than one Host"};
    if (facts.host_count == 0 && r.version_ == http_version::http_1_1) {
      return head_error{400, "missing Host"};
    }
    if (facts.host_count == 1 && !std::all_of(facts.host.begin(), facts.host.end(),
                                              [](char c) { return is(c, host_char); })) {
      return head_error{400, "invalid Host"};
    }
    if (facts.content_length_count > 1) return head_error{400, "more than one Content-Length"};
    if (facts.transfer_encoding_count > 0) {
      if (facts.content_length_count > 0) {
        return head_error{400, "Content-Length together with Transfer-Encoding"};
      }
      // RFC 9112 6.1: an HTTP/1.0 peer cannot mean chunked; its framing is unreliable.
      if (r.version_ == http_version::http_1_0)
        return head_error{400, "Transfer-Encoding in HTTP/1.0"};
      if (facts.transfer_encoding_malformed) return head_error{400, "malformed Transfer-Encoding"};
      if (facts.transfer_encoding_chunked_early)
        return head_error{400, "chunked is not the last coding"};
      if (facts.transfer_encoding_unknown) return head_error{501, "unsupported transfer coding"};
      r.framing_ = body_framing::chunked;
    } else if (facts.content_length_count == 1) {
      if (!parse_content_length(facts.content_length, r.content_length_)) {
        return head_error{400, "invalid Content-Length"};
      }
      if (r.content_length_ > limits.max_body) return head_error{413, "request body too large"};
      r.framing_ = body_framing::content_length;
    } else {
      r.framing_ = body_framing::none;
    }

    r.keep_alive_ = r.version_ == http_version::http_1_1
                        ? !facts.connection_close
                        : facts.connection_keep_alive && !facts.connection_close;
    r.head_length_ = scan.end;
    r.status_ = parse_status::complete;
    return head_error{};
  }();
  if (failure.status != 0) {
    r.status_ = parse_status::error;
    r.error_status_ = failure.status;
    r.error_reason_ = failure.reason;
  }
  return r;
}

response_head parse_response_head(std::string_view bytes, const http_limits& limits,
                                  bool request_was_head, std::size_t resume_offset) {
  response_head r;
  // As in parse_request_head(): one named result, failures reported as values.
  const std::string_view failure = [&]() -> std::string_view {
    // Refuse a non-HTTP reply as soon as its first bytes show it.
    constexpr std::string_view prefix = "HTTP/";
    const std::size_t seen = std::min(bytes.size(), prefix.size());
    if (bytes.substr(0, seen) != prefix.substr(0, seen)) return "malformed status line";

    if (resume_offset > bytes.size()) resume_offset = 0;
    const head_scan scan = scan_head_end(bytes, 0, resume_offset);
    if (scan.outcome == head_scan::failed) return "bare LF in head";
    if (scan.outcome == head_scan::need_more) {
      if (bytes.size() >= limits.max_head) return "response head too large";
      r.resume_offset_ = scan.resume;
      return {};
    }
    if (scan.end > limits.max_head) return "response head too large";

    std::string_view rest = bytes.substr(0, scan.end);
    const std::string_view line = next_line(rest);

    // status-line = HTTP-version SP 3DIGIT SP [reason-phrase]. Servers that drop the second SP
    // when the reason is empty are common and harmless, so that one leniency stays.
    if (line.size() < 12 || line[8] != ' ') return "malformed status line";
    const version_parse version = parse_version(line.substr(0, 8));
    if (version.outcome != version_parse::ok) return "unsupported HTTP version";
    int code = 0;
    for (std::size_t i = 9; i < 12; ++i) {
      if (line[i] < '0' || line[i] > '9') return "malformed status code";
      code = code * 10 + (line[i] - '0');
    }
    if (code < 100 || code > 599) return "status code out of range";
    std::string_view reason;
    if (line.size() > 12) {
      if (line[12] != ' ') return "malformed status line";
      reason = line.substr(13);
      for (const char c : reason) {
        if (!is(c, field_vchar)) return "control character in reason phrase";
      }
    }
    r.version_ = version.version;
    r.status_code_ = code;
    r.reason_ = reason;

    field_facts facts;
    if (const head_error e = parse_fields(rest, limits, r.headers_, facts); e.status != 0) {
      return e.reason;
    }

    // Both present is a classic smuggling shape; RFC 9112 6.3 lets Transfer-Encoding win, but
    // an upstream that sends both is confused or hostile, so the response is refused.
    if (facts.content_length_count > 0 && facts.transfer_encoding_count > 0) {
      return "Content-Length together with Transfer-Encoding";
    }
    if (facts.content_length_count > 1) return "more than one Content-Length";
    if (facts.content_length_count == 1 &&
        !parse_content_length(facts.content_length, r.content_length_)) {
      return "invalid Content-Length";
    }
    if (facts.transfer_encoding_count > 0) {
      if (r.version_ == http_version::http_1_0) return "Transfer-Encoding in HTTP/1.0";
      if (facts.transfer_encoding_malformed) return "malformed Transfer-Encoding";
      if (facts.transfer_encoding_chunked_early) return "chunked is not the last coding";
    }

    bool keep_alive = r.version_ == http_version::http_1_1
                          ? !facts.connection_close
                          : facts.connection_keep_alive && !facts.connection_close;
    if (request_was_head || (code >= 100 && code < 200) || code == 204 || code == 304) {
      r.framing_ = body_framing::none;
      r.content_length_ = 0;
      if (code == 101) keep_alive = false;
    } else if (facts.transfer_encoding_count > 0) {
      // RFC 9112 6.3: with chunked last the body is chunked; with another coding last, the
      // body runs until the connection closes.
      if (facts.transfer_encoding_chunked_last) {
        r.framing_ = body_framing::chunked;
      } else {
        r.framing_ = body_framing::until_close;
        keep_alive = false;
      }
    } else if (facts.content_length_count == 1) {
      r.framing_ = body_framing::content_length;
    } else {
      r.framing_ = body_framing::until_close;
      keep_alive = false;
    }
    r.keep_alive_ = keep_alive;
    r.head_length_ = scan.end;
    r.status_ = parse_status::complete;
    return {};
  }();
  if (!failure.empty()) {
    r.status_ = parse_status::error;
    r.error_status_ = 502;
    r.error_reason_ = failure;
  }
  return r;
}

}  // namespace mcpgate::net
