#pragma once

// One HTTP/1.1 request on a blocking connection of its own, for the command line and the
// control plane (an admin listener, a JWKS URL): never on a shard.

#include <cstdint>
#include <string>
#include <string_view>

#include "net/address.h"

namespace mcpgate::tools {

struct http_reply {
  int status = 0;
  std::string body;
};

// Sends `method path` with Host `host`, `extra_headers` (whole "Name: value\r\n" lines) and
// `body` (with its Content-Length when not empty or when the method is POST), then reads the
// answer to the connection's end (Connection: close). Each read and write waits at most
// timeout_ms. Throws std::runtime_error naming the address and the cause.
http_reply http_request(const net::endpoint& at, std::string_view method, std::string_view path,
                        std::string_view host, std::string_view extra_headers,
                        std::string_view body, int64_t timeout_ms);

}  // namespace mcpgate::tools
