#include "net/address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace mcpgate::net {
namespace {

endpoint resolve(const std::string& host, const std::string& port_text, const std::string& what,
                 const std::string& original) {
  if (port_text.empty() || port_text.size() > 5 ||
      port_text.find_first_not_of("0123456789") != std::string::npos)
    throw std::invalid_argument(what + ": expected HOST:PORT with a numeric port, got '" +
                                original + "'");
  unsigned long port = std::stoul(port_text);
  if (port > 65535) throw std::invalid_argument(what + ": port out of range in '" + original + "'");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
  if (rc != 0 || !res)
    throw std::invalid_argument(what + ": cannot resolve host '" + host + "' in '" + original +
                                "': " + gai_strerror(rc));
  endpoint e;
  std::memcpy(&e.addr, res->ai_addr, res->ai_addrlen);
  e.addr_len = res->ai_addrlen;
  e.host = host;
  e.port = static_cast<uint16_t>(port);
  freeaddrinfo(res);
  return e;
}

}  // namespace

std::string endpoint::to_string() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port);
  }
  inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr, buf, sizeof buf);
  std::string out = "[";
  out += buf;
  out += "]:";
  out += std::to_string(port);
  return out;
}

endpoint parse_host_port(const std::string& text, const std::string& what) {
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw std::invalid_argument(what + ": expected [IPV6]:PORT, got '" + text + "'");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0)
      throw std::invalid_argument(what + ": expected HOST:PORT, got '" + text + "'");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  return resolve(host, port, what, text);
}

http_url parse_http_url(const std::string& text, const std::string& what) {
  const std::string scheme = "http://";
  if (text.rfind(scheme, 0) != 0) {
    if (text.rfind("https://", 0) == 0)
      throw std::invalid_argument(what + ": https upstreams are not supported (got '" + text +
                                  "'); put a TLS terminator beside the upstream");
    throw std::invalid_argument(what + ": expected a URL http://HOST[:PORT]/PATH, got '" + text +
                                "'");
  }
  std::string rest = text.substr(scheme.size());
  auto slash = rest.find('/');
  std::string authority = slash == std::string::npos ? rest : rest.substr(0, slash);
  http_url u;
  u.path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (u.path.find_first_of("?# \t\r\n") != std::string::npos)
    throw std::invalid_argument(what +
                                ": the URL path may not carry a query, fragment or "
                                "whitespace, got '" +
                                text + "'");
  if (authority.empty() || authority.find('@') != std::string::npos)
    throw std::invalid_argument(what + ": expected http://HOST[:PORT]/PATH, got '" + text + "'");
  bool has_port = authority.back() != ']' && authority.find(':') != std::string::npos;
  std::string with_port = has_port ? authority : authority + ":80";
  u.where = parse_host_port(with_port, what);
  u.host_header = authority;
  return u;
}

int listen_socket(const endpoint& at, int backlog) {
  int fd = socket(at.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    int err = errno;
    close(fd);
    throw std::runtime_error(std::string("SO_REUSEPORT: ") + std::strerror(err));
  }
  if (bind(fd, reinterpret_cast<const sockaddr*>(&at.addr), at.addr_len) < 0) {
    int err = errno;
    close(fd);
    throw std::runtime_error("cannot listen on " + at.to_string() + ": " + std::strerror(err));
  }
  if (listen(fd, backlog) < 0) {
    int err = errno;
    close(fd);
    throw std::runtime_error("listen on " + at.to_string() + ": " + std::strerror(err));
  }
  return fd;
}

uint16_t bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in&>(ss).sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6&>(ss).sin6_port);
}

}  // namespace mcpgate::net
