#pragma once

// The gateway's own answer to a denied or rate-limited tools/call; the call is never
// forwarded.
//
// deny_style::result (default), as the market's gateways do, so the agent's model reads why:
//   {"jsonrpc":"2.0","id":<id>,"result":{"content":[{"type":"text","text":"[POLICY DENIED]
//   <message>"}],"isError":true,"structuredContent":<info>,"_meta":<info>}}
// deny_style::error:
//   {"jsonrpc":"2.0","id":<id>,"error":{"code":-32010|-32011,"message":"[POLICY DENIED]
//   <message>","data":<info>}}
// where <info> is {"decision":"denied"|"rate_limited","tool":..., then "rule":... for a
// denial, or "counter":...,"window":...,"max":...,"retry_after_ms":... for a rate limit}.

#include <string>
#include <string_view>

#include "policy/access_config.h"
#include "policy/engine.h"

namespace mcpgate::policy {

// JSON-RPC error codes, in the implementation-defined server range (-32000 to -32099).
inline constexpr int kDeniedErrorCode = -32010;
inline constexpr int kRateLimitedErrorCode = -32011;

// Writes the reply body for a decision that is not allowed into `out` (cleared first; reuse
// it to avoid allocating). `id_token` is the request's raw JSON id (a number or string
// token, copied as is); empty for a notification, which gets no body (HTTP 202): `out` is
// left empty.
void write_denial(const decision& d, std::string_view id_token, deny_style style, std::string& out);

}  // namespace mcpgate::policy
