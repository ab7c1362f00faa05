// The approvals registry on its own: who may decide what, the bounds, standing approvals, the
// event stream's cursor, and that every decision reaches the holding shard exactly once.

#include "net/approval/registry.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mcpgate::net {
namespace {

struct posted {
  unsigned shard;
  core::message m;
};

struct fixture {
  explicit fixture(approval_limits limits = {})
      : registry(limits, [this](unsigned shard, const core::message& m) {
          sent.push_back({shard, m});
          return true;
        }) {}

  approval_registry::hold_result hold(std::string identity, std::string tool = "clear_session",
                                      std::string digest = "d1", bool via_client = false,
                                      std::string session = "s") {
    approval_subject s;
    s.identity = std::move(identity);
    s.session = std::move(session);
    s.server = "default";
    s.tool = std::move(tool);
    s.arguments_sha256 = std::move(digest);
    s.arguments = R"({"session_id":"s1"})";
    s.request_key = "n:7";
    s.via_client = via_client;
    core::message m;
    m.value = ++next;
    return registry.hold(std::move(s), 60'000, 1, m);
  }

  std::vector<posted> sent;
  uint64_t next = 0;
  approval_registry registry;
};

TEST(ApprovalRegistry, ADecisionGoesToTheHoldingShardOnceAndIsTakenOnce) {
  fixture f;
  auto held = f.hold("alice");
  ASSERT_EQ(held.status, approval_registry::hold_status::held);
  EXPECT_EQ(held.id.substr(0, 3), "ap-");
  EXPECT_EQ(held.id.size(), 27u);
  EXPECT_TRUE(f.registry.pending_any());
  EXPECT_NE(f.registry.pending_json().find(R"("tool":"clear_session")"), std::string::npos);
  EXPECT_EQ(f.registry.decide(held.id, true, "ops", "planned"),
            approval_registry::decide_status::decided);
  ASSERT_EQ(f.sent.size(), 1u);
  EXPECT_EQ(f.sent[0].shard, 1u);
  EXPECT_EQ(f.sent[0].m.value, 1u);
  EXPECT_EQ(f.registry.decide(held.id, false, "late", ""),
            approval_registry::decide_status::already_decided);
  EXPECT_EQ(f.sent.size(), 1u);
  EXPECT_FALSE(f.registry.pending_any());
  EXPECT_EQ(f.registry.pending_json(), "[]");
  approval_resolution r = f.registry.take(held.id);
  EXPECT_EQ(r.state, approval_state::approved);
  EXPECT_EQ(r.by, "ops");
  EXPECT_EQ(r.reason, "planned");
  EXPECT_EQ(f.registry.take(held.id).state, approval_state::cancelled) << "gone once taken";
  EXPECT_EQ(f.registry.decide("ap-nope", true, "x", ""),
            approval_registry::decide_status::not_found);
}

TEST(ApprovalRegistry, HoldsAtMostItsBoundsPerIdentityAndInAll) {
  approval_limits limits;
  limits.max_pending = 3;
  limits.max_pending_per_identity = 2;
  fixture f(limits);
  EXPECT_EQ(f.hold("alice").status, approval_registry::hold_status::held);
  auto second = f.hold("alice");
  EXPECT_EQ(second.status, approval_registry::hold_status::held);
  EXPECT_EQ(f.hold("alice").status, approval_registry::hold_status::full_identity);
  EXPECT_EQ(f.hold("bob").status, approval_registry::hold_status::held);
  EXPECT_EQ(f.hold("carol").status, approval_registry::hold_status::full_process);
  // A decided call no longer counts.
  f.registry.decide(second.id, false, "ops", "");
  EXPECT_EQ(f.hold("alice").status, approval_registry::hold_status::held);
}

TEST(ApprovalRegistry, TheClientAnswersOnlyForItsOwnIdentityAndSessionAndOnlyWhenAsked) {
  fixture f;
  auto asked = f.hold("alice", "clear_session", "d1", true, "s-alice");
  auto not_asked = f.hold("alice", "clear_session", "d2", false, "s-alice");
  using st = approval_registry::decide_status;
  EXPECT_EQ(f.registry.decide_as_client(asked.id, true, "", "bob", "s-alice"), st::not_found);
  EXPECT_EQ(f.registry.decide_as_client(asked.id, true, "", "alice", "s-other"), st::not_found);
  EXPECT_EQ(f.registry.decide_as_client(not_asked.id, true, "", "alice", "s-alice"), st::not_found);
  EXPECT_TRUE(f.sent.empty());
  EXPECT_EQ(
      f.registry.decide_as_client(asked.id, false, "the user chose decline", "alice", "s-alice"),
      st::decided);
  approval_resolution r = f.registry.take(asked.id);
  EXPECT_EQ(r.state, approval_state::denied);
  EXPECT_EQ(r.by, "client:alice");
}

TEST(ApprovalRegistry, AStandingApprovalCoversTheSameCallOnly) {
  fixture f;
  auto held = f.hold("alice", "install_package", "digest-a");
  f.registry.decide(held.id, true, "ops", "", 3'600'000);
  EXPECT_EQ(f.registry.standing("alice", "default", "install_package", "digest-a"), "ops");
  EXPECT_EQ(f.registry.standing("alice", "default", "install_package", "digest-b"), std::nullopt);
  EXPECT_EQ(f.registry.standing("bob", "default", "install_package", "digest-a"), std::nullopt);
  EXPECT_EQ(f.registry.standing("alice", "other", "install_package", "digest-a"), std::nullopt);
  // A plain approval stands for nothing.
  auto once = f.hold("alice", "install_package", "digest-c");
  f.registry.decide(once.id, true, "ops", "");
  EXPECT_EQ(f.registry.standing("alice", "default", "install_package", "digest-c"), std::nullopt);
  std::string m;
  f.registry.append_metrics(m);
  EXPECT_NE(m.find("mcpgate_approvals_standing_used_total 1\n"), std::string::npos) << m;
}

TEST(ApprovalRegistry, StandingApprovalsAreBounded) {
  approval_limits limits;
  limits.max_standing = 2;
  fixture f(limits);
  for (const char* digest : {"a", "b", "c"}) {
    auto held = f.hold("alice", "t", digest);
    f.registry.decide(held.id, true, "ops", "", 1000 + digest[0]);
  }
  // "a" would expire first: it made room for "c".
  EXPECT_EQ(f.registry.standing("alice", "default", "t", "a"), std::nullopt);
  EXPECT_EQ(f.registry.standing("alice", "default", "t", "b"), "ops");
  EXPECT_EQ(f.registry.standing("alice", "default", "t", "c"), "ops");
}

TEST(ApprovalRegistry, CancelledByItsClientOnlyForTheSameIdentityServerSessionAndId) {
  fixture f;
  auto held = f.hold("alice");
  EXPECT_FALSE(f.registry.cancel_request("bob", "default", "s", "n:7"));
  EXPECT_FALSE(f.registry.cancel_request("alice", "other", "s", "n:7"));
  EXPECT_FALSE(f.registry.cancel_request("alice", "default", "t", "n:7"));
  EXPECT_FALSE(f.registry.cancel_request("alice", "default", "s", "s:7"));
  EXPECT_TRUE(f.registry.cancel_request("alice", "default", "s", "n:7"));
  EXPECT_EQ(f.sent.size(), 1u);
  EXPECT_FALSE(f.registry.cancel_request("alice", "default", "s", "n:7")) << "once";
  EXPECT_EQ(f.registry.take(held.id).state, approval_state::cancelled);
}

TEST(ApprovalRegistry, AnEndCountsOnceEvenAfterADecision) {
  fixture f;
  auto timed_out = f.hold("alice");
  f.registry.end(timed_out.id, approval_state::timed_out);
  auto decided = f.hold("alice");
  f.registry.decide(decided.id, true, "ops", "");
  // The shard timed it out before the decision reached it: the call did not run.
  f.registry.end(decided.id, approval_state::timed_out);
  std::string m;
  f.registry.append_metrics(m);
  EXPECT_NE(m.find("mcpgate_approvals_total{outcome=\"timed_out\"} 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("mcpgate_approvals_total{outcome=\"approved\"} 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("mcpgate_approvals_held_total 2\n"), std::string::npos) << m;
  EXPECT_NE(m.find("mcpgate_approvals_pending 0\n"), std::string::npos) << m;
  EXPECT_NE(m.find("mcpgate_approval_decision_seconds_count 1\n"), std::string::npos) << m;
}

TEST(ApprovalRegistry, ANewSubscriberGetsASnapshotThenOnlyWhatFollows) {
  fixture f;
  std::string out;
  uint64_t cursor = f.registry.events_since(approval_registry::new_subscriber, out);
  EXPECT_EQ(out, "event: snapshot\ndata: []\n\n");
  auto held = f.hold("alice");
  out.clear();
  cursor = f.registry.events_since(cursor, out);
  EXPECT_EQ(out.substr(0, 19), "event: held\ndata: {");
  EXPECT_EQ(out.find("snapshot"), std::string::npos);
  EXPECT_EQ(out.find('\n', 19), out.size() - 2) << "one data line: " << out;
  out.clear();
  f.registry.events_since(cursor, out);
  EXPECT_EQ(out, "") << "nothing new";
  f.registry.decide(held.id, false, "ops", "no");
  out.clear();
  cursor = f.registry.events_since(cursor, out);
  EXPECT_NE(out.find("event: denied\n"), std::string::npos);
  EXPECT_NE(out.find(R"("by":"ops","reason":"no")"), std::string::npos) << out;
  // A reader that fell behind every kept event gets a snapshot instead.
  for (int i = 0; i < 300; ++i) f.registry.end(f.hold("bob").id, approval_state::cancelled);
  out.clear();
  f.registry.events_since(cursor, out);
  EXPECT_EQ(out, "event: snapshot\ndata: []\n\n");
}

}  // namespace
}  // namespace mcpgate::net
