#include "net/observe/trace.h"

#include <poll.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "core/build_info.h"
#include "core/clock.h"
#include "core/random.h"
#include "core/stderr_log.h"
#include "policy/json_writer.h"

namespace mcpgate::net {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // W3C trace context is lowercase only
}

template <size_t N>
bool parse_hex(std::string_view text, std::array<uint8_t, N>& out) {
  if (text.size() != 2 * N) return false;
  bool nonzero = false;
  for (size_t i = 0; i < N; ++i) {
    int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
    nonzero = nonzero || out[i] != 0;
  }
  return nonzero;
}

template <size_t N>
void append_hex(std::string& out, const std::array<uint8_t, N>& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  for (uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
}

void append_uint_string(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v < 0 ? 0 : v);
  out += '"';
  out.append(buf, r.ptr);
  out += '"';
}

}  // namespace

bool parse_traceparent(std::string_view v, trace_context& into) {
  // version "-" trace-id "-" parent-id "-" flags; version ff is invalid.
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  if (hex_value(v[0]) < 0 || hex_value(v[1]) < 0 || v.substr(0, 2) == "ff") return false;
  if (v.substr(0, 2) == "00" && v.size() != 55) return false;
  if (v.size() > 55 && v[55] != '-') return false;
  trace_context t;
  std::array<uint8_t, 1> flags{};
  if (!parse_hex(v.substr(3, 32), t.trace) || !parse_hex(v.substr(36, 16), t.parent)) return false;
  int hi = hex_value(v[53]), lo = hex_value(v[54]);
  if (hi < 0 || lo < 0) return false;
  flags[0] = static_cast<uint8_t>(hi << 4 | lo);
  into.trace = t.trace;
  into.parent = t.parent;
  into.has_parent = true;
  into.sampled = (flags[0] & 1) != 0;
  return true;
}

void append_traceparent_header(std::string& out, const trace_context& t) {
  out += "traceparent: 00-";
  append_hex(out, t.trace);
  out += '-';
  append_hex(out, t.upstream);
  out += t.sampled ? "-01\r\n" : "-00\r\n";
}

struct trace_meta_reader::state {
  simdjson::ondemand::parser parser;
  std::string padded;
  std::string value;
};

std::string_view trace_meta_reader::traceparent(std::string_view params) {
  namespace od = simdjson::ondemand;
  if (!state_) state_ = std::make_shared<state>();
  state& s = *state_;
  s.padded.assign(params);
  s.padded.append(simdjson::SIMDJSON_PADDING, '\0');
  od::document doc;
  od::object top, meta;
  std::string_view value;
  if (s.parser.iterate(s.padded.data(), params.size(), s.padded.size()).get(doc) ||
      doc.get_object().get(top) || top.find_field_unordered("_meta").get_object().get(meta) ||
      meta.find_field_unordered("traceparent").get_string().get(value))
    return {};
  s.value.assign(value);
  return s.value;
}

trace_ids::trace_ids() {
  core::random_bytes(state_, sizeof state_);
}

// xorshift128+: fast, and seeded from the kernel per shard; ids need to be unique, not secret.
uint64_t trace_ids::next() {
  uint64_t s1 = state_[0];
  const uint64_t s0 = state_[1];
  state_[0] = s0;
  s1 ^= s1 << 23;
  state_[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
  return state_[1] + s0;
}

void trace_ids::fill(trace_context& t) {
  auto put = [](uint8_t* out, uint64_t v) {
    for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
  };
  if (!t.has_parent) {
    put(t.trace.data(), next());
    put(t.trace.data() + 8, next() | 1);  // never all zero
    t.sampled = true;
  }
  put(t.server.data(), next() | 1);
  put(t.decision.data(), next() | 1);
  put(t.upstream.data(), next() | 1);
  t.active = true;
}

void append_span_json(std::string& out, const trace_id& trace, const span_id& id,
                      const span_id* parent, std::string_view name, int kind, int64_t start_unix_ns,
                      int64_t end_unix_ns, std::initializer_list<span_attribute> attributes,
                      bool status_error) {
  out += "{\"traceId\":\"";
  append_hex(out, trace);
  out += "\",\"spanId\":\"";
  append_hex(out, id);
  out += '"';
  if (parent) {
    out += ",\"parentSpanId\":\"";
    append_hex(out, *parent);
    out += '"';
  }
  out += ",\"name\":";
  policy::append_json_string(out, name);
  out += ",\"kind\":";
  out += static_cast<char>('0' + kind);
  out += ",\"startTimeUnixNano\":";
  append_uint_string(out, start_unix_ns);
  out += ",\"endTimeUnixNano\":";
  append_uint_string(out, end_unix_ns < start_unix_ns ? start_unix_ns : end_unix_ns);
  out += ",\"attributes\":[";
  bool first = true;
  for (const span_attribute& a : attributes) {
    if (a.text.empty() && !a.is_number) continue;
    if (!first) out += ',';
    first = false;
    out += "{\"key\":";
    policy::append_json_string(out, a.key);
    if (a.is_number) {
      out += ",\"value\":{\"intValue\":";
      append_uint_string(out, a.number);
      out += "}}";
    } else {
      out += ",\"value\":{\"stringValue\":";
      policy::append_json_string(out, a.text);
      out += "}}";
    }
  }
  out += "],\"status\":{\"code\":";
  out += status_error ? '2' : '1';
  out += "}}";
}

// ---------------------------------------------------------------------------------------------
// The exporter

trace_exporter::trace_exporter(trace_export_settings settings)
    : settings_(std::move(settings)), thread_([this] { run(); }) {}

trace_exporter::~trace_exporter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void trace_exporter::post(std::string spans, uint64_t count) {
  if (count == 0) return;
  {
    std::lock_guard lock(mu_);
    if (queued_bytes_ + spans.size() > settings_.max_queued_bytes || stopping_) {
      dropped_.fetch_add(count, std::memory_order_relaxed);
      return;
    }
    queued_bytes_ += spans.size();
    queue_.emplace_back(std::move(spans), count);
  }
  wake_.notify_one();
}

void trace_exporter::run() {
  int64_t stop_by = 0;
  for (;;) {
    std::pair<std::string, uint64_t> batch;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      if (stopping_ && stop_by == 0) stop_by = core::monotonic_ns() + 2'000'000'000;
      batch = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= batch.first.size();
    }
    if (stop_by && core::monotonic_ns() > stop_by) {
      dropped_.fetch_add(batch.second, std::memory_order_relaxed);
      continue;
    }
    std::string body =
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
        "\"value\":{\"stringValue\":";
    policy::append_json_string(body, settings_.service_name);
    body += "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"mcpgate\",\"version\":\"";
    body += mcpgate::version;
    body += "\"},\"spans\":[";
    body += batch.first;
    body += "]}]}]}";
    if (send(body)) {
      exported_.fetch_add(batch.second, std::memory_order_relaxed);
    } else {
      failures_.fetch_add(1, std::memory_order_relaxed);
      dropped_.fetch_add(batch.second, std::memory_order_relaxed);
    }
  }
}

// One POST on a connection of its own, bounded by 2 s each way; true on a 2xx.
bool trace_exporter::send(const std::string& body) {
  const endpoint& at = settings_.collector;
  auto report = [&](const std::string& why) {
    int64_t now = core::monotonic_ns();
    if (now - last_report_ns_ < 10'000'000'000 && last_report_ns_ != 0) return false;
    last_report_ns_ = now;
    core::logf(core::log_level::warn, "mcpgate: tracing: cannot export spans to %s: %s",
               at.to_string().c_str(), why.c_str());
    return false;
  };
  int fd = ::socket(at.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return report(std::strerror(errno));
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_fd{fd};
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&at.addr), at.addr_len) != 0)
    return report(std::string("connect: ") + std::strerror(errno));
  std::string request = "POST " + settings_.path + " HTTP/1.1\r\nHost: " + settings_.host_header +
                        "\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        "Content-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body;
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return report(std::string("send: ") + std::strerror(errno));
    sent += static_cast<size_t>(n);
  }
  char head[512];
  size_t got = 0;
  while (got < 12) {
    ssize_t n = ::recv(fd, head + got, sizeof head - got, 0);
    if (n <= 0) return report("no response");
    got += static_cast<size_t>(n);
  }
  std::string_view status(head, got);
  if (status.substr(0, 9) != "HTTP/1.1 " && status.substr(0, 9) != "HTTP/1.0 ")
    return report("not an HTTP response");
  if (status[9] != '2') return report("HTTP " + std::string(status.substr(9, 3)));
  return true;
}

std::string trace_exporter::render_metrics() const {
  return "# HELP mcpgate_trace_spans_exported_total Spans the collector accepted.\n"
         "# TYPE mcpgate_trace_spans_exported_total counter\n"
         "mcpgate_trace_spans_exported_total " +
         std::to_string(exported_.load(std::memory_order_relaxed)) +
         "\n# HELP mcpgate_trace_spans_dropped_total Spans not exported: the queue was full or "
         "the collector failed.\n"
         "# TYPE mcpgate_trace_spans_dropped_total counter\n"
         "mcpgate_trace_spans_dropped_total " +
         std::to_string(dropped_.load(std::memory_order_relaxed)) +
         "\n# HELP mcpgate_trace_export_failures_total Exports that failed.\n"
         "# TYPE mcpgate_trace_export_failures_total counter\n"
         "mcpgate_trace_export_failures_total " +
         std::to_string(failures_.load(std::memory_order_relaxed)) + "\n";
}

}  // namespace mcpgate::net
