// libFuzzer target: arbitrary bytes into parse_response_head(), then whatever follows a
// chunked head into chunked_decoder, checking invariants and split-independence.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/http/chunked.h"
#include "net/http/parser.h"

namespace {

using mcpgate::net::body_framing;
using mcpgate::net::chunk_status;
using mcpgate::net::chunked_decoder;
using mcpgate::net::http_limits;
using mcpgate::net::parse_response_head;
using mcpgate::net::parse_status;
using mcpgate::net::response_head;

void check(bool ok) {
  if (!ok) std::abort();
}

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void check_invariants(const response_head& r, std::string_view in, bool request_was_head) {
  switch (r.status()) {
    case parse_status::complete:
      check(r.head_length() <= in.size());
      check(in.substr(0, r.head_length()).ends_with("\r\n\r\n"));
      check(r.status_code() >= 100 && r.status_code() <= 599);
      check(inside(r.reason(), in));
      for (const auto& h : r.headers()) check(inside(h.name, in) && inside(h.value, in));
      if (request_was_head || r.status_code() < 200 || r.status_code() == 204 ||
          r.status_code() == 304) {
        check(r.framing() == body_framing::none);
      }
      if (r.framing() == body_framing::until_close) check(!r.keep_alive());
      break;
    case parse_status::incomplete:
      check(r.resume_offset() <= in.size());
      break;
    case parse_status::error:
      check(r.error_status() == 502 && !r.error_reason().empty());
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const bool request_was_head = (data[0] & 1) != 0;
  http_limits limits;
  if (data[0] & 2) {
    limits.max_head = 256;
    limits.max_headers = 4;
    limits.max_body = 1000;
    limits.max_chunk_extension = 8;
    limits.max_trailer = 32;
  }
  const std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  const std::size_t split = in.empty() ? 0 : data[1] % (in.size() + 1);

  const response_head whole = parse_response_head(in, limits, request_was_head);
  check_invariants(whole, in, request_was_head);
  const response_head first = parse_response_head(in.substr(0, split), limits, request_was_head);
  check_invariants(first, in.substr(0, split), request_was_head);
  if (first.status() == parse_status::error) {
    check(whole.status() == parse_status::error);
  } else if (first.status() == parse_status::incomplete) {
    const response_head resumed =
        parse_response_head(in, limits, request_was_head, first.resume_offset());
    check(resumed.status() == whole.status());
    check(resumed.head_length() == whole.head_length());
  }

  if (whole.status() != parse_status::complete || whole.framing() != body_framing::chunked) {
    return 0;
  }
  // The body: decoded in one call, decoded in two, and scanned only must all agree.
  const std::string_view body = in.substr(whole.head_length());
  chunked_decoder one(limits);
  std::string one_out;
  const auto one_step = one.feed(body, &one_out);
  check(one_step.consumed <= body.size());
  check(one_out.size() == one.decoded_size());
  if (one_step.status == chunk_status::need_more) check(one_step.consumed == body.size());

  const std::size_t body_split = body.empty() ? 0 : data[1] % (body.size() + 1);
  chunked_decoder two(limits);
  std::string two_out;
  auto step = two.feed(body.substr(0, body_split), &two_out);
  std::size_t consumed = step.consumed;
  if (step.status == chunk_status::need_more) {
    check(step.consumed == body_split);
    step = two.feed(body.substr(body_split), &two_out);
    consumed += step.consumed;
  }
  check(step.status == one_step.status);
  check(consumed == one_step.consumed);
  check(two_out == one_out);

  chunked_decoder scan(limits);
  const auto scan_step = scan.feed(body, nullptr);
  check(scan_step.status == one_step.status && scan_step.consumed == one_step.consumed);
  check(scan.decoded_size() == one.decoded_size());
  check(one.decoded_size() <= limits.max_body);
  return 0;
}
