#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mcpgate::net {

// A resolved TCP endpoint. Resolution happens at configuration time (control plane), never on
// a shard thread.
struct endpoint {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string host;  // as written, for messages and the Host header
  uint16_t port = 0;

  std::string to_string() const;
};

// An upstream given as a URL: http://host[:port]/path.
struct http_url {
  endpoint where;
  std::string host_header;  // host[:port] as the upstream expects in Host
  std::string path;         // at least "/"
};

// "HOST:PORT" or "[V6]:PORT". Throws std::invalid_argument naming `what` (the flag or key) and
// the bad value.
endpoint parse_host_port(const std::string& text, const std::string& what);
// Only http:// is accepted: TLS to upstreams is out of scope (see README, limits).
http_url parse_http_url(const std::string& text, const std::string& what);

// `count` non-blocking listening sockets on one address, one per shard, in a SO_REUSEPORT group
// that only they receive connections from: a plain bind first proves the address free (a busy
// one fails with "address already in use" naming it), and a reuseport program sends every
// connection to one of these sockets, so a process of the same user that joins the group later
// gets none. Port 0 picks one free port for all of them. Control plane; throws
// std::runtime_error naming the address.
std::vector<int> listen_group(endpoint at, unsigned count, int backlog);
// 127.0.0.0/8 or ::1.
bool is_loopback(const endpoint& at);
// Where this process connects to reach its own listener bound at `listen` with `port`: the
// same address, or loopback when it is the wildcard (0.0.0.0, ::).
endpoint self_address(endpoint listen, uint16_t port);

// A listening Unix socket in the abstract namespace (nothing on disk to clean up), named
// "mcpgate-<what>-<pid>-<random>", for a thread of the gateway's own that the shards reach as
// an upstream (a stdio bridge, the federation hub); `at.host` is `what`. fd -1 and `error` on
// failure. Any local process may connect to an abstract socket: the accepting side checks
// SO_PEERCRED.
struct internal_socket {
  int fd = -1;
  endpoint at;
  std::string error;
};
internal_socket bind_internal_socket(const std::string& what, bool nonblocking);
// The port a bound socket got (for port 0).
uint16_t bound_port(int fd);

}  // namespace mcpgate::net
