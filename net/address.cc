#include "net/address.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include "core/random.h"

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

namespace {

void set_port(endpoint& at, uint16_t port) {
  at.port = port;
  if (at.addr.ss_family == AF_INET)
    reinterpret_cast<sockaddr_in&>(at.addr).sin_port = htons(port);
  else
    reinterpret_cast<sockaddr_in6&>(at.addr).sin6_port = htons(port);
}

[[noreturn]] void fail_listen(int fd, const endpoint& at, const char* step, int err) {
  if (fd >= 0) close(fd);
  throw std::runtime_error(std::string(step) + " " + at.to_string() + ": " +
                           (err == EADDRINUSE ? "address already in use" : std::strerror(err)));
}

int bound_socket(const endpoint& at, bool reuseport) {
  int fd = socket(at.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
    fail_listen(fd, at, "SO_REUSEPORT on", errno);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&at.addr), at.addr_len) < 0)
    fail_listen(fd, at, "cannot listen on", errno);
  return fd;
}

// Connections go only to the group's first `count` sockets, which are ours: the kernel runs this
// program for each new connection and uses its result as the index into the group, in the order
// the sockets started listening. A socket another process adds later gets an index past them.
void close_group(int fd, unsigned count, const endpoint& at) {
  sock_filter code[] = {
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_RANDOM)},
      {BPF_ALU | BPF_MOD | BPF_K, 0, 0, count},
      {BPF_RET | BPF_A, 0, 0, 0},
  };
  sock_fprog program{static_cast<unsigned short>(std::size(code)), code};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) < 0)
    fail_listen(-1, at, "SO_ATTACH_REUSEPORT_CBPF on", errno);
}

// The inodes of every socket listening on `at`, from /proc/net/tcp or tcp6.
std::vector<ino_t> listening_inodes(const endpoint& at) {
  bool v4 = at.addr.ss_family == AF_INET;
  std::ifstream table(v4 ? "/proc/net/tcp" : "/proc/net/tcp6");
  char want[40];
  if (v4) {
    uint32_t ip = reinterpret_cast<const sockaddr_in&>(at.addr).sin_addr.s_addr;
    std::snprintf(want, sizeof want, "%08X:%04X", ip, at.port);
  } else {
    const auto& ip6 = reinterpret_cast<const sockaddr_in6&>(at.addr).sin6_addr;
    uint32_t words[4];
    std::memcpy(words, &ip6, sizeof words);
    std::snprintf(want, sizeof want, "%08X%08X%08X%08X:%04X", words[0], words[1], words[2],
                  words[3], at.port);
  }
  std::vector<ino_t> inodes;
  std::string line;
  std::getline(table, line);  // the header
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout;
    unsigned long inode = 0;
    fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
        timeout >> inode;
    if (state == "0A" && local == want) inodes.push_back(static_cast<ino_t>(inode));
  }
  return inodes;
}

ino_t inode_of(int fd) {
  struct stat st {};
  fstat(fd, &st);
  return st.st_ino;
}

}  // namespace

std::vector<int> listen_group(endpoint at, unsigned count, int backlog) {
  // A plain bind first: it fails while anything holds the address, SO_REUSEPORT group or not,
  // so a second gateway started on a busy port says so instead of joining the group.
  int probe = bound_socket(at, false);
  set_port(at, bound_port(probe));
  close(probe);
  std::vector<int> fds;
  try {
    for (unsigned i = 0; i < count; ++i) {
      int fd = bound_socket(at, true);
      fds.push_back(fd);
      if (listen(fd, backlog) < 0) fail_listen(-1, at, "listen on", errno);
    }
    close_group(fds[0], count, at);
    // Between the probe and our binds another process could have joined (or made) the group;
    // once the program is attached, whoever joins later receives nothing.
    std::vector<ino_t> ours;
    for (int fd : fds) ours.push_back(inode_of(fd));
    for (ino_t inode : listening_inodes(at)) {
      if (std::find(ours.begin(), ours.end(), inode) == ours.end())
        throw std::runtime_error("cannot listen on " + at.to_string() +
                                 ": address already in use (another process listens on it)");
    }
  } catch (...) {
    for (int fd : fds) close(fd);
    throw;
  }
  return fds;
}

bool is_loopback(const endpoint& at) {
  if (at.addr.ss_family == AF_INET) {
    uint32_t ip = ntohl(reinterpret_cast<const sockaddr_in&>(at.addr).sin_addr.s_addr);
    return (ip >> 24) == 127;
  }
  if (at.addr.ss_family != AF_INET6) return false;
  const in6_addr& ip6 = reinterpret_cast<const sockaddr_in6&>(at.addr).sin6_addr;
  return IN6_IS_ADDR_LOOPBACK(&ip6);
}

uint16_t bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in&>(ss).sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6&>(ss).sin6_port);
}

endpoint self_address(endpoint listen, uint16_t port) {
  listen.port = port;
  if (listen.addr.ss_family == AF_INET) {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&listen.addr);
    in4->sin_port = htons(port);
    if (in4->sin_addr.s_addr == htonl(INADDR_ANY)) in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else if (listen.addr.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&listen.addr);
    in6->sin6_port = htons(port);
    if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) in6->sin6_addr = in6addr_loopback;
  }
  return listen;
}

internal_socket bind_internal_socket(const std::string& what, bool nonblocking) {
  internal_socket b;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) {
    b.error = what + ": socket: " + std::strerror(errno);
    return b;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string name =
      "mcpgate-" + what + "-" + std::to_string(::getpid()) + "-" + core::random_hex(16);
  std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] == 0: abstract
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 4096) != 0) {
    b.error = what + ": bind: " + std::strerror(errno);
    ::close(fd);
    return b;
  }
  b.fd = fd;
  std::memcpy(&b.at.addr, &addr, len);
  b.at.addr_len = len;
  b.at.host = what;
  return b;
}

}  // namespace mcpgate::net
