#include "policy/denial.h"

#include "policy/json_writer.h"

namespace mcpgate::policy {

namespace {

constexpr std::string_view kPrefix = "[POLICY DENIED] ";

void append_info(std::string& out, const decision& d) {
  out += "{\"decision\":";
  append_json_string(out, verdict_name(d.outcome));
  out += ",\"tool\":";
  append_json_string(out, d.tool);
  if (d.outcome == verdict::rate_limited) {
    out += ",\"counter\":";
    append_json_string(out, d.rule);
    out += ",\"window\":";
    append_json_string(out, window_name(d.window));
    out += ",\"max\":";
    append_json_int(out, d.max);
    out += ",\"retry_after_ms\":";
    append_json_int(out, d.retry_after_ms);
  } else {
    out += ",\"rule\":";
    append_json_string(out, d.rule);
  }
  out += '}';
}

// The message goes through a reused buffer so it can be escaped in one pass.
void append_text(std::string& out, const decision& d) {
  thread_local std::string text;
  text.assign(kPrefix);
  append_message(text, d);
  append_json_string(out, text);
}

}  // namespace

void write_denial(const decision& d, std::string_view id_token, deny_style style,
                  std::string& out) {
  out.clear();
  if (id_token.empty()) return;
  out += "{\"jsonrpc\":\"2.0\",\"id\":";
  out.append(id_token);
  if (style == deny_style::error) {
    out += ",\"error\":{\"code\":";
    append_json_int(out,
                    d.outcome == verdict::rate_limited ? kRateLimitedErrorCode : kDeniedErrorCode);
    out += ",\"message\":";
    append_text(out, d);
    out += ",\"data\":";
    append_info(out, d);
    out += "}}";
    return;
  }
  out += ",\"result\":{\"content\":[{\"type\":\"text\",\"text\":";
  append_text(out, d);
  out += "}],\"isError\":true,\"structuredContent\":";
  append_info(out, d);
  out += ",\"_meta\":";
  append_info(out, d);
  out += "}}";
}

}  // namespace mcpgate::policy
