#include "net/exchange/policy_gate.h"

#include "core/clock.h"

#include <openssl/crypto.h>
#include <time.h>

#include <algorithm>

#include "net/http/writer.h"
#include "policy/denial.h"
#include "policy/identity.h"
#include "policy/json_writer.h"

namespace mcpgate::net {
namespace {

class policy_ticket final : public policy_ticket_base {
 public:
  explicit policy_ticket(const policy_gate* owner, std::shared_ptr<const policy::access_config> a)
      : owner_(owner), access_(std::move(a)) {}

  void completed(int, bool upstream_handled) override {
    if (!upstream_handled)
      for (const policy::decision& d : allowed_) policy::refund(d);
    allowed_.clear();
  }

  const policy_gate* owner_;
  // Keeps the identity, grant and counters alive while this exchange uses them.
  std::shared_ptr<const policy::access_config> access_;
  const policy::identity* who_ = nullptr;
  const policy::grant_policy* policy_ = nullptr;  // the grant's policy for the route's server
  const policy::server_pins* pins_ = nullptr;     // the route's server's pins, if any
  // The Authorization header that last authenticated on this connection and whom it named: a
  // keep-alive client repeats it on every request, and the SHA-256 and the walk over every
  // identity need not be repeated with it. Valid as long as access_ (this ticket's gate).
  std::string cached_authorization_;
  const policy::identity* cached_who_ = nullptr;
  // The cached credential was an access token: it is taken again only until it expires.
  int64_t cached_expires_s_ = 0;
  std::string issuer_;                     // the token's "iss", for the audit log
  std::vector<policy::decision> allowed_;  // decisions holding reservations
};

bool is_tools_call(const jsonrpc_message& m) {
  return (m.kind == message_kind::request || m.kind == message_kind::notification) &&
         m.method == "tools/call";
}

}  // namespace

policy_gate::policy_gate(std::shared_ptr<const policy::access_config> access)
    : access_(std::move(access)) {}

std::unique_ptr<gate_ticket> policy_gate::new_ticket() {
  return std::make_unique<policy_ticket>(this, access_);
}

bool policy_gate::owns(const gate_ticket& ticket) const {
  auto* t = dynamic_cast<const policy_ticket*>(&ticket);
  return t && t->owner_ == this;
}

bool policy_gate::admit(const request_view& request, gate_ticket& ticket, gate_reply& reply) {
  auto& t = static_cast<policy_ticket&>(ticket);
  t.filter_response = false;
  t.consumed_credential = access_->anonymous() == nullptr;
  const policy::oauth_settings* oauth = access_->oauth();
  // Compared in constant time for its length: a connection shared by two clients (behind a
  // proxy) must not learn the other's key from how long a mismatch took. A cached token is
  // taken again only until it expires.
  std::string_view presented = request.authorization;
  int64_t now_s = oauth ? core::realtime_ns() / 1'000'000'000 : 0;
  policy::token_error refused = policy::token_error::none;
  bool scope_missing = false, no_grant = false, full = false;
  if (t.cached_who_ && presented.size() == t.cached_authorization_.size() &&
      CRYPTO_memcmp(presented.data(), t.cached_authorization_.data(), presented.size()) == 0 &&
      (t.cached_expires_s_ == 0 || now_s < t.cached_expires_s_ + oauth->rules.clock_skew_s)) {
    t.who_ = t.cached_who_;
  } else {
    t.cached_who_ = nullptr;
    t.issuer_.clear();
    t.cached_expires_s_ = 0;
    std::string_view bearer = policy::bearer_token(presented);
    if (oauth && policy::looks_like_jwt(bearer)) {
      t.who_ =
          from_token(*oauth, bearer, request, now_s, t, refused, scope_missing, no_grant, full);
    } else {
      t.who_ = policy::authenticate(*access_, presented);
    }
    if (t.who_ && t.consumed_credential) {
      t.cached_authorization_.assign(presented);
      t.cached_who_ = t.who_;
    }
  }
  t.identity = t.who_ ? std::string_view(t.who_->name) : std::string_view();
  t.grant = t.who_ && t.who_->grant ? std::string_view(t.who_->grant->name) : std::string_view();
  t.issuer = t.who_ ? std::string_view(t.issuer_) : std::string_view();
  if (t.who_) return true;
  reply_body_.clear();
  reply.content_type = "application/json";
  reply.rule = {};
  if (!oauth) {
    append_jsonrpc_error(reply_body_, request.request_id, unauthenticated_code,
                         "Unauthorized: a valid API key is required (Authorization: Bearer <key>)");
    reply.http_status = 401;
    reply.extra_headers = "WWW-Authenticate: Bearer realm=\"mcpgate\"\r\n";
    reply.body = reply_body_;
    return false;
  }
  // RFC 6750 and RFC 9728: where to learn how to get a token, and what was wrong with this one.
  reply_headers_ = "WWW-Authenticate: Bearer realm=\"mcpgate\", resource_metadata=\"";
  reply_headers_ += metadata_url(*oauth, request);
  reply_headers_ += '"';
  std::string message;
  if (scope_missing || no_grant || full) {
    reply.http_status = full ? 503 : 403;
    if (scope_missing) {
      reply_headers_ += ", error=\"insufficient_scope\", scope=\"";
      for (size_t i = 0; i < oauth->required_scopes.size(); ++i)
        reply_headers_.append(i ? " " : "").append(oauth->required_scopes[i]);
      reply_headers_ += '"';
      reply.rule = "token.scope";
      message = "Forbidden: the token lacks a scope this resource requires";
    } else if (no_grant) {
      reply.rule = "token.grant";
      message = "Forbidden: the token's claims name no grant of this gateway";
    } else {
      reply.rule = "token.identities";
      message = "Unavailable: the gateway holds as many token identities as it may";
    }
  } else {
    reply.http_status = 401;
    if (refused != policy::token_error::none) {
      reply_headers_ += ", error=\"invalid_token\", error_description=\"";
      reply_headers_ += policy::token_error_text(refused);
      reply_headers_ += '"';
      reply.rule = policy::token_error_rule(refused);
      message = "Unauthorized: " + std::string(policy::token_error_text(refused));
    } else {
      message = "Unauthorized: an access token or API key is required (Authorization: Bearer ...)";
    }
  }
  reply_headers_ += "\r\n";
  append_jsonrpc_error(reply_body_, request.request_id, unauthenticated_code, message);
  reply.extra_headers = reply_headers_;
  reply.body = reply_body_;
  return false;
}

const policy::identity* policy_gate::from_token(const policy::oauth_settings& oauth,
                                                std::string_view bearer,
                                                const request_view& request, int64_t now_s,
                                                policy_ticket_base& ticket,
                                                policy::token_error& refused, bool& scope_missing,
                                                bool& no_grant, bool& full) {
  auto& t = static_cast<policy_ticket&>(ticket);
  policy::token_rules const* rules = &oauth.rules;
  policy::token_rules derived;
  if (rules->audiences.empty()) {
    // No audience configured: the token must be for this resource as the client reached it.
    derived = oauth.rules;
    derived.audiences.push_back(resource_url(oauth, request));
    rules = &derived;
  }
  policy::token_claims& claims = claims_;
  std::shared_ptr<const policy::jwks> keys = oauth.keys->current();
  refused = policy::verify_token(bearer, *keys, *rules, now_s, claims);
  // A key the set lacks may be one the issuer has just rotated in.
  if (refused == policy::token_error::unknown_kid) oauth.keys->want_refresh();
  if (refused != policy::token_error::none) return nullptr;
  for (const std::string& scope : oauth.required_scopes)
    if (std::find(claims.scopes.begin(), claims.scopes.end(), scope) == claims.scopes.end()) {
      scope_missing = true;
      return nullptr;
    }
  const policy::grant_policy* grant = access_->token_grant(claims.groups);
  if (!grant) {
    no_grant = true;
    return nullptr;
  }
  // Each shard keeps the identities it has seen, so the access_config's table (and its mutex)
  // is asked once per subject and grant.
  std::string& key = token_key_;
  key = grant->name;
  key += '\0';
  key += claims.name;
  const policy::identity* who = nullptr;
  if (auto it = token_identities_.find(key); it != token_identities_.end()) {
    who = it->second;
  } else {
    who = access_->token_identity(claims.name, *grant);
    if (!who) {
      full = true;
      return nullptr;
    }
    if (token_identities_.size() >= oauth.max_identities) token_identities_.clear();
    token_identities_.emplace(key, who);
  }
  t.issuer_ = claims.issuer;
  t.cached_expires_s_ = claims.expires_s;
  return who;
}

std::string policy_gate::resource_url(const policy::oauth_settings& oauth,
                                      const request_view& request) const {
  if (!oauth.resource.empty()) return oauth.resource;
  std::string url = "http://";
  url.append(request.host);
  url.append(request.path);
  return url;
}

std::string policy_gate::metadata_url(const policy::oauth_settings& oauth,
                                      const request_view& request) const {
  // RFC 9728 section 3.1: the well-known prefix, then the resource's path.
  std::string resource = resource_url(oauth, request);
  size_t scheme = resource.find("://");
  size_t path = resource.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (path == std::string::npos) return resource + std::string(metadata_prefix);
  return resource.substr(0, path) + std::string(metadata_prefix) + resource.substr(path);
}

bool policy_gate::resource_metadata(const request_view& request, gate_reply& reply) {
  const policy::oauth_settings* oauth = access_->oauth();
  if (!oauth) return false;
  reply_body_ = "{\"resource\":";
  policy::append_json_string(reply_body_, resource_url(*oauth, request));
  reply_body_ += ",\"authorization_servers\":[";
  policy::append_json_string(reply_body_, oauth->rules.issuer);
  reply_body_ += "],\"bearer_methods_supported\":[\"header\"]";
  if (!oauth->scopes_supported.empty()) {
    reply_body_ += ",\"scopes_supported\":[";
    for (size_t i = 0; i < oauth->scopes_supported.size(); ++i) {
      if (i) reply_body_ += ',';
      policy::append_json_string(reply_body_, oauth->scopes_supported[i]);
    }
    reply_body_ += ']';
  }
  reply_body_ += "}";
  reply.http_status = 200;
  reply.extra_headers = {};
  reply.content_type = "application/json";
  reply.body = reply_body_;
  return true;
}

bool policy_gate::decide(const request_view& request, const jsonrpc_result& body,
                         gate_ticket& ticket, gate_reply& reply) {
  auto& t = static_cast<policy_ticket&>(ticket);
  t.allowed_.clear();
  t.verdicts.clear();
  t.approval = {};
  denied_.clear();
  const policy::grant_policy* grant =
      t.who_->grant ? &t.who_->grant->for_server(request.server) : nullptr;
  t.policy_ = grant;
  t.pins_ = access_->pins_for(request.server);
  int64_t now = core::monotonic_ns();
  policy::subject who{t.who_, request.session_id, request.server};
  // Decisions of denied messages are written out as they are found: they point into the
  // extractor's scratch (tool names), which stays valid for this whole call.
  reply_body_.clear();
  batch_denials_.clear();
  for (size_t i = 0; i < body.messages.size(); ++i) {
    const jsonrpc_message& m = body.messages[i];
    if (m.kind == message_kind::request && m.method == "tools/list" && grant &&
        (t.pins_ || policy::needs_tools_list_filter(*grant, access_->hide_denied_tools())))
      t.filter_response = true;
    t.verdicts.push_back({});
    if (!is_tools_call(m)) continue;
    policy::call what{m.method, m.name ? *m.name : std::string_view(),
                      m.arguments ? *m.arguments : std::string_view(), request.approved};
    // A tool whose definition changed since it was pinned runs under no policy the operator
    // reviewed: refused before any counter is asked.
    policy::decision d = t.pins_ && t.pins_->refuses_call(what.tool)
                             ? refuse_by_pins(*t.pins_, what.tool)
                             : policy::decide(who, what, now, decide_scratch_);
    if (d.outcome == policy::verdict::held) {
      if (!body.batch && m.kind == message_kind::request) {
        // Held for a human (net/approval): no count is taken until someone approves.
        t.approval = {
            true,
            d.approval->via == policy::approval_via::client,
            d.approval->timeout_ms,
            what.tool,
            what.arguments_json,
            d.rule,
            d.approval->message,
            grant && grant->doc ? std::string_view(grant->doc->revision) : std::string_view()};
        t.verdicts.back() = {call_decision::allowed, d.rule};
        continue;
      }
      // A notification has no one to answer and a batch cannot wait for one of its calls.
      d.outcome = policy::verdict::denied;
      d.message = body.batch ? std::string_view(
                                   "this call requires a human's approval, which "
                                   "a call inside a batch cannot wait for")
                             : std::string_view(
                                   "this call requires a human's approval, which "
                                   "a notification cannot wait for");
    }
    if (d.allowed()) {
      t.allowed_.push_back(std::move(d));
      continue;
    }
    denied_.push_back(i);
    t.verdicts.back() = {d.outcome == policy::verdict::rate_limited ? call_decision::rate_limited
                                                                    : call_decision::denied,
                         d.rule};
    policy::write_denial(d, m.kind == message_kind::request ? m.id : std::string_view(),
                         access_->deny_as(), denial_);
    if (!body.batch) {
      reply_body_ = denial_;
    } else if (!denial_.empty()) {
      if (!batch_denials_.empty()) batch_denials_ += ',';
      batch_denials_ += denial_;
    }
  }
  if (denied_.empty()) return true;
  for (gate_ticket::verdict& v : t.verdicts)
    if (v.decision == call_decision::allowed) v = {call_decision::denied, "batch"};

  // Nothing of this body is forwarded: give back what the allowed messages reserved.
  for (const policy::decision& d : t.allowed_) policy::refund(d);
  t.allowed_.clear();
  t.filter_response = false;
  if (body.batch) {
    reply_body_.clear();
    reply_body_.push_back('[');  // (assigning "[" trips GCC 12's -Wrestrict false positive)
    reply_body_ += batch_denials_;
    size_t next_denied = 0;
    for (size_t i = 0; i < body.messages.size(); ++i) {
      if (next_denied < denied_.size() && denied_[next_denied] == i) {
        ++next_denied;
        continue;
      }
      const jsonrpc_message& m = body.messages[i];
      if (m.kind != message_kind::request) continue;
      if (reply_body_.size() > 1) reply_body_ += ',';
      append_jsonrpc_error(reply_body_, m.id, batch_refused_code,
                           "not forwarded: another message of this batch was denied by policy");
    }
    reply_body_ += "]";
    if (reply_body_ == "[]") reply_body_.clear();
  }
  reply.extra_headers = {};
  if (reply_body_.empty()) {
    reply.http_status = 202;  // only notifications were denied: no body, as the upstream would
    reply.content_type = {};
    reply.body = {};
  } else {
    reply.http_status = 200;
    reply.content_type = "application/json";
    reply.body = reply_body_;
  }
  return false;
}

void policy_gate::refuse_held(std::string_view id_token, std::string_view tool,
                              std::string_view rule, call_decision outcome,
                              std::string_view message, gate_reply& reply) {
  policy::decision d;
  d.outcome = outcome == call_decision::approval_timeout ? policy::verdict::approval_timeout
                                                         : policy::verdict::approval_denied;
  d.tool = tool;
  d.rule = rule;
  d.message = message;
  policy::write_denial(d, id_token, access_->deny_as(), reply_body_);
  reply.http_status = 200;
  reply.extra_headers = {};
  reply.content_type = "application/json";
  reply.body = reply_body_;
}

policy::decision policy_gate::refuse_by_pins(const policy::server_pins& pins,
                                             std::string_view tool) {
  pins.counts().calls_refused.fetch_add(1, std::memory_order_relaxed);
  pin_message_.clear();
  pin_message_ += "tool '";
  pin_message_ += tool;
  pin_message_ += pins.find(tool) ? "' changed since it was pinned in " : "' is not pinned in ";
  pin_message_ += pins.file();
  pin_message_ += "; an operator must review it (mcpgate pins diff) before it can be called";
  policy::decision d;
  d.outcome = policy::verdict::denied;
  d.tool = tool;
  d.rule = "pins";
  d.message = pin_message_;
  return d;
}

std::span<const tool_change_record> policy_gate::tool_changes() const {
  return changes_;
}

filter_result policy_gate::filter_response(gate_ticket& ticket, std::string_view message,
                                           std::string& out) {
  auto& t = static_cast<policy_ticket&>(ticket);
  changes_.clear();
  if (!t.who_ || !t.policy_) return filter_result::unchanged;
  policy::filter_outcome outcome = policy::filter_tools_list(
      message, *t.policy_, access_->hide_denied_tools(), list_scratch_, out, t.pins_);
  if (!list_scratch_.pin_notices().empty()) {
    const auto& notices = list_scratch_.pin_notices();
    change_hex_.resize(2 * notices.size());  // sized first: changes_ points into it
    for (size_t i = 0; i < notices.size(); ++i) {
      change_hex_[2 * i] = policy::digest_hex(notices[i].pinned);
      change_hex_[2 * i + 1] = notices[i].readable ? policy::digest_hex(notices[i].seen) : "";
      changes_.push_back({notices[i].tool, change_hex_[2 * i], change_hex_[2 * i + 1],
                          policy::action_name(notices[i].action)});
    }
  }
  switch (outcome) {
    case policy::filter_outcome::unchanged:
      return filter_result::unchanged;
    case policy::filter_outcome::filtered:
      return filter_result::replaced;
    case policy::filter_outcome::invalid:
      return filter_result::invalid;
  }
  return filter_result::invalid;
}

}  // namespace mcpgate::net
