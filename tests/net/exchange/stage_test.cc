// Stages that hold an exchange, on a real shard: one resumed by a message to the shard, one
// cancelled by the client leaving, one past its deadline; each ends with its audit line.

#include "tests/net/exchange/harness.h"

#include <simdjson.h>

#include "net/exchange/context.h"
#include "net/exchange/exchange.h"

namespace mcpgate::net {
namespace {

using namespace testing;
using namespace std::chrono_literals;

// What the holding stage saw, shared with the test thread.
struct hold_log {
  std::mutex mu;
  std::vector<exchange_token> held;
  std::vector<hold_end> cancelled;
  int resumed = 0;

  exchange_token wait_for_hold() {
    auto end = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < end) {
      {
        std::lock_guard lock(mu);
        if (!held.empty()) return held.back();
      }
      std::this_thread::sleep_for(1ms);
    }
    ADD_FAILURE() << "no exchange was held";
    return {};
  }
  template <typename F>
  bool wait(F&& done) {
    auto end = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < end) {
      {
        std::lock_guard lock(mu);
        if (done()) return true;
      }
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }
};

// Holds every tools/call of the tool "held" until a message resumes it; with a short deadline
// for the tool "held_briefly".
class holding_stage final : public stage {
 public:
  explicit holding_stage(hold_log& log) : log_(log) {}
  std::string_view name() const override { return "test_hold"; }
  stage_phase phase() const override { return stage_phase::body; }
  stage_result run(exchange& ex, shard_context& shard) override {
    if (!ex.messages_current) return stage_result::proceed;
    const jsonrpc_message& m = ex.messages.messages.front();
    if (m.method != "tools/call" || !m.name || (*m.name != "held" && *m.name != "held_briefly"))
      return stage_result::proceed;
    if (*m.name == "held_briefly") ex.hold_until_ns = shard.now_ns() + 150'000'000;
    std::lock_guard lock(log_.mu);
    log_.held.push_back(ex.token());
    return stage_result::held;
  }
  stage_result resume(exchange&, shard_context&, const core::message&) override {
    std::lock_guard lock(log_.mu);
    ++log_.resumed;
    return stage_result::proceed;
  }
  void cancel(exchange&, shard_context&, hold_end why) override {
    std::lock_guard lock(log_.mu);
    log_.cancelled.push_back(why);
  }

 private:
  hold_log& log_;
};

std::string call_of(std::string_view tool, int id) {
  return R"({"jsonrpc":"2.0","id":)" + std::to_string(id) +
         R"(,"method":"tools/call","params":{"name":")" + std::string(tool) +
         R"(","arguments":{}}})";
}

class HeldExchange : public ::testing::Test {
 protected:
  void SetUp() override {
    std::remove(audit_path_.c_str());
    gw_ = std::make_unique<gateway>(
        up_.port(), 1,
        [this](gateway_config& c) {
          c.audit.file = core::log_file::open(audit_path_).file;
          c.audit.writer.flush_interval_ns = 5'000'000;
        },
        deny_clear_session(counters_),
        [this] {
          stage_list extra;
          extra.push_back(std::make_unique<holding_stage>(log_));
          return extra;
        });
  }

  // The audit line of request id `id`, once written.
  std::string audit_line(int id) {
    std::string want = "\"id\":" + std::to_string(id) + ",";
    auto end = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < end) {
      for (const std::string& line : read_lines(audit_path_))
        if (line.find(want) != std::string::npos) return line;
      std::this_thread::sleep_for(2ms);
    }
    return {};
  }

  // One file per test: ctest runs them as processes side by side.
  std::string audit_path_ = ::testing::TempDir() + "held_exchange_" +
                            ::testing::UnitTest::GetInstance()->current_test_info()->name() +
                            ".log";
  scripted_upstream up_{answer_json};
  policy::counter_store counters_;
  hold_log log_;
  std::unique_ptr<gateway> gw_;
};

TEST_F(HeldExchange, AMessageToTheShardResumesItAndTheCallGoesUpstream) {
  int fd = connect_to(gw_->port());
  send_all(fd, post(call_of("held", 1)));
  exchange_token token = log_.wait_for_hold();
  // Held: nothing reached the upstream, nothing came back, and the shard serves others.
  EXPECT_EQ(up_.requests(), 0);
  int other = connect_to(gw_->port());
  EXPECT_EQ(round_trip(other, post(call_body)).head.substr(0, 15), "HTTP/1.1 200 OK");
  close(other);
  // A message for an exchange that is not this one (an older seq) is dropped.
  exchange_token stale = token;
  stale.seq -= 1;
  gw_->post(0, resume_message(stale));
  gw_->post(0, resume_message(token));
  std::string buf;
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  EXPECT_EQ(parse_message(buf).head.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_EQ(up_.requests(), 2);
  {
    std::lock_guard lock(log_.mu);
    EXPECT_EQ(log_.resumed, 1);
  }
  std::string line = audit_line(1);
  EXPECT_NE(line.find(R"("decision":"allowed","upstream_status":200)"), std::string::npos) << line;
  close(fd);
}

TEST_F(HeldExchange, AClientThatLeavesCancelsItAndNothingGoesUpstream) {
  int fd = connect_to(gw_->port());
  send_all(fd, post(call_of("held", 2)));
  exchange_token token = log_.wait_for_hold();
  close(fd);
  ASSERT_TRUE(log_.wait([&] { return !log_.cancelled.empty(); }));
  {
    std::lock_guard lock(log_.mu);
    EXPECT_EQ(log_.cancelled.front(), hold_end::client_left);
  }
  std::string line = audit_line(2);
  EXPECT_NE(line.find(R"("tool":"held")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("decision":"cancelled")"), std::string::npos) << line;
  // A resume arriving after the cancel finds nothing to resume.
  gw_->post(0, resume_message(token));
  int again = connect_to(gw_->port());
  EXPECT_EQ(round_trip(again, post(call_body)).head.substr(0, 15), "HTTP/1.1 200 OK");
  close(again);
  EXPECT_EQ(up_.requests(), 1);
  std::lock_guard lock(log_.mu);
  EXPECT_EQ(log_.resumed, 0);
}

TEST_F(HeldExchange, PastItsDeadlineTheClientGets504AndTheLineSaysTimedOut) {
  int fd = connect_to(gw_->port());
  message m = round_trip(fd, post(call_of("held_briefly", 3)));
  ASSERT_TRUE(m.complete);
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 504");
  EXPECT_NE(m.body.find(R"("id":3)"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find(R"("code":-32037)"), std::string::npos) << m.body;
  {
    std::lock_guard lock(log_.mu);
    ASSERT_EQ(log_.cancelled.size(), 1u);
    EXPECT_EQ(log_.cancelled.front(), hold_end::deadline);
  }
  std::string line = audit_line(3);
  EXPECT_NE(line.find(R"("decision":"timed_out")"), std::string::npos) << line;
  EXPECT_EQ(up_.requests(), 0);
  // The connection goes on serving.
  EXPECT_EQ(round_trip(fd, post(call_body)).head.substr(0, 15), "HTTP/1.1 200 OK");
  close(fd);
}

}  // namespace
}  // namespace mcpgate::net
