#include "net/admin/server.h"

#include "policy/identity.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

namespace mcpgate::net {
namespace {

using namespace std::chrono_literals;

int connect_to(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends `request` and reads until the server closes (it closes after every answer), with a
// deadline.
std::string http_exchange(uint16_t port, const std::string& request) {
  int fd = connect_to(port);
  if (fd < 0) return "<connect failed>";
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  auto end = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

std::string get(uint16_t port, const std::string& target, const std::string& method = "GET") {
  return http_exchange(port, method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
}

std::string status_line(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

std::string body(const std::string& response) {
  size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

class AdminServer : public ::testing::Test {
 protected:
  void SetUp() override {
    admin_handlers h;
    h.metrics = [] {
      return std::string("# HELP x_total X.\n# TYPE x_total counter\nx_total 3\n");
    };
    h.ready = [this] {
      std::lock_guard lock(mu_);
      return state_;
    };
    h.policy = [] { return std::string(R"({"version":"sha256:abcd","policy":{"grants":[]}})"); };
    h.reopen = [this] {
      ++reopens_;
      return reopen_error_;
    };
    admin_options options;
    options.allowed_hosts = {"localhost", "x"};  // the Hosts requests here name
    auto started = admin_server::start(options, std::move(h));
    ASSERT_TRUE(started.server) << started.error;
    server_ = std::move(started.server);
    port_ = server_->port();
    ASSERT_NE(port_, 0);
  }

  std::unique_ptr<admin_server> server_;
  uint16_t port_ = 0;
  void set_state(readiness r) {
    std::lock_guard lock(mu_);
    state_ = r;
  }

  std::mutex mu_;
  readiness state_{true, true, true};
  std::atomic<int> reopens_{0};
  std::string reopen_error_;
};

TEST_F(AdminServer, MetricsAreServedAsPrometheusText) {
  std::string r = get(port_, "/metrics");
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << r;
  EXPECT_EQ(body(r), "# HELP x_total X.\n# TYPE x_total counter\nx_total 3\n");
}

TEST_F(AdminServer, HealthzAnswersOk) {
  std::string r = get(port_, "/healthz");
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_EQ(body(r), "ok\n");
}

TEST_F(AdminServer, ReadyzIsOkWhenEverythingIsReady) {
  std::string r = get(port_, "/readyz");
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_EQ(body(r), "ready\n");
}

TEST_F(AdminServer, ReadyzNamesEveryReasonWhenNotReady) {
  set_state({true, false, false});
  std::string r = get(port_, "/readyz");
  EXPECT_EQ(status_line(r), "HTTP/1.1 503 Service Unavailable");
  EXPECT_EQ(body(r), "not ready: upstream unreachable; policy not loaded\n");
  set_state({false, true, true});
  EXPECT_EQ(body(get(port_, "/readyz")), "not ready: not listening\n");
}

TEST_F(AdminServer, PolicyIsServedAsJson) {
  std::string r = get(port_, "/admin/policy");
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_NE(r.find("Content-Type: application/json"), std::string::npos) << r;
  EXPECT_EQ(body(r), R"({"version":"sha256:abcd","policy":{"grants":[]}})");
}

TEST_F(AdminServer, PostReopenCallsTheCallback) {
  std::string r =
      http_exchange(port_, "POST /admin/reopen HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_EQ(reopens_.load(), 1);
  r = http_exchange(port_, "POST /admin/reopen HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_EQ(reopens_.load(), 2);
}

TEST_F(AdminServer, ReopenFailureIs500WithTheReason) {
  reopen_error_ = "cannot open audit log '/var/log/x': Permission denied";
  std::string r = get(port_, "/admin/reopen", "POST");
  EXPECT_EQ(status_line(r), "HTTP/1.1 500 Internal Server Error");
  EXPECT_EQ(body(r), "cannot open audit log '/var/log/x': Permission denied\n");
}

TEST_F(AdminServer, WrongMethodIs405WithAllow) {
  std::string r = get(port_, "/admin/reopen", "GET");
  EXPECT_EQ(status_line(r), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_NE(r.find("Allow: POST\r\n"), std::string::npos) << r;
  EXPECT_EQ(reopens_.load(), 0);
  r = http_exchange(port_, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(status_line(r), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_NE(r.find("Allow: GET, HEAD\r\n"), std::string::npos) << r;
}

TEST_F(AdminServer, UnknownPathIs404) {
  EXPECT_EQ(status_line(get(port_, "/")), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(status_line(get(port_, "/admin")), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(status_line(get(port_, "/metricsx")), "HTTP/1.1 404 Not Found");
}

TEST_F(AdminServer, QueryStringsDoNotChangeTheRoute) {
  EXPECT_EQ(body(get(port_, "/healthz?verbose=1")), "ok\n");
}

TEST_F(AdminServer, MalformedRequestIs400) {
  std::string r = http_exchange(port_, "GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
  EXPECT_EQ(status_line(r), "HTTP/1.1 400 Bad Request");
}

TEST_F(AdminServer, HeadHasHeadersButNoBody) {
  std::string r = get(port_, "/healthz", "HEAD");
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_NE(r.find("Content-Length: 3\r\n"), std::string::npos) << r;
  EXPECT_EQ(body(r), "");
}

TEST_F(AdminServer, RequestSplitAcrossPacketsIsAnswered) {
  int fd = connect_to(port_);
  ASSERT_GE(fd, 0);
  std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  for (char ch : req) send(fd, &ch, 1, MSG_NOSIGNAL);
  std::string out;
  char buf[1024];
  pollfd p{fd, POLLIN, 0};
  while (poll(&p, 1, 10000) > 0) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  EXPECT_EQ(body(out), "ok\n");
}

TEST_F(AdminServer, StopReturnsPromptlyWhileAClientHoldsAConnectionOpen) {
  int idle = connect_to(port_);
  ASSERT_GE(idle, 0);
  send(idle, "GET /hea", 8, MSG_NOSIGNAL);  // an incomplete request: the server is waiting on it
  std::this_thread::yield();
  auto started = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  close(idle);
  EXPECT_EQ(connect_to(port_), -1) << "still listening after stop()";
}

TEST_F(AdminServer, AnIdleConnectionDoesNotDelayTheOthers) {
  int idle = connect_to(port_);
  ASSERT_GE(idle, 0);
  send(idle, "GET /hea", 8, MSG_NOSIGNAL);  // and nothing more
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(body(get(port_, "/healthz")), "ok\n");
  EXPECT_EQ(body(get(port_, "/readyz")), "ready\n");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
  close(idle);
}

TEST_F(AdminServer, ARequestNamingAnotherHostIs403) {
  std::string r = http_exchange(port_, "GET /metrics HTTP/1.1\r\nHost: evil.example\r\n\r\n");
  EXPECT_EQ(status_line(r), "HTTP/1.1 403 Forbidden");
  EXPECT_EQ(body(r).find("x_total"), std::string::npos) << r;
}

TEST(AdminServerToken, EveryRouteButTheProbesNeedsTheToken) {
  admin_handlers h;
  h.metrics = [] { return std::string("x_total 3\n"); };
  h.ready = [] { return readiness{true, true, true}; };
  h.policy = [] { return std::string("{}"); };
  admin_options options;
  options.token_sha256 = policy::sha256("s3cret");
  auto started = admin_server::start(options, std::move(h));
  ASSERT_TRUE(started.server) << started.error;
  uint16_t port = started.server->port();
  auto with = [&](const std::string& target, const std::string& auth) {
    return http_exchange(port,
                         "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + "\r\n");
  };
  EXPECT_EQ(status_line(with("/metrics", "")), "HTTP/1.1 401 Unauthorized");
  EXPECT_NE(with("/metrics", "").find("WWW-Authenticate: Bearer"), std::string::npos);
  EXPECT_EQ(status_line(with("/admin/policy", "Authorization: Bearer wrong\r\n")),
            "HTTP/1.1 401 Unauthorized");
  EXPECT_EQ(body(with("/metrics", "Authorization: Bearer s3cret\r\n")), "x_total 3\n");
  EXPECT_EQ(body(with("/healthz", "")), "ok\n");
  EXPECT_EQ(body(with("/readyz", "")), "ready\n");
}

TEST(AdminServerStart, BindsLoopbackByDefault) {
  EXPECT_EQ(admin_options{}.host, "127.0.0.1");
}

TEST(AdminServerStart, AddressInUseIsReportedWithTheAddress) {
  auto first = admin_server::start(admin_options{}, {});
  ASSERT_TRUE(first.server) << first.error;
  admin_options same;
  same.port = first.server->port();
  auto second = admin_server::start(same, {});
  EXPECT_FALSE(second.server);
  EXPECT_NE(second.error.find("127.0.0.1:" + std::to_string(same.port)), std::string::npos)
      << second.error;
  EXPECT_NE(second.error.find("in use"), std::string::npos) << second.error;
}

}  // namespace
}  // namespace mcpgate::net
