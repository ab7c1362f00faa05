// libFuzzer target: arbitrary bytes into parse_request_head(), checking the invariants the
// proxy relies on and that resuming a parse gives the same answer as parsing in one call.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "net/http/parser.h"

namespace {

using mcpgate::net::http_limits;
using mcpgate::net::parse_request_head;
using mcpgate::net::parse_status;
using mcpgate::net::request_head;

void check(bool ok) {
  if (!ok) std::abort();
}

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void check_invariants(const request_head& r, std::string_view in, const http_limits& limits) {
  switch (r.status()) {
    case parse_status::complete:
      check(r.head_length() <= in.size());
      check(r.head_length() <= limits.max_head);
      check(in.substr(0, r.head_length()).ends_with("\r\n\r\n"));
      check(inside(r.method_text(), in) && !r.method_text().empty());
      check(inside(r.target(), in) && !r.target().empty());
      check(r.target().size() <= limits.max_target);
      check(r.headers().size() <= limits.max_headers);
      for (const auto& h : r.headers()) {
        check(inside(h.name, in) && !h.name.empty());
        check(inside(h.value, in));
        check(h.name.data() + h.name.size() <= in.data() + r.head_length());
      }
      if (r.framing() == mcpgate::net::body_framing::content_length) {
        check(r.content_length() <= limits.max_body);
      }
      check(r.framing() != mcpgate::net::body_framing::until_close);
      break;
    case parse_status::incomplete:
      check(r.resume_offset() <= in.size());
      break;
    case parse_status::error:
      check(r.error_status() == 400 || r.error_status() == 413 || r.error_status() == 414 ||
            r.error_status() == 431 || r.error_status() == 501 || r.error_status() == 505);
      check(!r.error_reason().empty());
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // The first two bytes choose the limits and where to split the input.
  http_limits limits;
  if (data[0] & 1) {
    limits.max_head = 256;
    limits.max_target = 64;
    limits.max_headers = 4;
    limits.max_body = 1000;
  }
  const std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  const std::size_t split = in.empty() ? 0 : data[1] % (in.size() + 1);

  const request_head whole = parse_request_head(in, limits);
  check_invariants(whole, in, limits);

  // A prefix that is already refused stays refused; one that is incomplete, resumed, must
  // end exactly as the one-call parse did.
  const request_head first = parse_request_head(in.substr(0, split), limits);
  check_invariants(first, in.substr(0, split), limits);
  if (first.status() == parse_status::error) {
    check(whole.status() == parse_status::error);
  } else if (first.status() == parse_status::incomplete) {
    const request_head resumed = parse_request_head(in, limits, first.resume_offset());
    check(resumed.status() == whole.status());
    check(resumed.head_length() == whole.head_length());
    check(resumed.error_status() == whole.error_status());
  } else {
    check(whole.status() == parse_status::complete);
    check(whole.head_length() == first.head_length());
  }
  return 0;
}
