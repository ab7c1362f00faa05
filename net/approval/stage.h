#pragma once

// The approval stage: a tools/call an approve_if rule holds (the gate says so in the ticket's
// approval_ask) waits here, parked, for a human. The call is recorded in the registry, the
// exchange is held with the rule's timeout as its deadline, and it goes on when the registry's
// resume message arrives: approved, it is decided again as approved (limits count it now) and
// forwarded byte for byte; denied, timed out or abandoned, it never reaches the upstream. A
// standing approval for the same {identity, server, tool, arguments} lets the call through
// without holding it.
//
// With "via": "client", a client that declared elicitation (sealed into its session's token at
// initialize) on revision 2025-06-18 or 2025-11-25 is asked itself: the call's response becomes
// an event stream at once, its first event an elicitation/create request; the client's answer
// (a response to that request, on a POST of its own) decides, and whatever then answers the
// call comes as the stream's last event. Operators can still decide it on the admin listener.
//
// A call that carried params._meta.progressToken gets its response as such a stream too, with
// a notifications/progress at once and then every few seconds while it waits.

#include "net/approval/registry.h"
#include "net/exchange/stage.h"
#include "net/observe/decision.h"

namespace mcpgate::net {

class approval_stage final : public stage {
 public:
  explicit approval_stage(approval_registry& registry) : registry_(registry) {}

  std::string_view name() const override { return "approval"; }
  stage_phase phase() const override { return stage_phase::body; }
  stage_result run(exchange& ex, shard_context& ctx) override;
  stage_result resume(exchange& ex, shard_context& ctx, const core::message& m) override;
  void cancel(exchange& ex, shard_context& ctx, hold_end why) override;
  hold_expiry expired(exchange& ex, shard_context& ctx) override;

  // A call that carried a progress token gets a notification this often while it waits (or
  // four times in all, for a timeout under 20 s).
  static constexpr int64_t progress_interval_ns = 5'000'000'000;

 private:
  // Decides the call again as approved: proceed, or the gate's refusal (a limit reached).
  stage_result approved(exchange& ex, shard_context& ctx);
  stage_result refuse(exchange& ex, shard_context& ctx, call_decision outcome);
  // Asks the human at the client (elicitation/create in the call's response stream).
  void ask_client(exchange& ex, std::string_view arguments_shown);
  static void start_stream(exchange& ex);
  static void append_progress(exchange& ex, int64_t now_ns);
  static int64_t next_wake(const exchange& ex, int64_t now_ns);

  approval_registry& registry_;
  std::string message_;  // a refusal's text, reused
};

}  // namespace mcpgate::net
