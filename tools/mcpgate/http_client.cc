#include "tools/mcpgate/http_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "net/http/chunked.h"
#include "net/http/parser.h"

namespace mcpgate::tools {

namespace {

// An answer read to the connection's end: its status and its body, de-chunked.
http_reply parse_answer(const std::string& in, const std::string& from) {
  net::response_head head = net::parse_response_head(in, net::http_limits{}, false);
  if (head.status() != net::parse_status::complete)
    throw std::runtime_error(from + " sent something that is not an HTTP response");
  std::string rest = in.substr(head.head_length());
  if (head.framing() == net::body_framing::content_length) {
    if (rest.size() < head.content_length())
      throw std::runtime_error(from + " ended its answer before its Content-Length");
    rest.resize(head.content_length());
  }
  if (head.framing() == net::body_framing::chunked) {
    net::http_limits limits;
    limits.max_body = 64u << 20;
    net::chunked_decoder chunks(limits);
    std::string decoded;
    chunks.feed(rest, &decoded);
    if (!chunks.done())
      throw std::runtime_error(from + " sent a chunked body that does not end well");
    rest = std::move(decoded);
  }
  return {head.status_code(), std::move(rest)};
}

std::string ssl_error() {
  unsigned long e = ERR_get_error();
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  return e ? text : "unknown TLS error";
}

}  // namespace

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
  return parse_answer(in, at.to_string());
}

http_reply https_get(const std::string& url, const std::string& ca_file, int64_t timeout_ms) {
  // https://HOST[:PORT]/PATH; an IPv6 host in brackets.
  if (url.rfind("https://", 0) != 0) throw std::runtime_error(url + ": expected https://");
  std::string rest = url.substr(8);
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string host = authority, port = "443";
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos) throw std::runtime_error(url + ": an unclosed [");
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      port = authority.substr(close + 2);
  } else if (size_t colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) throw std::runtime_error(url + ": no host");

  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
    throw std::runtime_error(url + ": cannot resolve " + host + ": " + gai_strerror(rc));
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct cleanup {
    int fd;
    addrinfo* found;
    SSL_CTX* ctx = nullptr;
    SSL* ssl = nullptr;
    ~cleanup() {
      SSL_free(ssl);
      SSL_CTX_free(ctx);
      if (fd >= 0) ::close(fd);
      ::freeaddrinfo(found);
    }
  } c{fd, found};
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  timeval tv{static_cast<time_t>(timeout_ms / 1000),
             static_cast<suseconds_t>((timeout_ms % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, found->ai_addr, found->ai_addrlen) != 0)
    throw std::runtime_error(url + ": cannot connect: " + std::strerror(errno));

  c.ctx = SSL_CTX_new(TLS_client_method());
  if (!c.ctx) throw std::runtime_error(url + ": " + ssl_error());
  SSL_CTX_set_min_proto_version(c.ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(c.ctx, SSL_VERIFY_PEER, nullptr);
  if (ca_file.empty() ? SSL_CTX_set_default_verify_paths(c.ctx) != 1
                      : SSL_CTX_load_verify_locations(c.ctx, ca_file.c_str(), nullptr) != 1)
    throw std::runtime_error(url + ": cannot load the CA " +
                             (ca_file.empty() ? std::string("store") : ca_file) + ": " +
                             ssl_error());
  c.ssl = SSL_new(c.ctx);
  SSL_set_fd(c.ssl, fd);
  unsigned char ip[16];
  bool is_ip =
      ::inet_pton(AF_INET, host.c_str(), ip) == 1 || ::inet_pton(AF_INET6, host.c_str(), ip) == 1;
  X509_VERIFY_PARAM* param = SSL_get0_param(c.ssl);
  if (is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    SSL_set_tlsext_host_name(c.ssl, host.c_str());
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
  }
  if (SSL_connect(c.ssl) != 1) {
    long verify = SSL_get_verify_result(c.ssl);
    std::string why = verify != X509_V_OK ? X509_verify_cert_error_string(verify) : ssl_error();
    throw std::runtime_error(url + ": TLS handshake failed: " + why);
  }
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + authority +
                        "\r\nConnection: close\r\nAccept: application/json\r\n\r\n";
  if (SSL_write(c.ssl, request.data(), static_cast<int>(request.size())) <= 0)
    throw std::runtime_error(url + ": " + ssl_error());
  std::string in;
  char buf[16384];
  for (;;) {
    int n = SSL_read(c.ssl, buf, sizeof buf);
    if (n > 0) {
      in.append(buf, static_cast<size_t>(n));
      if (in.size() > (64u << 20)) throw std::runtime_error(url + ": larger than 64 MiB");
      continue;
    }
    int e = SSL_get_error(c.ssl, n);
    // The end, with close_notify or without: the framing says whether the body is whole.
    if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) break;
    throw std::runtime_error(url + ": " + ssl_error());
  }
  return parse_answer(in, url);
}

}  // namespace mcpgate::tools
