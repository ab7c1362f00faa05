#pragma once

#include <string>
#include <string_view>

namespace mcpgate::net {

// "HTTP/1.1 404 Not Found\r\n"
void append_status_line(std::string& out, int status);
// The reason phrase for a status code ("Unknown" for codes the gateway never sends).
std::string_view reason_phrase(int status);
// {"jsonrpc":"2.0","id":<id>,"error":{"code":<code>,"message":"<message>"}}; id is a raw JSON
// token (empty means null); message is escaped.
void append_jsonrpc_error(std::string& out, std::string_view id, int code,
                          std::string_view message);

}  // namespace mcpgate::net
