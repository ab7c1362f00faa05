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

// GET of an https:// URL, the server's certificate verified against `ca_file` (PEM), or the
// system's store when empty, for the URL's host name or IP address. Throws std::runtime_error
// naming the URL and the cause (the verification error included).
http_reply https_get(const std::string& url, const std::string& ca_file, int64_t timeout_ms);

}  // namespace mcpgate::tools
