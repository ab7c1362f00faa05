#pragma once

// The stages every exchange passes, in order (net/exchange/stage.h says what a stage is):
//
//   head:  transport  Host, Origin, path, method, media types, unambiguous fields
//                     (net/mcp/request_rules.h)                      -> 400/403/404/405/415/...
//          authenticate  the gate: who is calling                    -> 401
//          session    the session token opens for the caller         -> 404 / -32001
//          route      which upstream serves the path
//          forward_head   the upstream request head, from the client's lines
//   body:  parse      JSON-RPC, the whole document validated         -> -32700 / -32600
//          messages   MCP rules of the body: batches per revision, tools/call params,
//                     Mcp-Method/Mcp-Name agreement                  -> -32600 / -32602 / -32020
//          decide     the policy, per message; the audit record's head -> denials
//          audit      the audit log can take the call (fail_closed)  -> 503 / -32060
//
// after which the exchange goes upstream. Extra stages (tests, features) go where
// make_stages() is told.

#include <memory>
#include <vector>

#include "net/exchange/stage.h"

namespace mcpgate::net {

using stage_list = std::vector<std::unique_ptr<stage>>;

// The built-in chain; `extra` body stages run after decide, before audit (in the order given).
stage_list make_stages(stage_list extra = {});

}  // namespace mcpgate::net
