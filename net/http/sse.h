#pragma once

// An incremental parser for text/event-stream (WHATWG HTML, "Server-sent events", 9.2.6),
// fed arbitrary splits of a stream. It reports every block of lines that ends in a blank
// line, with the block's byte range in the stream, so that a relay can forward or drop whole
// events without re-serialising them.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mcpgate::net {

// One blank-line-terminated block of the stream. The views point into the parser and stay
// valid until its next feed().
struct sse_event {
  // Whether a browser would dispatch this block as an event: it had at least one data line.
  // Blocks of only comments (keep-alive pings), event/id/retry fields or nothing are reported
  // too, with dispatch false, so that their bytes can be accounted for.
  bool dispatch = false;
  std::string_view type;  // the last "event" field's value; empty means "message"
  std::string_view data;  // the data lines joined by "\n"
  // The last event ID after this block (set by this block's or an earlier block's "id" field).
  std::string_view id;
  // The block's "retry" field, when it held only digits.
  std::optional<std::uint64_t> retry;
  // The block's bytes are [begin, end) in stream offsets (bytes fed since construction). Ranges
  // of successive blocks are adjacent, so they cover the stream. When a block ends in CR and
  // its LF has not arrived yet, that LF becomes the first byte of the next block's range;
  // every reader treats it as an empty line after a line ending in CR, which dispatches
  // nothing.
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

enum class sse_status { need_more, event, error };

struct sse_step {
  std::size_t consumed = 0;  // bytes of the input taken; feed the rest again
  sse_status status = sse_status::need_more;
};

class sse_parser {
 public:
  // `max_event_bytes` bounds the bytes of one block, and so the memory the parser holds.
  explicit sse_parser(std::size_t max_event_bytes = 1024 * 1024);

  // Consumes `in` up to and including the end of the first complete block, then stops with
  // status event (see event()); feed the unconsumed rest again. need_more means all of `in`
  // was taken. After an error (a block over max_event_bytes), consumes nothing.
  sse_step feed(std::string_view in);

  // The block reported by the last feed() that returned status event.
  const sse_event& event() const { return event_; }
  std::string_view last_event_id() const { return last_id_; }
  // Stream offset of the next byte to feed.
  std::uint64_t offset() const { return offset_; }
  std::string_view error_reason() const { return error_reason_; }

 private:
  void take_line(std::string_view line);
  void finish_block(std::uint64_t end);

  std::size_t max_event_bytes_;
  std::uint64_t offset_ = 0;
  std::uint64_t block_begin_ = 0;
  bool first_line_ = true;      // the stream's first line may start with a BOM to strip
  bool cr_pending_ = false;     // the last byte taken was a CR ending a line
  bool reset_pending_ = false;  // event_ was handed out; clear the block before parsing on
  bool failed_ = false;
  std::string line_;  // a line split across feeds
  std::string type_;
  std::string data_;
  std::string last_id_;
  std::optional<std::uint64_t> retry_;
  sse_event event_;
  std::string_view error_reason_;
};

}  // namespace mcpgate::net
