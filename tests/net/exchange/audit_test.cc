// The audit log of a running shard: one line per message with the decision the client saw,
// under load and on a full disk.

#include "tests/net/exchange/harness.h"

#include <simdjson.h>

namespace mcpgate::net {
namespace {

using namespace testing;
using namespace std::chrono_literals;

TEST(Proxy, WritesOneAuditLinePerMessageWithTheDecisionTheClientSaw) {
  scripted_upstream up(answer_json);
  policy::counter_store counters;
  auto gate = deny_clear_session(counters);
  std::string path = ::testing::TempDir() + "proxy_audit.log";
  std::remove(path.c_str());
  {
    gateway gw(
        up.port(), 2,
        [&](gateway_config& c) {
          c.audit.file = core::log_file::open(path).file;
          c.audit.arguments = arguments_mode::keys;
        },
        gate);
    int fd = connect_to(gw.port());
    // allowed
    EXPECT_EQ(round_trip(fd, post(call_body)).head.substr(0, 15), "HTTP/1.1 200 OK");
    // denied by policy
    message denied = round_trip(
        fd,
        post(
            R"({"jsonrpc":"2.0","id":"d1","method":"tools/call","params":{"name":"clear_session","arguments":{}}})"));
    EXPECT_NE(denied.body.find("[POLICY DENIED]"), std::string::npos);
    // invalid JSON
    EXPECT_EQ(round_trip(fd, post("{nope")).head.substr(0, 12), "HTTP/1.1 400");
    // a notification, forwarded
    round_trip(fd, post(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"));
    close(fd);
    std::string text = gw.metrics_text();
    EXPECT_NE(text.find(R"(mcpgate_requests_total{method="tools/call",decision="allowed"} 1)"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find(R"(mcpgate_requests_total{method="tools/call",decision="denied"} 1)"),
              std::string::npos);
    EXPECT_NE(text.find(R"(mcpgate_upstream_responses_total{class="2xx"} 2)"), std::string::npos);
    // And the exposition passes Prometheus' own checker.
    std::string file = ::testing::TempDir() + "proxy_metrics.txt";
    std::ofstream(file) << text;
    EXPECT_EQ(std::system(("promtool check metrics < " + file + " >/dev/null").c_str()), 0);
  }  // the gateway drains, and the audit log is flushed before the shards end
  std::vector<std::string> lines = read_lines(path);
  ASSERT_EQ(lines.size(), 4u);
  simdjson::dom::parser parser;
  auto field = [&](const std::string& line, const char* key) {
    simdjson::dom::element doc = parser.parse(line);
    simdjson::dom::element v = doc[key];
    return v.is_null() ? std::string("null") : simdjson::minify(v);
  };
  EXPECT_EQ(field(lines[0], "decision"), R"("allowed")");
  EXPECT_EQ(field(lines[0], "id"), "41");
  EXPECT_EQ(field(lines[0], "tool"), R"("echo")");
  EXPECT_EQ(field(lines[0], "upstream_status"), "200");
  EXPECT_EQ(field(lines[0], "identity"), R"("anonymous")");
  EXPECT_EQ(field(lines[0], "args"), R"({"keys":["x"]})");
  EXPECT_EQ(field(lines[1], "decision"), R"("denied")");
  EXPECT_EQ(field(lines[1], "id"), R"("d1")");
  EXPECT_EQ(field(lines[1], "rule"), R"("tools.clear_session.deny_if[0]")");
  EXPECT_EQ(lines[1].find("upstream_status"), std::string::npos) << "never forwarded";
  EXPECT_EQ(field(lines[2], "decision"), R"("invalid")");
  EXPECT_EQ(field(lines[3], "method"), R"("notifications/initialized")");
  EXPECT_EQ(field(lines[3], "id"), "null");
  EXPECT_EQ(up.requests(), 2);
}

TEST(Proxy, LeavesExactlyOneMatchingAuditLineForEachOf200000CallsAt64Connections) {
  constexpr int clients = 64;
  constexpr int per_client = 3125;  // 200,000 calls; every fourth is denied by the policy
  scripted_upstream up(answer_json);
  policy::counter_store counters;
  auto gate = deny_clear_session(counters);
  std::string path = ::testing::TempDir() + "proxy_audit_load.log";
  std::remove(path.c_str());
  std::atomic<int> mismatches{0};
  {
    gateway gw(
        up.port(), 2,
        [&](gateway_config& c) {
          c.audit.file = core::log_file::open(path).file;
          c.audit.arguments = arguments_mode::hash;
          c.upstreams[0].max_idle = clients;
        },
        gate);
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t) {
      threads.emplace_back([&, t] {
        int fd = connect_to(gw.port());
        std::string buf;
        for (int i = 0; i < per_client; ++i) {
          int id = t * per_client + i;
          bool deny = id % 4 == 0;
          std::string body = R"({"jsonrpc":"2.0","id":)" + std::to_string(id) +
                             R"(,"method":"tools/call","params":{"name":")" +
                             (deny ? "clear_session" : "echo") + R"(","arguments":{"n":1}}})";
          send_all(fd, post(body));
          if (!read_until(fd, buf,
                          [](const std::string& b) { return parse_message(b).complete; })) {
            ++mismatches;
            break;
          }
          message m = parse_message(buf);
          buf.erase(0, m.total);
          bool saw_denial = m.body.find("[POLICY DENIED]") != std::string::npos;
          if (saw_denial != deny) ++mismatches;
        }
        close(fd);
      });
    }
    for (auto& th : threads) th.join();
  }  // drain: every audit line is written before the shards end
  EXPECT_EQ(mismatches.load(), 0);
  std::vector<std::string> lines = read_lines(path);
  ASSERT_EQ(lines.size(), size_t{clients} * per_client);
  std::vector<uint8_t> seen(size_t{clients} * per_client, 0);
  simdjson::dom::parser parser;
  int wrong = 0;
  for (const std::string& line : lines) {
    simdjson::dom::element doc;
    if (parser.parse(line).get(doc)) {
      ++wrong;
      continue;
    }
    int64_t id = doc["id"].get_int64().value_unsafe();
    std::string_view decision = doc["decision"].get_string().value_unsafe();
    if (id < 0 || id >= int64_t(seen.size()) || seen[size_t(id)]++) {
      ++wrong;
      continue;
    }
    if (decision != (id % 4 == 0 ? "denied" : "allowed")) ++wrong;
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), long(seen.size()));
  EXPECT_EQ(up.requests(), clients * per_client / 4 * 3);
}

class full_disk {
 public:
  full_disk() : dir_(::testing::TempDir() + "mcpgate-full-" + std::to_string(getpid())) {
    std::string mkdir = "mkdir -p " + dir_;
    // 32 KiB free while the ballast stands; once it is gone, room for everything the test can
    // log meanwhile: under fail_closed every refused call has its line too, and a client that
    // spins while the disk is full piles up far more than the 32 KiB (a 256 KiB disk filled up
    // again with those lines and never recovered).
    std::string mount = "mount -t tmpfs -o size=8m tmpfs " + dir_ + " 2>/dev/null";
    mounted_ = std::system(mkdir.c_str()) == 0 && std::system(mount.c_str()) == 0;
    if (!mounted_) return;
    std::ofstream ballast(dir_ + "/ballast", std::ios::binary);
    std::string block(1024, 'x');
    for (int i = 0; i < 8 * 1024 - 32; ++i) ballast << block;
  }
  ~full_disk() {
    if (mounted_) std::system(("umount " + dir_ + " && rmdir " + dir_).c_str());
  }
  bool mounted() const { return mounted_; }
  std::string log_path() const { return dir_ + "/audit.log"; }
  void free_space() { std::remove((dir_ + "/ballast").c_str()); }

 private:
  std::string dir_;
  bool mounted_ = false;
};

void check_full_disk(core::failure_policy on_failure) {
  full_disk disk;
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs (not root?)";
  scripted_upstream up(answer_json);
  std::vector<int64_t> answered;  // ids the client saw answered 200 by the upstream
  bool refused = false;
  std::string text;
  std::vector<std::string> lines;
  {
    gateway gw(up.port(), 1, [&](gateway_config& c) {
      c.audit.file = core::log_file::open(disk.log_path()).file;
      c.audit.arguments = arguments_mode::full;
      c.audit.writer.on_failure = on_failure;
      c.audit.writer.flush_interval_ns = 5'000'000;
      c.audit.writer.retry_interval_ns = 5'000'000;
    });
    int fd = connect_to(gw.port());
    std::string padding(400, 'p');  // about 600 bytes a line: the disk fills within ~60 calls
    auto call = [&](int64_t id) {
      return round_trip(
          fd, post(R"({"jsonrpc":"2.0","id":)" + std::to_string(id) +
                   R"(,"method":"tools/call","params":{"name":"echo","arguments":{"p":")" +
                   padding + R"("}}})"));
    };
    int64_t id = 0;
    auto end = std::chrono::steady_clock::now() + deadline;
    // Until the writer reports the failure (fail_closed: calls refused) or, for fail_open, past
    // the point where the disk is full (32 KiB free hold about 50 lines; 100 lines, 64 KiB, fit
    // once the ballast is gone).
    while (std::chrono::steady_clock::now() < end && id < 100) {
      message m = call(++id);
      if (m.head.substr(0, 12) == "HTTP/1.1 503") {
        EXPECT_NE(m.body.find("-32060"), std::string::npos) << m.body;
        refused = true;
        break;
      }
      if (m.head.substr(0, 15) == "HTTP/1.1 200 OK") answered.push_back(id);
    }
    // The writer flushes every 5 ms: in a fast build the calls above can all be answered before
    // it has tried to write past the free space. Wait (with the deadline) until it has failed,
    // and under fail_closed until a call is refused, before giving the space back.
    auto failures = [&] {
      std::string t = gw.metrics_text();
      size_t at = t.find("\nmcpgate_audit_failures_total ");
      return at == std::string::npos ? 0ull : std::stoull(t.substr(at + 30));
    };
    while (failures() == 0 && std::chrono::steady_clock::now() < end) std::this_thread::yield();
    while (on_failure == core::failure_policy::fail_closed && !refused &&
           std::chrono::steady_clock::now() < end) {
      message m = call(++id);
      refused = m.head.substr(0, 12) == "HTTP/1.1 503";
      if (m.head.substr(0, 15) == "HTTP/1.1 200 OK") answered.push_back(id);
    }
    disk.free_space();
    // Writing works again: calls are served and the held lines are written.
    bool served = false;
    while (!served && std::chrono::steady_clock::now() < end) {
      message m = call(++id);
      served = m.head.substr(0, 15) == "HTTP/1.1 200 OK";
      if (served) answered.push_back(id);
    }
    EXPECT_TRUE(served);
    close(fd);
    text = gw.metrics_text();
  }
  lines = read_lines(disk.log_path());
  if (on_failure == core::failure_policy::fail_closed)
    EXPECT_TRUE(refused) << "a full disk must stop calls under fail_closed";
  else
    EXPECT_FALSE(refused) << "fail_open keeps serving";
  // The disk did fill: the writer counted failed writes.
  size_t at = text.find("\nmcpgate_audit_failures_total ");
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_GT(std::stoull(text.substr(at + 30)), 0u) << text.substr(at, 60);
  // Every call the client saw served has its line, whole, exactly once.
  simdjson::dom::parser parser;
  std::map<int64_t, int> count;
  for (const std::string& line : lines) {
    simdjson::dom::element doc;
    ASSERT_FALSE(parser.parse(line).get(doc)) << "torn line: " << line;
    count[doc["id"].get_int64().value_unsafe()]++;
  }
  for (int64_t id : answered) EXPECT_EQ(count[id], 1) << "id " << id;
}

TEST(Proxy, FailClosedRefusesCallsWhileTheAuditDiskIsFullAndLosesNoLine) {
  check_full_disk(core::failure_policy::fail_closed);
}

TEST(Proxy, FailOpenKeepsServingWhileTheAuditDiskIsFullAndLosesNoLine) {
  check_full_disk(core::failure_policy::fail_open);
}

}  // namespace
}  // namespace mcpgate::net
