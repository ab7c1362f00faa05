#pragma once

// Who may call what: the identities, the grants and their compiled policies, and how denials
// are answered. Built once per (re)load, immutable afterwards, and held through
// std::shared_ptr<const access_config> so a SIGHUP reload swaps one pointer. Every counter a
// grant, identity or global limit needs is resolved to a limit_counter here, at load, so
// decide() never looks a counter up by name.

#include <array>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "policy/document.h"
#include "policy/limits.h"
#include "policy/oauth.h"
#include "policy/tool_pins.h"

namespace mcpgate::policy {

// How a denied tools/call is answered: a tool result with isError (what the agent's model
// reads) or a JSON-RPC error.
enum class deny_style : uint8_t { result, error };

std::optional<deny_style> parse_deny_style(std::string_view name);

// One limit as it applies to a tool of a grant, with its counter resolved as far as load
// time allows.
struct limit_binding {
  const limit_rule* rule = nullptr;
  limit_counter* counter = nullptr;      // grant and global scope
  uint32_t identity_slot = 0;            // identity scope: index into identity::counters
  session_counters* sessions = nullptr;  // session scope
};

struct compiled_tool {
  const tool_rules* rules = nullptr;       // null for an unlisted tool under default allow
  std::vector<std::string> require_names;  // "tools.<name>.require[i]"
  std::vector<std::string> deny_names;     // "tools.<name>.deny_if[i]"
  std::vector<std::string> approve_names;  // "tools.<name>.approve_if[i]"
  std::vector<limit_binding> limits;       // all_tools limits then the tool's, one per counter
};

struct string_hash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// A grant's policy, compiled against the counter store.
struct grant_policy {
  enum class kind : uint8_t {
    allow_all,  // no policy configured anywhere: everything allowed (announced at start-up)
    no_policy,  // a configured grant without "policy": every tools/call denied
    document,
  };
  std::string name;
  kind mode = kind::document;
  std::shared_ptr<const document> doc;
  std::unordered_map<std::string, compiled_tool, string_hash, std::equal_to<>> tools;
  compiled_tool unlisted;  // tools not under "tools" when the default is allow
  std::unordered_set<std::string, string_hash, std::equal_to<>> hidden;
  // Identity-scoped counters this grant's limits need, in identity_slot order; an identity's
  // counters of this policy start at identity_slot_base (a grant's server policies follow its
  // own).
  std::vector<const limit_rule*> identity_limits;
  uint32_t identity_slot_base = 0;
  std::vector<std::shared_ptr<limit_counter>> owned;  // keeps resolved counters alive
  std::vector<std::shared_ptr<session_counters>> owned_sessions;

  // The upstream (server) this policy is for; empty for the grant's own policy.
  std::string server;
  // Policies that replace this one for the named servers (grants.<g>.upstreams / .servers).
  std::vector<std::pair<std::string, const grant_policy*>> for_servers;
  // The policy that applies to calls to `server`: its override, or this one.
  const grant_policy& for_server(std::string_view server_name) const {
    for (const auto& [name, policy] : for_servers)
      if (name == server_name) return *policy;
    return *this;
  }

  // Hidden from tools/list and denied at call time.
  bool is_hidden(std::string_view tool) const;
  // Denied whatever the arguments: hidden, no policy, default deny and not listed, or a
  // deny_if entry without conditions.
  bool denies_unconditionally(std::string_view tool) const;
};

struct identity {
  std::string name;
  std::array<unsigned char, 32> key_sha256{};
  const grant_policy* grant = nullptr;
  std::vector<limit_counter*> counters;  // identity-scoped, by limit_binding::identity_slot
  std::vector<std::shared_ptr<limit_counter>> owned;
};

class access_config {
 public:
  const std::vector<std::unique_ptr<identity>>& identities() const { return identities_; }
  // The identity every caller is when no identities are configured, else null.
  const identity* anonymous() const { return anonymous_.get(); }
  const grant_policy* find_grant(std::string_view name) const;
  const identity* find_identity(std::string_view name) const;
  deny_style deny_as() const { return deny_as_; }
  bool hide_denied_tools() const { return hide_denied_tools_; }
  // No policy anywhere: the gateway allows everything and should say so at start-up.
  bool allows_everything() const;
  // Some policy holds calls for a human's approval (an approve_if rule).
  bool holds_for_approval() const;
  // The pinned tool definitions of a route's server ("" for the single upstream), or null.
  const server_pins* pins_for(std::string_view server) const {
    for (const auto& p : pins_)
      if (p->server() == server) return p.get();
    return nullptr;
  }
  const std::vector<std::shared_ptr<const server_pins>>& pins() const { return pins_; }

  // Access tokens (null: API keys only).
  const oauth_settings* oauth() const { return oauth_.get(); }
  // The grant a verified token's groups give (oauth_settings::group_grants, else the default);
  // null when none does.
  const grant_policy* token_grant(const std::vector<std::string>& groups) const;
  // The identity a verified token names in `grant`, made on first use with that grant's
  // identity-scoped counters (behind a mutex: once per subject, not per request; shards cache
  // it). Null when max_identities are held.
  const identity* token_identity(std::string_view name, const grant_policy& grant) const;

 private:
  friend class access_config_builder;
  std::shared_ptr<const oauth_settings> oauth_;
  std::vector<std::pair<std::string, const grant_policy*>> token_grants_;
  const grant_policy* default_token_grant_ = nullptr;
  counter_store* store_ = nullptr;
  mutable std::mutex token_mu_;
  mutable std::map<std::string, std::unique_ptr<identity>, std::less<>> token_identities_;
  std::vector<std::unique_ptr<grant_policy>> grants_;
  std::vector<std::unique_ptr<identity>> identities_;
  std::unique_ptr<identity> anonymous_;
  deny_style deny_as_ = deny_style::result;
  bool hide_denied_tools_ = true;
  std::vector<std::shared_ptr<const server_pins>> pins_;
};

// What the gateway hands over from its config file.
struct access_config_source {
  std::string config_file = "config";  // labels errors
  std::string json_path = "$";         // where the identities/grants keys sit in that file
  std::filesystem::path base_dir;      // grant policy paths resolve against it
  std::string identities_json;         // raw JSON array, or empty when absent
  std::string grants_json;             // raw JSON object, or empty when absent
  // --policy, or the config's top-level "policy": the policy of grant "default" when no
  // identities are configured. Resolved against base_dir when relative.
  std::optional<std::filesystem::path> default_policy;
  deny_style deny_as = deny_style::result;
  bool hide_denied_tools = true;
  // The servers (upstreams) a grant may name a policy for; a name not here is an error.
  std::vector<std::string> servers;
  // Pinned tool definitions, per server, loaded by the caller.
  std::vector<std::shared_ptr<const server_pins>> pins;
  // Access tokens, loaded by the caller (its JWKS read); its grant names must be grants here.
  // With it, no static identity is needed, and there is no anonymous caller.
  std::shared_ptr<const oauth_settings> oauth;
};

// Parses identities and grants, loads every policy file, and resolves counters in `store`
// (which must outlive nothing: configs keep their counters alive). Throws load_error naming
// the file and JSON path. With identities, each must name a configured grant; without, every
// caller is identity "anonymous" in grant "default".
std::shared_ptr<const access_config> load_access_config(const access_config_source& source,
                                                        counter_store& store);

// No identities: every caller is "anonymous" in grant "default" with policy `doc` (null:
// allow everything). For tests, benchmarks and the single-policy mode.
std::shared_ptr<const access_config> make_access_config(std::shared_ptr<const document> doc,
                                                        counter_store& store,
                                                        deny_style deny_as = deny_style::result,
                                                        bool hide_denied_tools = true);

}  // namespace mcpgate::policy
