#include "tools/mcpgate/http_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "net/http/chunked.h"
#include "net/http/parser.h"

namespace mcpgate::tools {

http_reply http_request(const net::endpoint& at, std::string_view method, std::string_view path,
                        std::string_view host, std::string_view extra_headers,
                        std::string_view body, int64_t timeout_ms) {
  int fd = ::socket(at.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_it{fd};
  timeval tv{static_cast<time_t>(timeout_ms / 1000),
             static_cast<suseconds_t>((timeout_ms % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&at.addr), at.addr_len) != 0)
    throw std::runtime_error("cannot connect to " + at.to_string() + ": " + std::strerror(errno));
  std::string out;
  out.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: ").append(host);
  out += "\r\nConnection: close\r\n";
  out += extra_headers;
  if (!body.empty() || method == "POST")
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += "\r\n";
  out += body;
  for (size_t sent = 0; sent < out.size();) {
    ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) throw std::runtime_error("send to " + at.to_string() + ": " + std::strerror(errno));
    sent += static_cast<size_t>(n);
  }
  std::string in;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("no answer from " + at.to_string() + ": " + std::strerror(errno));
    }
    in.append(buf, static_cast<size_t>(n));
    if (in.size() > (64u << 20)) throw std::runtime_error("the answer is larger than 64 MiB");
  }
  net::response_head head = net::parse_response_head(in, net::http_limits{}, false);
  if (head.status() != net::parse_status::complete)
    throw std::runtime_error(at.to_string() + " sent something that is not an HTTP response");
  std::string rest = in.substr(head.head_length());
  if (head.framing() == net::body_framing::content_length && rest.size() > head.content_length())
    rest.resize(head.content_length());
  if (head.framing() == net::body_framing::chunked) {
    net::http_limits limits;
    limits.max_body = 64u << 20;
    net::chunked_decoder chunks(limits);
    std::string decoded;
    chunks.feed(rest, &decoded);
    if (!chunks.done())
      throw std::runtime_error(at.to_string() + " sent a chunked body that does not end well");
    rest = std::move(decoded);
  }
  return {head.status_code(), std::move(rest)};
}

}  // namespace mcpgate::tools
