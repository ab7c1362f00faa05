#include "net/admin/server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <openssl/crypto.h>

#include <algorithm>
#include <vector>

#include "net/approval/admin_routes.h"
#include "net/http/parser.h"
#include "net/http/writer.h"
#include "policy/identity.h"

namespace mcpgate::net {
namespace {

struct response {
  int status = 200;
  std::string_view content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string_view extra_headers;  // complete "Name: value\r\n" lines
};

std::string serialize(const response& r) {
  std::string out;
  append_status_line(out, r.status);
  out += "Content-Type: ";
  out += r.content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(r.body.size());
  out += "\r\nCache-Control: no-store\r\nConnection: close\r\n";
  out += r.extra_headers;
  out += "\r\n";
  out += r.body;
  return out;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The listener's address for the Host rules; a name that does not parse as an address (a host
// name) counts as not loopback, so every Host is then accepted unless allowed_hosts says.
endpoint listener_endpoint(const std::string& host, uint16_t port) {
  try {
    endpoint at = parse_host_port((host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                                      ":" + std::to_string(port),
                                  "admin");
    return at;
  } catch (const std::exception&) {
    return endpoint{};
  }
}

response method_not_allowed(std::string_view allow) {
  response r{405, "text/plain; charset=utf-8", "method not allowed\n", {}};
  r.extra_headers = allow;
  return r;
}

}  // namespace

admin_server::start_result admin_server::start(const admin_options& options,
                                               admin_handlers handlers) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string port_text = std::to_string(options.port);
  std::string where = options.host + ":" + port_text;
  int rc = getaddrinfo(options.host.c_str(), port_text.c_str(), &hints, &found);
  if (rc != 0) return {nullptr, "admin listener " + where + ": " + gai_strerror(rc)};
  int fd = -1;
  std::string error;
  for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      error = std::strerror(errno);
      continue;
    }
    // SO_REUSEADDR for quick restarts; deliberately not SO_REUSEPORT, so that a second gateway
    // on the same admin port fails loudly instead of splitting the scrapes.
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 64) != 0) {
      error = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) return {nullptr, "admin listener " + where + ": " + error};
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  uint16_t port = bound.ss_family == AF_INET6
                      ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    close(fd);
    return {nullptr, std::string("admin listener: eventfd: ") + std::strerror(errno)};
  }
  std::unique_ptr<admin_server> server(
      new admin_server(options, std::move(handlers), fd, wake, port));
  server->thread_ = std::thread([s = server.get()] { s->run(); });
  return {std::move(server), {}};
}

admin_server::admin_server(admin_options options, admin_handlers handlers, int listen_fd,
                           int wake_fd, uint16_t port)
    : options_(std::move(options)),
      handlers_(std::move(handlers)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      port_(port),
      hosts_(host_allowlist::for_listener(listener_endpoint(options_.host, port),
                                          options_.allowed_hosts)) {}

admin_server::~admin_server() {
  stop();
}

void admin_server::stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true, std::memory_order_release);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
  thread_.join();
  close(listen_fd_);
  close(wake_fd_);
}

namespace {

// One client of the admin listener: its request as it arrives, then the answer going out (and,
// for /approvals/events, the events after it, for as long as it stays).
struct admin_conn {
  int fd = -1;
  std::string in;
  size_t resume = 0;
  std::string out;
  size_t sent = 0;
  bool answered = false;
  bool streaming = false;
  uint64_t cursor = 0;       // streaming: the last approval event it has
  int64_t keepalive_ms = 0;  // streaming: when a quiet stream gets a comment line
  int64_t deadline_ms = 0;   // 0: close now
};

constexpr int64_t never = INT64_MAX;

}  // namespace

// Every connection is served concurrently from one poll loop: an idle or slow client holds
// only its own slot (and is cut off at request_timeout_ms), never the others' answers. An
// event stream stays until its reader leaves or falls max_stream_backlog behind.
void admin_server::run() {
  pthread_setname_np(pthread_self(), "mcpgate-admin");
  std::vector<admin_conn> conns;
  std::vector<pollfd> fds;
  http_limits limits;
  limits.max_head = options_.max_request_bytes;
  limits.max_body = options_.max_request_bytes;
  approval_registry* approvals = handlers_.approvals;
  int events_fd = approvals ? approvals->event_fd() : -1;
  auto finish = [&](admin_conn& c, std::string reply) {
    c.out = std::move(reply);
    c.sent = 0;
    c.answered = true;
  };
  auto streams = [&] {
    size_t n = 0;
    for (const admin_conn& c : conns) n += c.streaming;
    return n;
  };
  while (!stopping_.load(std::memory_order_acquire)) {
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    fds.push_back({events_fd, static_cast<short>(events_fd >= 0 ? POLLIN : 0), 0});
    int64_t now = now_ms();
    int64_t next_deadline = never;
    for (const admin_conn& c : conns) {
      bool sending = c.answered && c.sent < c.out.size();
      fds.push_back({c.fd, static_cast<short>(sending ? POLLOUT : POLLIN), 0});
      next_deadline = std::min(next_deadline, c.streaming ? c.keepalive_ms : c.deadline_ms);
    }
    int timeout =
        next_deadline == never ? -1 : static_cast<int>(std::max<int64_t>(0, next_deadline - now));
    if (poll(fds.data(), fds.size(), timeout) < 0) continue;  // EINTR
    if (fds[0].revents) break;
    now = now_ms();
    if (fds[2].revents & POLLIN) {
      uint64_t n;
      [[maybe_unused]] ssize_t r = read(events_fd, &n, sizeof n);
      for (admin_conn& c : conns)
        if (c.streaming) c.cursor = approvals->events_since(c.cursor, c.out);
    }
    for (size_t i = 0; i < conns.size(); ++i) {
      admin_conn& c = conns[i];
      short revents = fds[i + 3].revents;
      if (c.streaming) {
        if (revents & (POLLIN | POLLHUP | POLLERR)) {
          char buf[512];
          ssize_t n = recv(c.fd, buf, sizeof buf, 0);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) c.deadline_ms = 0;  // gone
        }
        if (now >= c.keepalive_ms) {
          c.out += ": keepalive\n\n";
          c.keepalive_ms = now + options_.keepalive_interval_ms;
        }
        if (c.out.size() - c.sent > options_.max_stream_backlog) c.deadline_ms = 0;
      }
      if (!c.answered && (revents & (POLLIN | POLLHUP | POLLERR))) {
        bool eof = false;
        char buf[4096];
        for (;;) {
          ssize_t n = recv(c.fd, buf, sizeof buf, 0);
          if (n > 0) {
            c.in.append(buf, static_cast<size_t>(n));
            if (c.in.size() > 2 * options_.max_request_bytes) break;
            continue;
          }
          if (n == 0)
            eof = true;  // a client may half-close after its request
          else if (errno != EAGAIN && errno != EINTR)
            c.deadline_ms = 0;  // gone
          break;
        }
        request_head head = parse_request_head(c.in, limits, c.resume);
        if (head.status() == parse_status::error) {
          finish(c, serialize({head.error_status(),
                               "text/plain; charset=utf-8",
                               std::string(head.error_reason()) + "\n",
                               {}}));
        } else if (head.status() == parse_status::incomplete) {
          c.resume = head.resume_offset();
        } else if (head.framing() == body_framing::chunked) {
          finish(c, serialize({411, "text/plain; charset=utf-8", "send a Content-Length\n", {}}));
        } else {
          size_t body_length =
              head.framing() == body_framing::content_length ? head.content_length() : 0;
          size_t need = head.head_length() + body_length;
          if (c.in.size() >= need) {
            bool stream = false;
            std::string reply = respond(
                head, std::string_view(c.in).substr(head.head_length(), body_length), &stream);
            if (head.method() == http_method::head) {
              reply.resize(reply.find("\r\n\r\n") + 4);
              stream = false;
            }
            if (stream && streams() >= options_.max_event_streams) {
              reply = serialize({503, "text/plain; charset=utf-8", "too many event streams\n", {}});
              stream = false;
            }
            finish(c, std::move(reply));
            if (stream) {
              c.streaming = true;
              c.cursor = approvals->events_since(approval_registry::new_subscriber, c.out);
              c.keepalive_ms = now + options_.keepalive_interval_ms;
              c.deadline_ms = never;
            }
          }
        }
        if (eof && !c.answered) c.deadline_ms = 0;  // it ended before a whole request
      }
      if (c.answered && c.deadline_ms != 0) {
        while (c.sent < c.out.size()) {
          ssize_t n = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
          if (n > 0) {
            c.sent += static_cast<size_t>(n);
          } else {
            if (n < 0 && errno != EAGAIN && errno != EINTR) c.deadline_ms = 0;
            break;
          }
        }
        if (c.sent == c.out.size()) {
          if (!c.streaming) c.deadline_ms = 0;  // answered: close
          c.out.clear();
          c.sent = 0;
        }
      }
    }
    // Closed, answered or past their deadline.
    std::erase_if(conns, [now](admin_conn& c) {
      if (c.deadline_ms != 0 && now < c.deadline_ms) return false;
      close(c.fd);
      return true;
    });
    if (fds[1].revents & POLLIN) {
      for (;;) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;  // EAGAIN, or out of fds: try again on the next event
        if (conns.size() >= options_.max_connections) {
          static constexpr std::string_view busy =
              "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
              "Content-Length: 17\r\nConnection: close\r\n\r\ntoo many clients\n";
          [[maybe_unused]] ssize_t n = send(fd, busy.data(), busy.size(), MSG_NOSIGNAL);
          close(fd);
          continue;
        }
        admin_conn c;
        c.fd = fd;
        c.deadline_ms = now + options_.request_timeout_ms;
        conns.push_back(std::move(c));
      }
    }
  }
  for (admin_conn& c : conns) close(c.fd);
}

std::string admin_server::respond(const request_head& head, std::string_view body, bool* stream) {
  std::string_view method = head.method_text();
  std::string_view target = head.target();
  std::string_view path = target.substr(0, target.find('?'));
  // DNS rebinding: a page in a browser on this host must not read the admin routes either.
  if (head.headers().count("host") > 0 && !hosts_.allows(head.headers().find("host")))
    return serialize({403, "text/plain; charset=utf-8", "forbidden: Host not allowed\n", {}});
  // Everything but the probes needs the admin token when one is configured.
  if (options_.token_sha256 && path != "/healthz" && path != "/readyz" &&
      !is_public_approval_path(path)) {
    std::string_view token = policy::bearer_token(head.headers().find("authorization"));
    auto digest = policy::sha256(token);
    if (token.empty() || head.headers().count("authorization") != 1 ||
        CRYPTO_memcmp(digest.data(), options_.token_sha256->data(), digest.size()) != 0) {
      response r{401, "text/plain; charset=utf-8", "unauthorized: send the admin token\n", {}};
      r.extra_headers = "WWW-Authenticate: Bearer realm=\"mcpgate-admin\"\r\n";
      return serialize(r);
    }
  }
  bool get = method == "GET" || method == "HEAD";
  bool post = method == "POST";
  response r;
  if (handlers_.approvals && is_approval_path(path)) {
    approval_http_reply a = approval_route(*handlers_.approvals, head, path, body);
    if (a.stream) {
      *stream = true;
      std::string out;
      append_status_line(out, 200);
      out +=
          "Content-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\n"
          "X-Accel-Buffering: no\r\n\r\n";
      return out;
    }
    r.status = a.status;
    r.content_type = a.content_type;
    r.body = std::move(a.body);
    r.extra_headers = a.extra_headers;
    return serialize(r);
  }
  if (path == "/metrics" && handlers_.metrics) {
    if (!get) return serialize(method_not_allowed("Allow: GET, HEAD\r\n"));
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = handlers_.metrics();
  } else if (path == "/healthz") {
    if (!get) return serialize(method_not_allowed("Allow: GET, HEAD\r\n"));
    r.body = "ok\n";
  } else if (path == "/readyz" && handlers_.ready) {
    if (!get) return serialize(method_not_allowed("Allow: GET, HEAD\r\n"));
    readiness state = handlers_.ready();
    std::string reasons;
    auto reason = [&](bool ok, const char* why) {
      if (ok) return;
      if (!reasons.empty()) reasons += "; ";
      reasons += why;
    };
    reason(state.listening, "not listening");
    reason(state.upstream_reachable, "upstream unreachable");
    reason(state.policy_loaded, "policy not loaded");
    r.status = reasons.empty() ? 200 : 503;
    r.body = reasons.empty() ? "ready\n" : "not ready: " + reasons + "\n";
  } else if (path == "/admin/policy" && handlers_.policy) {
    if (!get) return serialize(method_not_allowed("Allow: GET, HEAD\r\n"));
    r.content_type = "application/json";
    r.body = handlers_.policy();
  } else if (path == "/admin/limits" && handlers_.limits) {
    if (!get) return serialize(method_not_allowed("Allow: GET, HEAD\r\n"));
    r.content_type = "application/json";
    r.body = handlers_.limits();
  } else if (path == "/admin/reload" && handlers_.reload) {
    if (!get) return serialize(method_not_allowed("Allow: GET, HEAD\r\n"));
    r.content_type = "application/json";
    r.body = handlers_.reload();
  } else if (path == "/admin/reopen" && handlers_.reopen) {
    if (!post) return serialize(method_not_allowed("Allow: POST\r\n"));
    std::string error = handlers_.reopen();
    r.status = error.empty() ? 200 : 500;
    r.body = error.empty() ? "reopened\n" : error + "\n";
  } else {
    r.status = 404;
    r.body = "not found\n";
  }
  return serialize(r);
}

}  // namespace mcpgate::net
