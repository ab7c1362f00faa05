#include "net/approval/registry.h"

#include <openssl/rand.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "core/clock.h"
#include "policy/json_writer.h"

namespace mcpgate::net {
namespace {

constexpr size_t kKeptEvents = 256;

int64_t realtime_ms() {
  return core::realtime_ns() / 1'000'000;
}

std::string new_id() {
  static constexpr char hex[] = "0123456789abcdef";
  unsigned char bytes[12];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    // The id only names a record to its approver; it is not a credential (the admin token and
    // the identity check are), so a counter-derived id would do, but RAND_bytes does not fail
    // on Linux with a seeded pool.
    static std::atomic<uint64_t> fallback{1};
    uint64_t n = fallback.fetch_add(1);
    for (size_t i = 0; i < sizeof bytes; ++i) bytes[i] = static_cast<unsigned char>(n >> (i % 8));
  }
  std::string id = "ap-";
  for (unsigned char b : bytes) {
    id += hex[b >> 4];
    id += hex[b & 15];
  }
  return id;
}

void append_int(std::string& out, int64_t v) {
  policy::append_json_int(out, v);
}

}  // namespace

std::string_view approval_state_name(approval_state s) {
  switch (s) {
    case approval_state::pending:
      return "pending";
    case approval_state::approved:
      return "approved";
    case approval_state::denied:
      return "denied";
    case approval_state::timed_out:
      return "timed_out";
    case approval_state::cancelled:
      return "cancelled";
  }
  return "pending";
}

approval_registry::approval_registry(approval_limits limits, poster post)
    : limits_(limits), post_(std::move(post)), event_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

approval_registry::~approval_registry() {
  if (event_fd_ >= 0) close(event_fd_);
}

std::string approval_registry::standing_key(std::string_view identity, std::string_view server,
                                            std::string_view tool, std::string_view digest) {
  std::string key;
  key.reserve(identity.size() + server.size() + tool.size() + digest.size() + 3);
  key.append(identity).push_back('\0');
  key.append(server).push_back('\0');
  key.append(tool).push_back('\0');
  key.append(digest);
  return key;
}

approval_registry::hold_result approval_registry::hold(approval_subject subject, int64_t timeout_ms,
                                                       unsigned shard,
                                                       const core::message& resume) {
  std::lock_guard lock(mu_);
  size_t pending = 0, mine = 0;
  for (const auto& [id, r] : records_) {
    if (r.resolution.state != approval_state::pending) continue;
    ++pending;
    if (r.subject.identity == subject.identity) ++mine;
  }
  if (pending >= limits_.max_pending) return {hold_status::full_process, {}};
  if (mine >= limits_.max_pending_per_identity) return {hold_status::full_identity, {}};
  record r;
  r.id = new_id();
  r.subject = std::move(subject);
  r.held_realtime_ms = realtime_ms();
  r.held_ns = core::monotonic_ns();
  r.expires_realtime_ms = r.held_realtime_ms + timeout_ms;
  r.shard = shard;
  r.resume = resume;
  std::string id = r.id;
  auto [it, inserted] = records_.emplace(id, std::move(r));
  ++held_total_;
  pending_count_.fetch_add(1, std::memory_order_relaxed);
  publish("held", it->second);
  return {hold_status::held, std::move(id)};
}

std::optional<std::string> approval_registry::standing(std::string_view identity,
                                                       std::string_view server,
                                                       std::string_view tool,
                                                       std::string_view arguments_sha256) {
  std::lock_guard lock(mu_);
  if (standing_.empty()) return std::nullopt;
  auto it = standing_.find(standing_key(identity, server, tool, arguments_sha256));
  if (it == standing_.end()) return std::nullopt;
  if (it->second.until_ns <= core::monotonic_ns()) {
    standing_.erase(it);
    return std::nullopt;
  }
  ++standing_used_total_;
  return it->second.by;
}

approval_resolution approval_registry::take(std::string_view id) {
  std::lock_guard lock(mu_);
  auto it = records_.find(id);
  if (it == records_.end()) return {approval_state::cancelled, {}, {}};
  approval_resolution r = std::move(it->second.resolution);
  records_.erase(it);
  return r;
}

void approval_registry::end(std::string_view id, approval_state why) {
  std::lock_guard lock(mu_);
  auto it = records_.find(id);
  if (it == records_.end()) return;
  record& r = it->second;
  bool was_pending = r.resolution.state == approval_state::pending;
  r.resolution.state = why;
  if (was_pending) {
    ++ended_total_[static_cast<size_t>(why)];
    pending_count_.fetch_sub(1, std::memory_order_relaxed);
  }
  // Decided but ended before the decision reached the call: the call did not run, and the
  // page must not show it as approved.
  publish(approval_state_name(why), r);
  records_.erase(it);
}

bool approval_registry::cancel_request(std::string_view identity, std::string_view server,
                                       std::string_view session, std::string_view request_key) {
  std::lock_guard lock(mu_);
  for (auto& [id, r] : records_) {
    const approval_subject& s = r.subject;
    if (r.resolution.state != approval_state::pending || s.request_key != request_key ||
        s.identity != identity || s.server != server || s.session != session)
      continue;
    r.resolution.state = approval_state::cancelled;
    r.resolution.by = "client";
    pending_count_.fetch_sub(1, std::memory_order_relaxed);
    ++ended_total_[static_cast<size_t>(approval_state::cancelled)];
    publish("cancelled", r);
    for (int tries = 0; !post_(r.shard, r.resume) && tries < 100000; ++tries) sched_yield();
    return true;
  }
  return false;
}

void approval_registry::resolve(record& r, bool approve, std::string_view by,
                                std::string_view reason) {
  r.resolution.state = approve ? approval_state::approved : approval_state::denied;
  r.resolution.by.assign(by);
  r.resolution.reason.assign(reason);
  pending_count_.fetch_sub(1, std::memory_order_relaxed);
  ++ended_total_[static_cast<size_t>(r.resolution.state)];
  observe_decision(r);
  publish(approval_state_name(r.resolution.state), r);
  // The shard's inbox is bounded: a full one drains within a loop turn.
  for (int tries = 0; !post_(r.shard, r.resume) && tries < 100000; ++tries) sched_yield();
}

approval_registry::decide_status approval_registry::decide(std::string_view id, bool approve,
                                                           std::string_view by,
                                                           std::string_view reason,
                                                           int64_t for_ms) {
  std::lock_guard lock(mu_);
  auto it = records_.find(id);
  if (it == records_.end()) return decide_status::not_found;
  record& r = it->second;
  if (r.resolution.state != approval_state::pending) return decide_status::already_decided;
  if (approve && for_ms > 0) {
    if (standing_.size() >= limits_.max_standing) {
      // Expired ones go first; if all are live, the soonest to expire does.
      int64_t now = core::monotonic_ns();
      std::erase_if(standing_, [now](const auto& kv) { return kv.second.until_ns <= now; });
      if (standing_.size() >= limits_.max_standing) {
        auto oldest = standing_.begin();
        for (auto s = standing_.begin(); s != standing_.end(); ++s)
          if (s->second.until_ns < oldest->second.until_ns) oldest = s;
        standing_.erase(oldest);
      }
    }
    int64_t ms = std::min(for_ms, limits_.max_standing_ms);
    standing_[standing_key(r.subject.identity, r.subject.server, r.subject.tool,
                           r.subject.arguments_sha256)] = {std::string(by),
                                                           core::monotonic_ns() + ms * 1'000'000};
  }
  resolve(r, approve, by, reason);
  return decide_status::decided;
}

approval_registry::decide_status approval_registry::decide_as_client(std::string_view id,
                                                                     bool approve,
                                                                     std::string_view reason,
                                                                     std::string_view identity,
                                                                     std::string_view session) {
  std::lock_guard lock(mu_);
  auto it = records_.find(id);
  if (it == records_.end() || !it->second.subject.via_client ||
      it->second.subject.identity != identity || it->second.subject.session != session)
    return decide_status::not_found;
  record& r = it->second;
  if (r.resolution.state != approval_state::pending) return decide_status::already_decided;
  resolve(r, approve, "client:" + std::string(identity), reason);
  return decide_status::decided;
}

void approval_registry::observe_decision(const record& r) {
  int64_t ms = (core::monotonic_ns() - r.held_ns) / 1'000'000;
  size_t b = 0;
  while (b < kBucketsMs.size() && ms > kBucketsMs[b]) ++b;
  ++decision_buckets_[b];
  ++decision_count_;
  decision_sum_s_ += static_cast<double>(ms) / 1000.0;
}

void approval_registry::append_record(std::string& out, const record& r) const {
  const approval_subject& s = r.subject;
  auto field = [&out](const char* key, std::string_view value) {
    out += ",\"";
    out += key;
    out += "\":";
    policy::append_json_string(out, value);
  };
  out += "{\"id\":";
  policy::append_json_string(out, r.id);
  field("state", approval_state_name(r.resolution.state));
  field("identity", s.identity);
  if (s.session.empty())
    out += ",\"session\":null";
  else
    field("session", s.session);
  field("server", s.server);
  field("tool", s.tool);
  // JSON the gateway validated; its line breaks (whitespace only, outside strings) become
  // spaces so that an event's data stays on one line.
  out += ",\"arguments\":";
  if (s.arguments.empty()) out += "null";
  for (char c : s.arguments) out += c == '\n' || c == '\r' ? ' ' : c;
  field("arguments_sha256", s.arguments_sha256);
  field("rule", s.rule);
  field("message", s.message);
  field("policy_revision", s.policy_revision);
  field("via", s.via_client ? "client" : "operator");
  out += ",\"held_at_ms\":";
  append_int(out, r.held_realtime_ms);
  out += ",\"expires_at_ms\":";
  append_int(out, r.expires_realtime_ms);
  if (r.resolution.state != approval_state::pending) {
    field("by", r.resolution.by);
    field("reason", r.resolution.reason);
  }
  out += '}';
}

void approval_registry::publish(std::string_view kind, const record& r) {
  std::string text = "event: ";
  text.append(kind);
  text += "\ndata: ";
  append_record(text, r);
  text += "\n\n";
  events_.emplace_back(next_event_++, std::move(text));
  while (events_.size() > kKeptEvents) events_.pop_front();
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(event_fd_, &one, sizeof one);
}

std::string approval_registry::pending_json() const {
  std::lock_guard lock(mu_);
  std::vector<const record*> pending;
  for (const auto& [id, r] : records_)
    if (r.resolution.state == approval_state::pending) pending.push_back(&r);
  std::sort(pending.begin(), pending.end(),
            [](const record* a, const record* b) { return a->held_ns < b->held_ns; });
  std::string out = "[";
  for (const record* r : pending) {
    if (out.size() > 1) out += ',';
    append_record(out, *r);
  }
  out += "]";
  return out;
}

uint64_t approval_registry::events_since(uint64_t cursor, std::string& out) const {
  std::string snapshot;
  {
    std::lock_guard lock(mu_);
    uint64_t oldest = events_.empty() ? next_event_ : events_.front().first;
    if (cursor != new_subscriber && cursor + 1 >= oldest) {
      for (const auto& [seq, text] : events_)
        if (seq > cursor) out += text;
      return next_event_ - 1;
    }
  }
  // New subscriber, or one that fell behind the kept events: everything pending, at once.
  uint64_t now_cursor;
  {
    std::lock_guard lock(mu_);
    now_cursor = next_event_ - 1;
  }
  snapshot = pending_json();
  out += "event: snapshot\ndata: ";
  out += snapshot;
  out += "\n\n";
  return now_cursor;
}

void approval_registry::append_metrics(std::string& out) const {
  std::lock_guard lock(mu_);
  size_t pending = 0;
  for (const auto& [id, r] : records_)
    if (r.resolution.state == approval_state::pending) ++pending;
  out += "# HELP mcpgate_approvals_pending Calls held for a human's approval now.\n";
  out += "# TYPE mcpgate_approvals_pending gauge\n";
  out += "mcpgate_approvals_pending ";
  append_int(out, static_cast<int64_t>(pending));
  out += "\n# HELP mcpgate_approvals_held_total Calls held for a human's approval.\n";
  out += "# TYPE mcpgate_approvals_held_total counter\nmcpgate_approvals_held_total ";
  append_int(out, static_cast<int64_t>(held_total_));
  out += "\n# HELP mcpgate_approvals_total Held calls by how they ended.\n";
  out += "# TYPE mcpgate_approvals_total counter\n";
  for (approval_state s : {approval_state::approved, approval_state::denied,
                           approval_state::timed_out, approval_state::cancelled}) {
    out += "mcpgate_approvals_total{outcome=\"";
    out += approval_state_name(s);
    out += "\"} ";
    append_int(out, static_cast<int64_t>(ended_total_[static_cast<size_t>(s)]));
    out += '\n';
  }
  out +=
      "# HELP mcpgate_approvals_standing_used_total Calls let through by a standing "
      "approval, without being held.\n";
  out +=
      "# TYPE mcpgate_approvals_standing_used_total counter\n"
      "mcpgate_approvals_standing_used_total ";
  append_int(out, static_cast<int64_t>(standing_used_total_));
  out +=
      "\n# HELP mcpgate_approval_decision_seconds Time from holding a call to a human's "
      "decision.\n";
  out += "# TYPE mcpgate_approval_decision_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t b = 0; b < kBucketsMs.size(); ++b) {
    cumulative += decision_buckets_[b];
    out += "mcpgate_approval_decision_seconds_bucket{le=\"";
    append_int(out, kBucketsMs[b] / 1000);
    out += "\"} ";
    append_int(out, static_cast<int64_t>(cumulative));
    out += '\n';
  }
  cumulative += decision_buckets_.back();
  out += "mcpgate_approval_decision_seconds_bucket{le=\"+Inf\"} ";
  append_int(out, static_cast<int64_t>(cumulative));
  out += "\nmcpgate_approval_decision_seconds_sum ";
  char sum[32];
  std::snprintf(sum, sizeof sum, "%.3f", decision_sum_s_);
  out += sum;
  out += "\nmcpgate_approval_decision_seconds_count ";
  append_int(out, static_cast<int64_t>(decision_count_));
  out += '\n';
}

}  // namespace mcpgate::net
