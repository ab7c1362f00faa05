#include "net/approval/admin_routes.h"

#include <simdjson.h>

#include "net/http/writer.h"
#include "policy/json_writer.h"

namespace mcpgate::net {
namespace {

constexpr std::string_view prefix = "/approvals/";
constexpr size_t max_by = 128;
constexpr size_t max_reason = 1024;

approval_http_reply error(int status, std::string_view message,
                          std::string_view extra_headers = {}) {
  approval_http_reply r;
  r.status = status;
  r.body = "{\"error\":";
  policy::append_json_string(r.body, message);
  r.body += "}";
  r.extra_headers = extra_headers;
  return r;
}

bool is_json(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
  return equals_ignore_case(media, "application/json");
}

struct decision_body {
  std::string by;
  std::string reason;
  int64_t for_ms = 0;
};

// {"by": "...", "reason": "...", "for_ms": N}; the error names the key and what was wrong.
std::optional<std::string> parse_decision(std::string_view body, bool approve, int64_t max_for_ms,
                                          decision_body& out) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element root;
  if (parser.parse(padded).get(root) != simdjson::SUCCESS)
    return "the body is not JSON; send {\"by\": \"<your name>\", \"reason\": \"...\"}";
  simdjson::dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS)
    return "the body must be a JSON object {\"by\", \"reason\", \"for_ms\"}";
  bool seen_by = false, seen_reason = false, seen_for = false;
  for (simdjson::dom::key_value_pair field : object) {
    std::string_view key = field.key;
    bool* seen = key == "by"       ? &seen_by
                 : key == "reason" ? &seen_reason
                 : key == "for_ms" ? &seen_for
                                   : nullptr;
    if (!seen)
      return "unknown key \"" + std::string(key) + "\" (known: by, reason" +
             (approve ? ", for_ms)" : ")");
    if (*seen) return "key \"" + std::string(key) + "\" appears twice";
    *seen = true;
    if (key == "for_ms") {
      int64_t v = 0;
      if (!approve) return "for_ms applies to an approval only";
      if (field.value.get_int64().get(v) != simdjson::SUCCESS || v < 0 || v > max_for_ms)
        return "for_ms: expected an integer from 0 to " + std::to_string(max_for_ms);
      out.for_ms = v;
      continue;
    }
    std::string_view text;
    if (field.value.get_string().get(text) != simdjson::SUCCESS)
      return "\"" + std::string(key) + "\": expected a string";
    (key == "by" ? out.by : out.reason).assign(text);
  }
  if (out.by.empty()) return "\"by\": say who decides (a non-empty string)";
  if (out.by.size() > max_by) return "\"by\": at most " + std::to_string(max_by) + " bytes";
  if (out.reason.size() > max_reason)
    return "\"reason\": at most " + std::to_string(max_reason) + " bytes";
  return std::nullopt;
}

// A browser sends Origin on a POST; it must be this listener (the Host it asked for).
bool same_origin(const request_head& head) {
  if (head.headers().count("origin") == 0) return true;
  std::string_view origin = head.headers().find("origin");
  std::string_view host = head.headers().find("host");
  for (std::string_view scheme : {"http://", "https://"})
    if (origin.size() == scheme.size() + host.size() && origin.substr(0, scheme.size()) == scheme &&
        equals_ignore_case(origin.substr(scheme.size()), host))
      return true;
  return false;
}

}  // namespace

bool is_approval_path(std::string_view path) {
  return path == "/approvals" || path.substr(0, prefix.size()) == prefix ||
         is_public_approval_path(path);
}

bool is_public_approval_path(std::string_view path) {
  return path == "/ui/approvals";
}

approval_http_reply approval_route(approval_registry& registry, const request_head& head,
                                   std::string_view path, std::string_view body) {
  std::string_view method = head.method_text();
  bool get = method == "GET" || method == "HEAD";
  if (path == "/ui/approvals") {
    if (!get) return error(405, "use GET", "Allow: GET, HEAD\r\n");
    approval_http_reply r;
    r.content_type = "text/html; charset=utf-8";
    r.body = approvals_page();
    // The page runs only its own script and talks only to this listener.
    r.extra_headers =
        "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; "
        "form-action 'none'; base-uri 'none'\r\nX-Content-Type-Options: nosniff\r\n"
        "Referrer-Policy: no-referrer\r\n";
    return r;
  }
  if (path == "/approvals") {
    if (!get) return error(405, "use GET", "Allow: GET, HEAD\r\n");
    approval_http_reply r;
    r.body = registry.pending_json();
    return r;
  }
  std::string_view rest = path.substr(prefix.size());
  if (rest == "events") {
    if (!get) return error(405, "use GET", "Allow: GET, HEAD\r\n");
    approval_http_reply r;
    r.content_type = "text/event-stream";
    r.stream = true;
    return r;
  }
  size_t slash = rest.find('/');
  std::string_view id = rest.substr(0, slash);
  std::string_view action = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  if (id.empty() || (action != "approve" && action != "deny"))
    return error(404, "no such route; use /approvals/<id>/approve or /approvals/<id>/deny");
  if (method != "POST") return error(405, "use POST", "Allow: POST\r\n");
  if (!is_json(head.headers().find("content-type")))
    return error(415, "send the decision as Content-Type: application/json");
  if (!same_origin(head)) return error(403, "cross-origin decisions are refused");
  bool approve = action == "approve";
  decision_body d;
  if (std::optional<std::string> why =
          parse_decision(body, approve, registry.limits().max_standing_ms, d))
    return error(400, *why);
  switch (registry.decide(id, approve, d.by, d.reason, d.for_ms)) {
    case approval_registry::decide_status::decided: {
      approval_http_reply r;
      r.body = "{\"id\":";
      policy::append_json_string(r.body, id);
      r.body += ",\"state\":";
      r.body += approve ? "\"approved\"" : "\"denied\"";
      r.body += "}";
      return r;
    }
    case approval_registry::decide_status::already_decided:
      return error(409, "approval " + std::string(id) + " was already decided");
    case approval_registry::decide_status::not_found:
      break;
  }
  return error(
      404, "no pending approval " + std::string(id) + " (decided, timed out, or its client left)");
}

}  // namespace mcpgate::net
