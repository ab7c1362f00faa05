#pragma once

// The federated endpoint's names: a server's tools listed as "<server><separator><tool>", and a
// tools/call of such a name routed to its server with only the name's JSON token rewritten
// (every other byte of the body as the client sent it). Pure functions of their input, which
// is a client's (a call) or a server's (a list): tests/net/federation and a fuzz target read
// them with hostile bytes.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "net/federation/hub.h"

namespace mcpgate::net {

struct routed_call {
  size_t server = 0;  // index into the servers
  std::string tool;   // the server's own name, unescaped
  std::string body;   // the request with params.name rewritten to `tool`
};

// A request naming a tool or a prompt in params.name (tools/call, prompts/get). False, with
// `error` for the client (a JSON-RPC -32602 message), when params.name is missing, not a
// string, or names no server (unknown prefix, no separator, an empty name after it).
bool route_by_name(std::string_view body, std::span<const federated_server> servers,
                   std::string_view separator, routed_call& out, std::string& error);

// Appends the entries of one server's list response `message` (`list`: "tools" or "prompts")
// to `out` as JSON objects, comma-separated (a comma first when `out` is not empty), each named
// "<server><separator><name>" with its other members as the server wrote them (minified);
// entries without a string name are left out. `next_cursor` gets result.nextCursor (empty at
// the last page). False when the message is not a result holding that array.
bool append_prefixed(std::string_view message, std::string_view list, std::string_view server,
                     std::string_view separator, std::string& out, std::string& next_cursor);

}  // namespace mcpgate::net
