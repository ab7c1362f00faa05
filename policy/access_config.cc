#include "policy/access_config.h"

#include <algorithm>

#include <map>

namespace mcpgate::policy {

namespace {

namespace dom = simdjson::dom;

bool hex_digit(char c, unsigned char* out) {
  if (c >= '0' && c <= '9') {
    *out = static_cast<unsigned char>(c - '0');
  } else if (c >= 'a' && c <= 'f') {
    *out = static_cast<unsigned char>(c - 'a' + 10);
  } else if (c >= 'A' && c <= 'F') {
    *out = static_cast<unsigned char>(c - 'A' + 10);
  } else {
    return false;
  }
  return true;
}

dom::element parse_fragment(dom::parser& parser, const std::string& text, const json_location& at) {
  simdjson::padded_string padded(text);
  auto parsed = parser.parse(padded);
  if (parsed.error())
    at.fail(std::string("invalid JSON: ") + simdjson::error_message(parsed.error()));
  return parsed.value_unsafe();
}

}  // namespace

std::optional<deny_style> parse_deny_style(std::string_view name) {
  if (name == "result") return deny_style::result;
  if (name == "error") return deny_style::error;
  return std::nullopt;
}

bool grant_policy::is_hidden(std::string_view tool) const {
  if (mode != kind::document) return false;
  return doc->hide_all || (!hidden.empty() && hidden.find(tool) != hidden.end());
}

bool grant_policy::denies_unconditionally(std::string_view tool) const {
  switch (mode) {
    case kind::allow_all:
      return false;
    case kind::no_policy:
      return true;
    case kind::document:
      break;
  }
  if (is_hidden(tool)) return true;
  auto it = tools.find(tool);
  if (it == tools.end()) return doc->default_for_unlisted == default_verdict::deny;
  return it->second.rules->denied_unconditionally();
}

const grant_policy* access_config::find_grant(std::string_view name) const {
  for (const auto& g : grants_) {
    if (g->name == name) return g.get();
  }
  return nullptr;
}

const identity* access_config::find_identity(std::string_view name) const {
  if (anonymous_ && anonymous_->name == name) return anonymous_.get();
  for (const auto& i : identities_) {
    if (i->name == name) return i.get();
  }
  return nullptr;
}

bool access_config::allows_everything() const {
  return anonymous_ && anonymous_->grant->mode == grant_policy::kind::allow_all && pins_.empty();
}

const grant_policy* access_config::token_grant(const std::vector<std::string>& groups) const {
  for (const auto& [value, grant] : token_grants_)
    if (std::find(groups.begin(), groups.end(), value) != groups.end()) return grant;
  return default_token_grant_;
}

bool access_config::holds_for_approval() const {
  auto holds = [](const grant_policy& g) {
    if (!g.doc) return false;
    for (const auto& [name, rules] : g.doc->tools)
      if (!rules.approve_if.empty()) return true;
    return false;
  };
  for (const auto& g : grants_)
    if (holds(*g)) return true;
  return anonymous_ && anonymous_->grant && holds(*anonymous_->grant);
}

// Builds an access_config step by step; a class so it can reach access_config's members.
class access_config_builder {
 public:
  explicit access_config_builder(counter_store& store)
      : store_(store), config_(std::make_shared<access_config>()) {}

  void set_options(deny_style deny_as, bool hide_denied_tools,
                   std::vector<std::shared_ptr<const server_pins>> pins = {}) {
    config_->deny_as_ = deny_as;
    config_->hide_denied_tools_ = hide_denied_tools;
    config_->pins_ = std::move(pins);
  }

  grant_policy* add_grant(std::string name, grant_policy::kind mode,
                          std::shared_ptr<const document> doc, std::string server = {}) {
    auto grant = std::make_unique<grant_policy>();
    grant->name = std::move(name);
    grant->server = std::move(server);
    grant->mode = mode;
    grant->doc = std::move(doc);
    if (mode == grant_policy::kind::document) compile(*grant);
    config_->grants_.push_back(std::move(grant));
    return config_->grants_.back().get();
  }

  identity* add_identity(std::string name, const grant_policy* grant, bool anonymous) {
    auto who = std::make_unique<identity>();
    who->name = std::move(name);
    who->grant = grant;
    add_identity_counters(*who, *grant);
    for (const auto& [server, policy] : grant->for_servers) add_identity_counters(*who, *policy);
    identity* raw = who.get();
    if (anonymous) {
      config_->anonymous_ = std::move(who);
    } else {
      config_->identities_.push_back(std::move(who));
    }
    return raw;
  }

  std::shared_ptr<const access_config> finish() { return std::move(config_); }

 private:
  void add_identity_counters(identity& who, const grant_policy& policy) {
    add_identity_counters(store_, who, policy);
  }

 public:
  // Identity-scoped counters of one policy; a server policy's slots follow the grant's.
  static void add_identity_counters(counter_store& store, identity& who,
                                    const grant_policy& policy) {
    for (const limit_rule* rule : policy.identity_limits) {
      auto counter = store.fixed(counter_name(policy, *rule), rule->window, rule->max,
                                 limit_scope::identity, who.name);
      who.counters.push_back(counter.get());
      who.owned.push_back(std::move(counter));
    }
  }

  // Tokens: the group map resolved to grants (an unknown grant name is an error).
  void set_oauth(std::shared_ptr<const oauth_settings> oauth,
                 const std::map<std::string, grant_policy*, std::less<>>& grants,
                 const json_location& at) {
    for (const auto& [value, grant_name] : oauth->group_grants) {
      auto it = grants.find(grant_name);
      if (it == grants.end())
        at.key("grant_from")
            .key("map")
            .key(value)
            .fail("no grant named " + quote_string(grant_name));
      config_->token_grants_.emplace_back(value, it->second);
    }
    if (!oauth->default_grant.empty()) {
      auto it = grants.find(oauth->default_grant);
      if (it == grants.end())
        at.key("grant_from")
            .key("default")
            .fail("no grant named " + quote_string(oauth->default_grant));
      config_->default_token_grant_ = it->second;
    }
    config_->oauth_ = std::move(oauth);
    config_->store_ = &store_;
  }

 public:
 private:
  limit_binding bind(grant_policy& grant, const limit_rule& rule) {
    limit_binding b;
    b.rule = &rule;
    switch (rule.scope) {
      case limit_scope::grant:
      case limit_scope::global: {
        // A server's own policy counts apart from the grant's: its counters are its own.
        auto counter = store_.fixed(counter_name(grant, rule), rule.window, rule.max, rule.scope,
                                    rule.scope == limit_scope::grant ? grant.name : "");
        b.counter = counter.get();
        grant.owned.push_back(std::move(counter));
        break;
      }
      case limit_scope::identity: {
        size_t slot = 0;
        while (slot < grant.identity_limits.size() &&
               grant.identity_limits[slot]->counter != rule.counter) {
          ++slot;
        }
        if (slot == grant.identity_limits.size()) grant.identity_limits.push_back(&rule);
        b.identity_slot = static_cast<uint32_t>(slot);
        break;
      }
      case limit_scope::session: {
        auto family = store_.sessions(counter_name(grant, rule), rule.window, rule.max);
        b.sessions = family.get();
        grant.owned_sessions.push_back(std::move(family));
        break;
      }
    }
    return b;
  }

  static std::string counter_name(const grant_policy& grant, const limit_rule& rule) {
    return grant.server.empty() ? rule.counter : grant.server + "/" + rule.counter;
  }

  void add_limits(grant_policy& grant, compiled_tool& tool, const std::vector<limit_rule>& rules) {
    for (const limit_rule& rule : rules) {
      bool seen = false;
      for (const limit_binding& b : tool.limits) seen = seen || b.rule->counter == rule.counter;
      if (!seen) tool.limits.push_back(bind(grant, rule));
    }
  }

  void compile(grant_policy& grant) {
    const document& doc = *grant.doc;
    for (const std::string& name : doc.hide) grant.hidden.insert(name);
    add_limits(grant, grant.unlisted, doc.all_tools_limits);
    for (const auto& [name, rules] : doc.tools) {
      compiled_tool tool;
      tool.rules = &rules;
      for (size_t i = 0; i < rules.require.size(); ++i) {
        tool.require_names.push_back("tools." + name + ".require[" + std::to_string(i) + "]");
      }
      for (size_t i = 0; i < rules.deny_if.size(); ++i) {
        tool.deny_names.push_back("tools." + name + ".deny_if[" + std::to_string(i) + "]");
      }
      for (size_t i = 0; i < rules.approve_if.size(); ++i) {
        tool.approve_names.push_back("tools." + name + ".approve_if[" + std::to_string(i) + "]");
      }
      add_limits(grant, tool, doc.all_tools_limits);
      add_limits(grant, tool, rules.limits);
      grant.tools.emplace(name, std::move(tool));
    }
  }

  counter_store& store_;
  std::shared_ptr<access_config> config_;
};

std::shared_ptr<const access_config> make_access_config(std::shared_ptr<const document> doc,
                                                        counter_store& store, deny_style deny_as,
                                                        bool hide_denied_tools) {
  access_config_builder builder(store);
  builder.set_options(deny_as, hide_denied_tools);
  auto mode = doc ? grant_policy::kind::document : grant_policy::kind::allow_all;
  const grant_policy* grant = builder.add_grant("default", mode, std::move(doc));
  builder.add_identity("anonymous", grant, true);
  return builder.finish();
}

std::shared_ptr<const access_config> load_access_config(const access_config_source& source,
                                                        counter_store& store) {
  const json_location root(source.config_file, source.json_path);
  dom::parser parser;
  access_config_builder builder(store);
  builder.set_options(source.deny_as, source.hide_denied_tools, source.pins);

  auto resolve = [&](const std::filesystem::path& p) {
    return p.is_relative() ? source.base_dir / p : p;
  };

  // Grants first: identities must name one.
  std::map<std::string, grant_policy*, std::less<>> grants;
  const json_location grants_at = root.key("grants");
  if (!source.grants_json.empty()) {
    dom::element value = parse_fragment(parser, source.grants_json, grants_at);
    if (!value.is_object()) grants_at.fail_expected("an object of grants", value);
    // Copied out first: the simdjson_result temporary dies before the loop body.
    const dom::object fields = value.get_object().value_unsafe();
    for (dom::key_value_pair field : fields) {
      json_location at = grants_at.key(field.key);
      if (field.key.empty()) at.fail("expected a grant name, got \"\"");
      if (grants.count(field.key)) at.fail("duplicate grant " + quote_string(field.key));
      if (!field.value.is_object()) at.fail_expected("an object {\"policy\"}", field.value);
      dom::object grant = field.value.get_object().value_unsafe();
      check_keys(grant, at, {"policy", "upstreams", "servers"});
      auto policy = grant.at_key("policy");
      grant_policy* compiled = nullptr;
      if (policy.error()) {
        compiled =
            builder.add_grant(std::string(field.key), grant_policy::kind::no_policy, nullptr);
      } else {
        dom::element p = policy.value_unsafe();
        if (!p.is_string() || p.get_string().value_unsafe().empty()) {
          at.key("policy").fail_expected("a policy file name", p);
        }
        json_location policy_at = at.key("policy");
        auto doc = std::make_shared<const document>(
            load_document(resolve(std::string(p.get_string().value_unsafe())), &policy_at));
        compiled =
            builder.add_grant(std::string(field.key), grant_policy::kind::document, std::move(doc));
      }
      // Policies per server: {"<server>": "file.json"}, each replacing the grant's for it.
      size_t identity_slots = compiled->identity_limits.size();
      for (std::string_view list : {"upstreams", "servers"}) {
        auto per = grant.at_key(list);
        if (per.error()) continue;
        json_location list_at = at.key(list);
        dom::element per_value = per.value_unsafe();
        if (!per_value.is_object())
          list_at.fail_expected("an object {\"<server>\": \"policy.json\"}", per_value);
        const dom::object servers = per_value.get_object().value_unsafe();
        for (dom::key_value_pair server : servers) {
          json_location server_at = list_at.key(server.key);
          std::string name(server.key);
          if (std::find(source.servers.begin(), source.servers.end(), name) ==
              source.servers.end()) {
            std::string known;
            for (const std::string& s : source.servers) known += (known.empty() ? "" : ", ") + s;
            server_at.fail("no upstream or server named " + quote_string(name) +
                           " (known: " + (known.empty() ? "none" : known) + ")");
          }
          for (const auto& [seen, unused] : compiled->for_servers)
            if (seen == name) server_at.fail("a second policy for " + quote_string(name));
          if (!server.value.is_string() || server.value.get_string().value_unsafe().empty())
            server_at.fail_expected("a policy file name", server.value);
          auto doc = std::make_shared<const document>(load_document(
              resolve(std::string(server.value.get_string().value_unsafe())), &server_at));
          grant_policy* for_server = builder.add_grant(
              std::string(field.key), grant_policy::kind::document, std::move(doc), name);
          for_server->identity_slot_base = static_cast<uint32_t>(identity_slots);
          identity_slots += for_server->identity_limits.size();
          compiled->for_servers.emplace_back(name, for_server);
        }
      }
      grants.emplace(std::string(field.key), compiled);
    }
  }

  const json_location identities_at = root.key("identities");
  size_t identity_count = 0;
  if (!source.identities_json.empty()) {
    dom::element value = parse_fragment(parser, source.identities_json, identities_at);
    if (!value.is_array()) identities_at.fail_expected("an array of identities", value);
    std::vector<std::pair<std::string, std::array<unsigned char, 32>>> seen;
    size_t i = 0;
    // Copied out first: the simdjson_result temporary dies before the loop body.
    const dom::array items = value.get_array().value_unsafe();
    for (dom::element item : items) {
      json_location at = identities_at.index(i++);
      if (!item.is_object()) {
        at.fail_expected("an identity {\"name\", \"key_sha256\", \"grant\"}", item);
      }
      dom::object object = item.get_object().value_unsafe();
      check_keys(object, at, {"name", "key_sha256", "grant"});
      auto field = [&](std::string_view key) {
        auto found = object.at_key(key);
        if (found.error()) at.fail("missing key " + quote_string(key));
        dom::element v = found.value_unsafe();
        if (!v.is_string()) at.key(key).fail_expected("a string", v);
        return v;
      };
      dom::element name_value = field("name");
      std::string name(name_value.get_string().value_unsafe());
      if (name.empty()) at.key("name").fail_expected("a non-empty name", name_value);

      dom::element key_value = field("key_sha256");
      std::string_view hex = key_value.get_string().value_unsafe();
      std::array<unsigned char, 32> digest{};
      bool ok = hex.size() == 64;
      for (size_t k = 0; ok && k < 32; ++k) {
        unsigned char hi = 0, lo = 0;
        ok = hex_digit(hex[2 * k], &hi) && hex_digit(hex[2 * k + 1], &lo);
        digest[k] = static_cast<unsigned char>(hi << 4 | lo);
      }
      if (!ok)
        at.key("key_sha256").fail_expected("64 hex digits (the SHA-256 of the key)", key_value);

      dom::element grant_value = field("grant");
      auto grant = grants.find(grant_value.get_string().value_unsafe());
      if (grant == grants.end()) {
        at.key("grant").fail("no grant named " + quote_value(grant_value) + " under " +
                             grants_at.path());
      }
      for (const auto& [other_name, other_digest] : seen) {
        if (other_name == name) at.key("name").fail("duplicate identity " + quote_string(name));
        if (other_digest == digest) {
          at.key("key_sha256").fail("the same key as identity " + quote_string(other_name));
        }
      }
      seen.emplace_back(name, digest);
      identity* who = builder.add_identity(name, grant->second, false);
      who->key_sha256 = digest;
      ++identity_count;
    }
  }

  if (source.oauth)
    builder.set_oauth(source.oauth, grants,
                      json_location(source.config_file, "$.identities_from_claims"));
  if (identity_count > 0 || source.oauth) {
    if (source.default_policy) {
      root.key("policy").fail(
          "a default policy applies only when no identities are configured; attach policies "
          "to grants instead");
    }
    return builder.finish();
  }

  // No identities: everyone is "anonymous" in grant "default".
  grant_policy* fallback = nullptr;
  if (source.default_policy) {
    json_location policy_at(source.config_file, "$.policy (or --policy)");
    auto doc = std::make_shared<const document>(
        load_document(resolve(*source.default_policy), &policy_at));
    fallback = builder.add_grant("default", grant_policy::kind::document, std::move(doc));
    if (grants.count("default")) {
      grants_at.key("default").fail("grant \"default\" is also given by the default policy");
    }
  } else if (auto it = grants.find("default"); it != grants.end()) {
    fallback = it->second;
  } else {
    fallback = builder.add_grant("default", grant_policy::kind::allow_all, nullptr);
  }
  builder.add_identity("anonymous", fallback, true);
  return builder.finish();
}

const identity* access_config::token_identity(std::string_view name,
                                              const grant_policy& grant) const {
  std::string key = grant.name;
  key += '\0';
  key.append(name);
  std::lock_guard lock(token_mu_);
  if (auto it = token_identities_.find(key); it != token_identities_.end()) return it->second.get();
  if (token_identities_.size() >= oauth_->max_identities) return nullptr;
  auto who = std::make_unique<identity>();
  who->name.assign(name);
  who->grant = &grant;
  access_config_builder::add_identity_counters(*store_, *who, grant);
  for (const auto& [server, policy] : grant.for_servers)
    access_config_builder::add_identity_counters(*store_, *who, *policy);
  const identity* raw = who.get();
  token_identities_.emplace(std::move(key), std::move(who));
  return raw;
}

}  // namespace mcpgate::policy
