#pragma once

// The federated endpoint's names: a server's tools and prompts listed as
// "<server><separator><name>", its resources as "mcp-federated://<server>/<uri>" (templates
// alike), and a request naming one of them (tools/call, prompts/get, resources/read,
// resources/subscribe) routed to its server with only that JSON string token rewritten, every
// other byte of the body as the client sent it. Pure functions of their input, which is a
// client's (a request) or a server's (a list): tests/net/federation and a fuzz target read
// them with hostile bytes.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "net/federation/hub.h"

namespace mcpgate::net {

// The scheme and authority of a federated resource URI: "mcp-federated://<server>/<uri>".
inline constexpr std::string_view federated_uri_prefix = "mcp-federated://";

// Which member of params names the target, and how the server's prefix sits on it.
enum class federated_key { name, uri };

struct routed_call {
  size_t server = 0;  // index into the servers
  std::string tool;   // the server's own name or URI, unescaped
  std::string body;   // the request with params.<name|uri> rewritten to `tool`
};

// False, with `error` for the client (a JSON-RPC -32602 or -32700 message), when the body is
// not one JSON document, params.<key> is missing or not a string, or names no server (an
// unknown prefix, none, or nothing after it).
bool route_request(std::string_view body, federated_key key,
                   std::span<const federated_server> servers, std::string_view separator,
                   routed_call& out, std::string& error);

// Appends the entries of one server's list response `message` (`list`: "tools", "prompts",
// "resources", "resourceTemplates") to `out` as JSON objects, comma-separated (a comma first
// when `out` is not empty), the naming member ("name"; "uri", "uriTemplate") prefixed for
// `server` and every other member as the server wrote it (minified); entries without that
// string member are left out. `next_cursor` gets result.nextCursor (empty at the last page).
// False when the message is not a result holding that array.
bool append_prefixed(std::string_view message, std::string_view list, std::string_view server,
                     std::string_view separator, std::string& out, std::string& next_cursor);

}  // namespace mcpgate::net
