#include "bench/mcpbench/result_json.h"

#include <cstdio>

#include "policy/json_writer.h"

namespace mcpgate::bench {
namespace {

void append_number(std::string& out, double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  out += buf;
}

void append_us(std::string& out, std::uint64_t ns) {
  append_number(out, static_cast<double>(ns) / 1000.0, 3);
}

std::string percentile_key(double p) {
  // 99.9 -> "p99_9": keys that need no quoting in jq or gnuplot scripts.
  char buf[32];
  std::snprintf(buf, sizeof buf, "p%g", p);
  std::string key = buf;
  for (auto& ch : key)
    if (ch == '.') ch = '_';
  return key;
}

}  // namespace

std::string result_json(const load_config& config, const load_result& result,
                        std::string_view label) {
  std::string out = "{\"tool\":\"mcpbench\",\"label\":";
  policy::append_json_string(out, label);
  out += ",\"target\":";
  policy::append_json_string(
      out, "http://" + config.host + ":" + std::to_string(config.port) + config.path);
  out += ",\"mode\":";
  out += config.rate > 0 ? "\"open\"" : "\"closed\"";
  out += ",\"connections\":" + std::to_string(config.connections);
  out += ",\"threads\":" + std::to_string(config.threads);
  out += ",\"rate\":";
  append_number(out, config.rate, 1);
  out += ",\"deny_share\":";
  append_number(out, config.deny_share, 3);
  out += ",\"argument_bytes\":" + std::to_string(config.argument_bytes);
  out += ",\"duration_s\":";
  append_number(out, std::chrono::duration<double>(result.measured).count(), 3);
  out += ",\"requests\":" + std::to_string(result.requests());
  out += ",\"ok\":" + std::to_string(result.ok);
  out += ",\"denied\":" + std::to_string(result.denied);
  out += ",\"offered\":" + std::to_string(result.offered);
  out += ",\"sessions\":" + std::to_string(result.sessions);
  out += ",\"reconnects\":" + std::to_string(result.reconnects);
  out += ",\"throughput_rps\":";
  append_number(out, result.throughput(), 1);
  out += ",\"errors\":{\"total\":" + std::to_string(result.error_total());
  for (std::size_t k = 0; k < error_kind_count; ++k) {
    out += ",\"";
    out += error_kind_name(static_cast<error_kind>(k));
    out += "\":" + std::to_string(result.errors[k]);
  }
  const auto& h = result.latency;
  out += "},\"latency_us\":{\"min\":";
  append_us(out, h.min());
  out += ",\"mean\":";
  append_number(out, h.mean() / 1000.0, 3);
  for (double p : summary_percentiles) {
    out += ",\"" + percentile_key(p) + "\":";
    append_us(out, h.percentile(p));
  }
  out += ",\"max\":";
  append_us(out, h.max());
  out += "},\"percentiles\":[";
  bool first = true;
  for (double p : spectrum_percentiles) {
    if (!first) out += ',';
    first = false;
    out += '[';
    append_number(out, p, 3);
    out += ',';
    append_us(out, h.percentile(p));
    out += ']';
  }
  out += "]}\n";
  return out;
}

std::string result_summary(const load_config& config, const load_result& result) {
  const auto& h = result.latency;
  char buf[512];
  std::snprintf(
      buf, sizeof buf,
      "%s loop, %u connections: %llu replies (%llu ok, %llu denied, %llu errors) in "
      "%.2f s = %.0f req/s; latency us p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f",
      config.rate > 0 ? "open" : "closed", config.connections,
      static_cast<unsigned long long>(result.requests()),
      static_cast<unsigned long long>(result.ok), static_cast<unsigned long long>(result.denied),
      static_cast<unsigned long long>(result.error_total()),
      std::chrono::duration<double>(result.measured).count(), result.throughput(),
      static_cast<double>(h.percentile(50)) / 1000.0,
      static_cast<double>(h.percentile(90)) / 1000.0,
      static_cast<double>(h.percentile(99)) / 1000.0,
      static_cast<double>(h.percentile(99.9)) / 1000.0, static_cast<double>(h.max()) / 1000.0);
  std::string out = buf;
  if (result.error_total() > 0) {
    out += "\nerrors:";
    for (std::size_t k = 0; k < error_kind_count; ++k) {
      if (result.errors[k] == 0) continue;
      out += ' ';
      out += error_kind_name(static_cast<error_kind>(k));
      out += '=' + std::to_string(result.errors[k]);
    }
  }
  return out;
}

}  // namespace mcpgate::bench
