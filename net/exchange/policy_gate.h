#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/exchange/gate.h"
#include "policy/access_config.h"
#include "policy/engine.h"
#include "policy/tools_list_filter.h"

namespace mcpgate::net {

// The policy gate's tickets (defined in its .cc).
class policy_ticket_base : public gate_ticket {};

// A gate_config carrying the policy: identities, grants and their compiled documents.
struct policy_gate_config final : gate_config {
  explicit policy_gate_config(std::shared_ptr<const policy::access_config> a)
      : access(std::move(a)) {}
  std::shared_ptr<const policy::access_config> access;
};

// The gate that asks the policy engine. admit() authenticates (401 when identities are
// configured and the key is missing or unknown); decide() runs every tools/call of the body
// through policy::decide() and answers denials itself; tools/list responses are filtered per
// grant when the grant hides tools.
//
// Batches: when any message of a batch is denied, no message of it is forwarded (forwarding
// part of a batch would mean re-serialising it); the gateway answers every request of the
// batch, the denied ones with their denial, the others with error -32012.
class policy_gate final : public gate {
 public:
  static constexpr int batch_refused_code = -32012;
  static constexpr int unauthenticated_code = -32040;  // -32001 is the SDKs' "session not found"

  explicit policy_gate(std::shared_ptr<const policy::access_config> access);

  std::unique_ptr<gate_ticket> new_ticket() override;
  bool owns(const gate_ticket& ticket) const override;
  bool admit(const request_view& request, gate_ticket& ticket, gate_reply& reply) override;
  bool decide(const request_view& request, const jsonrpc_result& body, gate_ticket& ticket,
              gate_reply& reply) override;
  filter_result filter_response(gate_ticket& ticket, std::string_view message,
                                std::string& out) override;
  std::span<const tool_change_record> tool_changes() const override;
  void refuse_held(std::string_view id_token, std::string_view tool, std::string_view rule,
                   call_decision outcome, std::string_view message, gate_reply& reply) override;
  bool resource_metadata(const request_view& request, gate_reply& reply) override;

 private:
  // The identity a bearer JWT names, or null with the reason set.
  const policy::identity* from_token(const policy::oauth_settings& oauth, std::string_view bearer,
                                     const request_view& request, int64_t now_s,
                                     policy_ticket_base& ticket, policy::token_error& refused,
                                     bool& scope_missing, bool& no_grant, bool& full);
  // The resource's URL (configured, or as the client reached it) and its metadata's.
  std::string resource_url(const policy::oauth_settings& oauth, const request_view& request) const;
  std::string metadata_url(const policy::oauth_settings& oauth, const request_view& request) const;

  // The denial of a call the server's pins refuse (rule "pins"); its message lives until the
  // next call.
  policy::decision refuse_by_pins(const policy::server_pins& pins, std::string_view tool);

  std::shared_ptr<const policy::access_config> access_;
  policy::decide_scratch decide_scratch_;
  policy::tools_list_scratch list_scratch_;
  std::string reply_body_;
  std::string denial_;
  std::string batch_denials_;
  std::vector<size_t> denied_;  // indexes into the batch, reused
  std::string pin_message_;
  std::string reply_headers_;
  policy::token_claims claims_;
  std::string token_key_;
  std::unordered_map<std::string, const policy::identity*> token_identities_;  // this shard's
  std::vector<tool_change_record> changes_;
  std::vector<std::string> change_hex_;  // what changes_ points into
};

}  // namespace mcpgate::net
