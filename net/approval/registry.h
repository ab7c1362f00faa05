#pragma once

// Calls held for a human's approval, process-wide: the shards put a held call here and park
// its exchange; operators (the admin listener's API, page and the command line) or the human
// at the client decide; the decision goes back to the holding shard as a resume message.
//
// Control plane by nature: a call waits here for seconds to minutes, so the registry takes a
// mutex, and a shard touches it only for a call an approve_if rule holds (never on the path of
// an ordinary request). Every record belongs to the identity whose call it holds: the client
// side can answer only its own, and a standing approval ("the same call for an hour") is
// bound to {identity, server, tool, SHA-256 of the arguments}.

#include <sys/eventfd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/mailbox.h"

namespace mcpgate::net {

// What is held, as the approver sees it; copied from the exchange when the call is held.
struct approval_subject {
  std::string identity;
  std::string session;  // the upstream's session id; empty when none
  std::string server;
  std::string tool;
  std::string arguments_sha256;  // 64 hex, of the raw argument bytes
  std::string arguments;         // JSON for the approver, as audit.arguments allows
  std::string rule;              // "tools.<name>.approve_if[i]"
  std::string message;           // the rule's message
  std::string policy_revision;
  // The call's JSON-RPC id, by value ("n:7", "s:abc"): a notifications/cancelled from the same
  // identity and session names it.
  std::string request_key;
  bool via_client = false;  // the human at the client was asked (elicitation)
};

enum class approval_state : uint8_t { pending, approved, denied, timed_out, cancelled };
std::string_view approval_state_name(approval_state s);

// How a held call ended, as the shard reads it when resumed.
struct approval_resolution {
  approval_state state = approval_state::pending;
  std::string by;      // who decided ("operator:<name>", "client:<identity>")
  std::string reason;  // the approver's, may be empty
};

struct approval_limits {
  size_t max_pending = 1024;             // held at once, in the whole process
  size_t max_pending_per_identity = 16;  // held at once for one identity
  size_t max_standing = 4096;            // standing approvals ("for a duration")
  int64_t max_standing_ms = 86'400'000;  // the longest an approver may approve for
  size_t max_event_subscribers = 32;     // open /approvals/events streams
};

class approval_registry {
 public:
  // Delivers a message to a shard's inbox; the registry calls it with its lock held, so calls
  // are never concurrent.
  using poster = std::function<bool(unsigned shard, const core::message&)>;

  approval_registry(approval_limits limits, poster post);
  ~approval_registry();
  approval_registry(const approval_registry&) = delete;
  approval_registry& operator=(const approval_registry&) = delete;

  // Shard side. ------------------------------------------------------------------------------

  enum class hold_status : uint8_t { held, full_process, full_identity };
  struct hold_result {
    hold_status status = hold_status::held;
    std::string id;  // held: the record's id ("ap-" and 24 hex digits)
  };
  // Records a held call; `resume` is the message the shard wants back when it is decided.
  hold_result hold(approval_subject subject, int64_t timeout_ms, unsigned shard,
                   const core::message& resume);
  // The standing approval that covers this call, if one does: who gave it.
  std::optional<std::string> standing(std::string_view identity, std::string_view server,
                                      std::string_view tool, std::string_view arguments_sha256);
  // The decision for a resumed exchange; the record leaves the registry.
  approval_resolution take(std::string_view id);
  // The exchange ended without going on (client left, deadline, drain): the record leaves with
  // this state, unless someone decided first (then that decision is returned, and stands in
  // the record of events, but the call does not run: the shard is the authority).
  void end(std::string_view id, approval_state why);

  // Whether any call is held now (one atomic load: a notifications/cancelled looks further only
  // then).
  bool pending_any() const { return pending_count_.load(std::memory_order_relaxed) > 0; }
  // The client cancelled the call it waits with (notifications/cancelled naming its id): the
  // record ends as cancelled and its shard is told. False when no such call is pending.
  bool cancel_request(std::string_view identity, std::string_view server, std::string_view session,
                      std::string_view request_key);

  // Approver side. ---------------------------------------------------------------------------

  enum class decide_status : uint8_t { decided, not_found, already_decided };
  // An operator approves or denies a pending call. With for_ms > 0, an approval also stands
  // for the same {identity, server, tool, arguments} that long (at most max_standing_ms).
  decide_status decide(std::string_view id, bool approve, std::string_view by,
                       std::string_view reason, int64_t for_ms = 0);
  // The human at the client answers for a call it was asked about: only for a call of the same
  // identity and session (to anyone else the record does not exist); never a standing one.
  decide_status decide_as_client(std::string_view id, bool approve, std::string_view reason,
                                 std::string_view identity, std::string_view session);

  // The pending calls as a JSON array, oldest first.
  std::string pending_json() const;
  // Events after `cursor` as SSE text ("event: <kind>\ndata: <json>\n\n"), and the new cursor.
  // A new subscriber (new_subscriber), or one whose cursor is older than the kept events, gets
  // a "snapshot" event (every pending call) instead.
  static constexpr uint64_t new_subscriber = UINT64_MAX;
  uint64_t events_since(uint64_t cursor, std::string& out) const;
  // Readable (eventfd) when events were added; read it to clear.
  int event_fd() const { return event_fd_; }

  // Prometheus exposition of the approval metrics.
  void append_metrics(std::string& out) const;

  const approval_limits& limits() const { return limits_; }

 private:
  struct record {
    std::string id;
    approval_subject subject;
    int64_t held_realtime_ms = 0;
    int64_t held_ns = 0;  // monotonic, for the time to decision
    int64_t expires_realtime_ms = 0;
    unsigned shard = 0;
    core::message resume;
    approval_resolution resolution;
  };
  struct standing_approval {
    std::string by;
    int64_t until_ns = 0;
  };

  void publish(std::string_view kind, const record& r);  // with mu_ held
  // With mu_ held: the decision on a pending record, told to its shard.
  void resolve(record& r, bool approve, std::string_view by, std::string_view reason);
  void append_record(std::string& out, const record& r) const;
  void observe_decision(const record& r);  // with mu_ held
  static std::string standing_key(std::string_view identity, std::string_view server,
                                  std::string_view tool, std::string_view digest);

  approval_limits limits_;
  poster post_;
  int event_fd_;
  mutable std::mutex mu_;
  std::map<std::string, record, std::less<>> records_;  // pending and decided-not-taken
  std::map<std::string, standing_approval, std::less<>> standing_;
  // Recent events for /approvals/events: sequence number and SSE text.
  std::deque<std::pair<uint64_t, std::string>> events_;
  uint64_t next_event_ = 1;
  std::atomic<size_t> pending_count_{0};

  // Metrics.
  uint64_t held_total_ = 0;
  std::array<uint64_t, 5> ended_total_{};  // by approval_state
  uint64_t standing_used_total_ = 0;
  static constexpr std::array<int64_t, 10> kBucketsMs{1000,   5000,   15000,  30000,   60000,
                                                      120000, 300000, 600000, 1800000, 3600000};
  std::array<uint64_t, kBucketsMs.size() + 1> decision_buckets_{};
  uint64_t decision_count_ = 0;
  double decision_sum_s_ = 0;
};

}  // namespace mcpgate::net
