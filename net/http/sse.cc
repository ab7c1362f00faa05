#include "net/http/sse.h"

namespace mcpgate::net {
namespace {

std::optional<std::uint64_t> parse_retry(std::string_view value) {
  if (value.empty()) return std::nullopt;
  std::uint64_t v = 0;
  for (const char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto d = static_cast<std::uint64_t>(c - '0');
    // A browser would keep some value; an absurd one is as good as none for a relay.
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

}  // namespace

sse_parser::sse_parser(std::size_t max_event_bytes) : max_event_bytes_(max_event_bytes) {}

void sse_parser::take_line(std::string_view line) {
  if (line.front() == ':') return;  // a comment
  const std::size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  std::string_view value =
      colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "event") {
    type_.assign(value);
  } else if (field == "data") {
    data_.append(value);
    data_.push_back('\n');
  } else if (field == "id") {
    // The standard ignores ids holding NUL, which could not round-trip through a header.
    if (value.find('\0') == std::string_view::npos) last_id_.assign(value);
  } else if (field == "retry") {
    if (const auto retry = parse_retry(value)) retry_ = retry;
  }
  // Any other field name is ignored, as the standard says.
}

void sse_parser::finish_block(std::uint64_t end) {
  event_.dispatch = !data_.empty();
  event_.type = type_;
  event_.data = std::string_view(data_).substr(0, data_.empty() ? 0 : data_.size() - 1);
  event_.id = last_id_;
  event_.retry = retry_;
  event_.begin = block_begin_;
  event_.end = end;
  block_begin_ = end;
  reset_pending_ = true;
}

sse_step sse_parser::feed(std::string_view in) {
  if (failed_) return {0, sse_status::error};
  if (reset_pending_) {
    type_.clear();
    data_.clear();
    retry_.reset();
    event_ = {};
    reset_pending_ = false;
  }
  const std::uint64_t base = offset_;
  std::size_t i = 0;
  if (cr_pending_ && !in.empty()) {
    // The CR that ended the previous line and this LF are one line ending.
    cr_pending_ = false;
    if (in.front() == '\n') i = 1;
  }
  const auto fail = [&](std::size_t consumed) {
    failed_ = true;
    error_reason_ = "event too large";
    offset_ = base + consumed;
    return sse_step{consumed, sse_status::error};
  };

  while (i < in.size()) {
    std::size_t j = i;
    while (j < in.size() && in[j] != '\n' && in[j] != '\r') ++j;
    if (j == in.size()) {
      if (base + j - block_begin_ > max_event_bytes_) return fail(i);
      line_.append(in.substr(i));
      i = j;
      break;
    }
    std::size_t terminator = 1;
    if (in[j] == '\r') {
      if (j + 1 == in.size()) {
        cr_pending_ = true;
      } else if (in[j + 1] == '\n') {
        terminator = 2;
      }
    }
    if (base + j + terminator - block_begin_ > max_event_bytes_) return fail(i);
    std::string_view line = in.substr(i, j - i);
    if (!line_.empty()) {
      line_.append(line);
      line = line_;
    }
    if (first_line_) {
      first_line_ = false;
      if (line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
    }
    i = j + terminator;
    if (line.empty()) {
      line_.clear();
      offset_ = base + i;
      finish_block(offset_);
      return {i, sse_status::event};
    }
    take_line(line);
    line_.clear();
  }
  offset_ = base + i;
  return {i, sse_status::need_more};
}

}  // namespace mcpgate::net
