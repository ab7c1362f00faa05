// libFuzzer target: arbitrary bytes into sse_parser, fed whole and split in two, checking that
// both see the same events and that event byte ranges tile the stream.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/http/sse.h"

namespace {

using mcpgate::net::sse_parser;
using mcpgate::net::sse_status;

void check(bool ok) {
  if (!ok) std::abort();
}

struct seen_event {
  bool dispatch;
  std::string type;
  std::string data;
  std::string id;
  std::optional<std::uint64_t> retry;
};

struct run {
  std::vector<seen_event> events;
  bool failed = false;
};

run feed_all(const std::vector<std::string_view>& pieces, std::size_t max_event_bytes) {
  sse_parser p(max_event_bytes);
  run r;
  std::uint64_t next_begin = 0;
  std::uint64_t fed = 0;
  for (std::string_view piece : pieces) {
    while (true) {
      const auto step = p.feed(piece);
      check(step.consumed <= piece.size());
      fed += step.consumed;
      piece.remove_prefix(step.consumed);
      check(p.offset() == fed);
      if (step.status == sse_status::error) {
        r.failed = true;
        return r;
      }
      if (step.status == sse_status::need_more) {
        check(piece.empty());
        break;
      }
      const auto& e = p.event();
      check(e.begin == next_begin && e.end > e.begin && e.end == fed);
      check(e.end - e.begin <= max_event_bytes);
      check(e.dispatch || e.data.empty());
      next_begin = e.end;
      r.events.push_back(
          {e.dispatch, std::string(e.type), std::string(e.data), std::string(e.id), e.retry});
    }
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t max_event_bytes = (data[0] & 1) ? 64 : 1 << 20;
  const std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  const std::size_t split = in.empty() ? 0 : data[1] % (in.size() + 1);

  const run whole = feed_all({in}, max_event_bytes);
  const run halves = feed_all({in.substr(0, split), in.substr(split)}, max_event_bytes);
  // A split between a CR and its LF moves one byte between blocks, which can change which
  // block first passes the size limit; only compare runs that did not fail.
  if (whole.failed || halves.failed) return 0;
  check(whole.events.size() == halves.events.size());
  for (std::size_t i = 0; i < whole.events.size(); ++i) {
    const seen_event& a = whole.events[i];
    const seen_event& b = halves.events[i];
    check(a.dispatch == b.dispatch && a.type == b.type && a.data == b.data && a.id == b.id &&
          a.retry == b.retry);
  }
  return 0;
}
