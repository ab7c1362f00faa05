#include "net/mcp/request_rules.h"

#include <algorithm>
#include <array>

namespace mcpgate::net {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// "host:port" -> host, port; "[v6]:port" keeps the brackets in host; no port: port empty.
void split_authority(std::string_view authority, std::string_view& host, std::string_view& port) {
  size_t colon = authority.rfind(':');
  bool bracketed = !authority.empty() && authority.front() == '[';
  size_t close = authority.find(']');
  if (colon == std::string_view::npos ||
      (bracketed && close != std::string_view::npos && colon < close)) {
    host = authority;
    port = {};
    return;
  }
  host = authority.substr(0, colon);
  port = authority.substr(colon + 1);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_media(std::string_view content_type, std::string_view media) {
  return equals_ignore_case(trim(content_type.substr(0, content_type.find(';'))), media);
}

bool accepts(std::string_view accept, std::string_view media) {
  // Accept: application/json, text/event-stream;q=0.9 -> match the media range before ';'.
  while (!accept.empty()) {
    size_t comma = accept.find(',');
    std::string_view item = trim(accept.substr(0, comma));
    item = trim(item.substr(0, item.find(';')));
    if (equals_ignore_case(item, media) || item == "*/*") return true;
    if (comma == std::string_view::npos) break;
    accept.remove_prefix(comma + 1);
  }
  return false;
}

// Fields that the gateway or an upstream acts on. With underscores read as dashes (what CGI,
// WSGI and Rack do when they turn fields into variables), none of these names may appear: an
// upstream could take Mcp_Session_Id for the Mcp-Session-Id the gateway checked.
constexpr std::array<std::string_view, 15> checked_fields = {"host",
                                                             "authorization",
                                                             "mcp-session-id",
                                                             "mcp-protocol-version",
                                                             "mcp-method",
                                                             "mcp-name",
                                                             "content-type",
                                                             "content-length",
                                                             "transfer-encoding",
                                                             "origin",
                                                             "last-event-id",
                                                             "accept",
                                                             "connection",
                                                             "expect",
                                                             identity_header};

head_rejection reject(int status, int code, std::string message, std::string_view rule,
                      bool close) {
  head_rejection r;
  r.status = status;
  r.code = code;
  r.message = std::move(message);
  r.rule = rule;
  r.close = close;
  return r;
}

}  // namespace

host_allowlist host_allowlist::for_listener(const endpoint& listen,
                                            const std::vector<std::string>& configured) {
  host_allowlist list;
  list.port_ = listen.port;
  if (!configured.empty()) {
    for (const std::string& entry : configured) list.entries_.push_back(lower(entry));
  } else if (is_loopback(listen)) {
    list.entries_ = {"localhost", "127.0.0.1", "[::1]"};
  } else {
    list.any_ = true;
  }
  return list;
}

bool host_allowlist::allows(std::string_view authority) const {
  if (any_) return true;
  std::string given = lower(authority);
  std::string_view host, port;
  split_authority(given, host, port);
  std::string own_port = std::to_string(port_);
  for (const std::string& entry : entries_) {
    if (entry == given) return true;
    std::string_view entry_host, entry_port;
    split_authority(entry, entry_host, entry_port);
    // An entry without a port stands for the listener's own port (or none, the scheme's).
    if (entry_port.empty() && entry_host == host && (port.empty() || port == own_port)) return true;
  }
  return false;
}

std::optional<head_rejection> check_request_head(const request_head& head, std::string_view path,
                                                 const head_rules& rules, bool& expect_continue) {
  const header_list& headers = head.headers();
  http_method method = head.method();
  bool has_body = head.framing() != body_framing::none;
  expect_continue = false;

  // DNS rebinding: a browser tricked into calling this address still names the attacker's
  // host. Refused before anything else, authentication included.
  if (headers.count("host") > 0 && !rules.hosts.allows(headers.find("host")))
    return reject(403, -32000, "Forbidden: Host not allowed", "host", has_body);
  if (std::find(rules.paths.begin(), rules.paths.end(), path) == rules.paths.end())
    return reject(404, -32601, "not found: this gateway serves MCP only at its endpoint path",
                  "path", has_body);
  if (method != http_method::get && method != http_method::post && method != http_method::delete_) {
    head_rejection r = reject(405, -32000, "Method not allowed.", "method", has_body);
    r.extra_headers = "Allow: GET, POST, DELETE\r\n";
    return r;
  }
  if (headers.count("origin") > 0) {
    std::string_view origin = headers.find("origin");
    bool ok;
    if (!rules.allowed_origins.empty()) {
      ok = std::find(rules.allowed_origins.begin(), rules.allowed_origins.end(), origin) !=
           rules.allowed_origins.end();
    } else if (rules.hosts.allows_any()) {
      ok = true;
    } else {
      size_t scheme = origin.find("://");
      std::string_view name =
          scheme == std::string_view::npos ? std::string_view() : origin.substr(0, scheme);
      ok = (equals_ignore_case(name, "http") || equals_ignore_case(name, "https")) &&
           rules.hosts.allows(origin.substr(scheme + 3));
    }
    if (!ok) return reject(403, -32000, "Forbidden: origin not allowed", "origin", has_body);
  }
  if (method == http_method::post) {
    if (!is_media(headers.find("content-type"), "application/json"))
      return reject(415, -32000, "Unsupported Media Type: Content-Type must be application/json",
                    "content_type", has_body);
    // The specification: the client MUST list both media types in Accept.
    std::string_view accept = headers.find("accept");
    if (!accepts(accept, "application/json") || !accepts(accept, "text/event-stream"))
      return reject(406, -32000,
                    "Not Acceptable: Client must accept both application/json and "
                    "text/event-stream",
                    "accept", has_body);
  }
  // Fields the gateway or the upstream acts on must be unambiguous: with two of them, one
  // side could read the first and the other the last.
  for (std::string_view name :
       {"authorization", "mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-name",
        "content-type", "origin", "last-event-id"}) {
    if (headers.count(name) > 1)
      return reject(400, -32600, "duplicate " + std::string(name) + " header", "headers", true);
  }
  for (const http_header& field : headers) {
    if (equals_ignore_case(field.name, identity_header))
      return reject(400, -32600,
                    "the " + std::string(identity_header) +
                        " header is set by the gateway, never by a client",
                    "headers", has_body);
    if (field.name.find('_') == std::string_view::npos) continue;
    std::string folded = lower(field.name);
    std::replace(folded.begin(), folded.end(), '_', '-');
    if (std::find(checked_fields.begin(), checked_fields.end(), folded) != checked_fields.end())
      return reject(400, -32600,
                    "header " + std::string(field.name) +
                        " refused: with underscores read as dashes it is " + folded +
                        ", which the gateway checks",
                    "headers", has_body);
  }
  // A GET or DELETE has nothing for the policy to decide on; a body would be forwarded
  // unread (an empty Content-Length is not a body).
  if ((method == http_method::get || method == http_method::delete_) &&
      (head.framing() == body_framing::chunked ||
       (head.framing() == body_framing::content_length && head.content_length() > 0)))
    return reject(400, -32600, "GET and DELETE requests carry no body", "body", true);
  if (headers.count("expect") > 0) {
    if (!equals_ignore_case(headers.find("expect"), "100-continue")) {
      head_rejection r = reject(417, 0, {}, "expect", true);
      return r;
    }
    expect_continue = true;
  }
  return std::nullopt;
}

}  // namespace mcpgate::net
