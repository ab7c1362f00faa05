#pragma once

// The gateway's own diagnostics on stderr: one line per event, each with an RFC 3339 UTC
// timestamp and a level, as text ("2026-12-03T13:21:52.123456Z warn mcpgate: ...") or, with
// --log-format json, as a JSON object per line ({"ts":...,"level":"warn","msg":"mcpgate: ..."})
// for log collectors. Each line leaves in one write(2), so lines of different threads never
// interleave. Not for the request path: it is for start-up, reloads and rare failures.

#include <cstdint>
#include <string>
#include <string_view>

namespace mcpgate::core {

enum class log_level : uint8_t { info, warn, error };
enum class log_format : uint8_t { text, json };

std::string_view log_level_name(log_level level);

// Set once at start-up, before any thread that logs.
void set_log_format(log_format format);
log_format current_log_format();

// RFC 3339 in UTC with microseconds: "2026-11-25T16:02:43.123456Z".
void append_rfc3339_micros(std::string& out, int64_t realtime_ns);

// Appends one formatted line, '\n' included, for `message` (one line, without its newline;
// embedded newlines are written as spaces in text and escaped in JSON).
void append_log_line(std::string& out, log_level level, std::string_view message);

// Formats and writes one line to stderr.
void log(log_level level, std::string_view message);
[[gnu::format(printf, 2, 3)]] void logf(log_level level, const char* format, ...);

}  // namespace mcpgate::core
