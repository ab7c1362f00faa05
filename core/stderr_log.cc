#include "core/stderr_log.h"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>

#include "core/clock.h"

namespace mcpgate::core {

namespace {

std::atomic<log_format> format_{log_format::text};

void append_padded(std::string& out, unsigned v, int width) {
  char digits[12];
  for (int i = width - 1; i >= 0; --i) {
    digits[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  out.append(digits, static_cast<size_t>(width));
}

// The length of the valid UTF-8 sequence at the start of `s`, or 0.
size_t utf8_length(std::string_view s) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char c = byte(0);
  size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
  if (n == 0 || c > 0xf4 || s.size() < n) return 0;
  for (size_t i = 1; i < n; ++i)
    if ((byte(i) & 0xc0) != 0x80) return 0;
  if (n == 3 && ((c == 0xe0 && byte(1) < 0xa0) || (c == 0xed && byte(1) >= 0xa0))) return 0;
  if (n == 4 && ((c == 0xf0 && byte(1) < 0x90) || (c == 0xf4 && byte(1) >= 0x90))) return 0;
  return n;
}

// A JSON string's contents; each byte that is not valid UTF-8 becomes U+FFFD, so a child's
// garbage on stderr never breaks the line for a collector.
void append_json_text(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else if (c >= 0x80) {
      size_t n = utf8_length(s.substr(i));
      if (n == 0) {
        out += "\\ufffd";
        ++i;
        continue;
      }
      out.append(s.substr(i, n));
      i += n;
      continue;
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
}

}  // namespace

std::string_view log_level_name(log_level level) {
  switch (level) {
    case log_level::info:
      return "info";
    case log_level::warn:
      return "warn";
    case log_level::error:
      return "error";
  }
  return "info";
}

void set_log_format(log_format format) {
  format_.store(format, std::memory_order_relaxed);
}
log_format current_log_format() {
  return format_.load(std::memory_order_relaxed);
}

void append_rfc3339_micros(std::string& out, int64_t realtime_ns) {
  // Floor division, so instants before 1970 still print correctly.
  int64_t us = realtime_ns >= 0 ? realtime_ns / 1000 : -((-realtime_ns + 999) / 1000);
  int64_t secs = us >= 0 ? us / 1'000'000 : -((-us + 999'999) / 1'000'000);
  int64_t micros = us - secs * 1'000'000;
  int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
  int64_t sod = secs - days * 86400;
  // Civil date from a day count (proleptic Gregorian, eras of 400 years = 146097 days).
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t day = doy - (153 * mp + 2) / 5 + 1;
  int64_t month = mp < 10 ? mp + 3 : mp - 9;
  int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  append_padded(out, static_cast<unsigned>(year), 4);
  out += '-';
  append_padded(out, static_cast<unsigned>(month), 2);
  out += '-';
  append_padded(out, static_cast<unsigned>(day), 2);
  out += 'T';
  append_padded(out, static_cast<unsigned>(sod / 3600), 2);
  out += ':';
  append_padded(out, static_cast<unsigned>(sod / 60 % 60), 2);
  out += ':';
  append_padded(out, static_cast<unsigned>(sod % 60), 2);
  out += '.';
  append_padded(out, static_cast<unsigned>(micros), 6);
  out += 'Z';
}

void append_log_line(std::string& out, log_level level, std::string_view message) {
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r'))
    message.remove_suffix(1);
  if (current_log_format() == log_format::json) {
    out += "{\"ts\":\"";
    append_rfc3339_micros(out, realtime_ns());
    out += "\",\"level\":\"";
    out += log_level_name(level);
    out += "\",\"msg\":\"";
    append_json_text(out, message);
    out += "\"}\n";
    return;
  }
  append_rfc3339_micros(out, realtime_ns());
  out += ' ';
  out += log_level_name(level);
  out += ' ';
  size_t start = out.size();
  out.append(message);
  for (size_t i = start; i < out.size(); ++i)
    if (out[i] == '\n' || out[i] == '\r') out[i] = ' ';
  out += '\n';
}

void log(log_level level, std::string_view message) {
  std::string line;
  append_log_line(line, level, message);
  // One write: a line from another thread cannot land inside this one.
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
}

void logf(log_level level, const char* format, ...) {
  char buf[2048];
  va_list args;
  va_start(args, format);
  int n = std::vsnprintf(buf, sizeof buf, format, args);
  va_end(args);
  if (n < 0) return;
  if (static_cast<size_t>(n) < sizeof buf) {
    log(level, std::string_view(buf, static_cast<size_t>(n)));
    return;
  }
  std::string long_message(static_cast<size_t>(n) + 1, '\0');
  va_start(args, format);
  std::vsnprintf(long_message.data(), long_message.size(), format, args);
  va_end(args);
  long_message.pop_back();
  log(level, long_message);
}

}  // namespace mcpgate::core
