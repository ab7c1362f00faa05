#include "tools/mcpgate/check.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "net/exchange/policy_gate.h"
#include "policy/access_config.h"
#include "policy/document.h"
#include "policy/identity.h"
#include "policy/json_writer.h"
#include "tools/mcpgate/pins.h"

namespace mcpgate::tools {
namespace {

policy::access_config_source access_source(const gateway_settings& s,
                                           policy::counter_store& counters,
                                           bool take_missing_pins) {
  policy::access_config_source src;
  src.config_file = s.config_file.empty() ? "command line" : s.config_file;
  src.base_dir =
      s.base_dir.empty() ? std::filesystem::current_path() : std::filesystem::path(s.base_dir);
  src.identities_json = s.identities_json;
  src.grants_json = s.grants_json;
  if (!s.policy.empty()) src.default_policy = s.policy;
  auto style = policy::parse_deny_style(s.deny_as);
  src.deny_as = style ? *style : policy::deny_style::result;
  src.hide_denied_tools = s.hide_denied_tools;
  for (const upstream_spec& spec : s.upstreams) src.servers.push_back(spec.name);
  src.pins = load_pins(s, counters.pins, take_missing_pins);
  return src;
}

// A config file has gateway keys at its top level; anything else is read as a policy.
bool looks_like_config(const std::string& file) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.load(file).get(root) || !root.is_object()) return false;
  simdjson::dom::object top = root.get_object().value_unsafe();
  for (auto field : top) {
    std::string_view k = field.key;
    if (k == "listen" || k == "upstream" || k == "identities" || k == "grants" || k == "policy" ||
        k == "shards" || k == "limits" || k == "audit" || k == "admin" || k == "upstreams")
      return true;
  }
  return false;
}

}  // namespace

std::shared_ptr<const net::gate_config> load_gate(const gateway_settings& settings,
                                                  policy::counter_store& counters,
                                                  const net::metric_labels* previous) {
  bool pins = settings.default_pins.has_value();
  for (const upstream_spec& spec : settings.upstreams) pins = pins || spec.pins.has_value();
  if (settings.policy.empty() && settings.identities_json.empty() && settings.grants_json.empty() &&
      !pins) {
    auto allow = std::make_shared<net::gate_config>();
    allow->labels = previous ? previous->with_tools({})
                             : std::make_shared<const net::metric_labels>(
                                   std::vector<std::string>{}, std::vector<std::string>{});
    return allow;
  }
  auto access = policy::load_access_config(access_source(settings, counters, true), counters);
  std::vector<std::string> tools, grants;
  std::vector<const policy::grant_policy*> seen;
  auto add_grant = [&](const policy::grant_policy* g) {
    if (!g || std::find(seen.begin(), seen.end(), g) != seen.end()) return;
    seen.push_back(g);
    grants.push_back(g->name);
    if (!g->doc) return;
    for (const auto& [name, rules] : g->doc->tools) tools.push_back(name);
    for (const std::string& name : g->doc->hide)
      if (name != "*") tools.push_back(name);
  };
  if (access->anonymous()) add_grant(access->anonymous()->grant);
  for (const auto& id : access->identities()) add_grant(id->grant);
  auto gate = std::make_shared<net::policy_gate_config>(std::move(access));
  gate->labels = previous ? previous->with_tools(tools)
                          : std::make_shared<const net::metric_labels>(tools, grants);
  return gate;
}

std::string policy_report(const net::gate_config& gate) {
  auto* p = dynamic_cast<const net::policy_gate_config*>(&gate);
  std::string text;
  std::string body = "{\"grants\":{";
  if (p) {
    std::vector<const policy::grant_policy*> seen;
    auto add = [&](const policy::grant_policy* g) {
      if (!g || std::find(seen.begin(), seen.end(), g) != seen.end()) return;
      seen.push_back(g);
      std::string description = g->mode == policy::grant_policy::kind::no_policy
                                    ? "no policy: every tools/call is denied\n"
                                : g->doc ? policy::describe(*g->doc)
                                         : "no policy anywhere: every call is allowed\n";
      std::string file_bytes;
      if (g->doc) {
        std::ifstream in(g->doc->file, std::ios::binary);
        file_bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
      text += g->name + "\n" + file_bytes + "\n";
      if (seen.size() > 1) body += ',';
      policy::append_json_string(body, g->name);
      body += ":{\"file\":";
      policy::append_json_string(body, g->doc ? g->doc->file : std::string());
      body += ",\"policy\":";
      policy::append_json_string(body, description);
      body += '}';
    };
    if (p->access->anonymous()) add(p->access->anonymous()->grant);
    for (const auto& id : p->access->identities()) add(id->grant);
  }
  body += "},\"version\":\"sha256:";
  std::array<unsigned char, 32> digest = policy::sha256(text);
  static constexpr char hex[] = "0123456789abcdef";
  for (unsigned char b : digest) {
    body += hex[b >> 4];
    body += hex[b & 15];
  }
  body += "\",\"summary\":";
  policy::append_json_string(body, describe_gate(gate));
  body += "}";
  return body;
}

std::string describe_gate(const net::gate_config& gate) {
  auto* p = dynamic_cast<const net::policy_gate_config*>(&gate);
  if (!p || p->access->allows_everything()) return "no policy: every call is allowed";
  const policy::access_config& a = *p->access;
  if (a.anonymous())
    return "no identities: every caller is 'anonymous' in grant 'default' under its policy";
  size_t n = a.identities().size();
  return std::to_string(n) + (n == 1 ? " identity authenticates" : " identities authenticate") +
         " with a bearer key";
}

int check_files(const std::vector<std::string>& files) {
  if (files.empty()) {
    std::fprintf(stderr, "usage: mcpgate check POLICY_OR_CONFIG...\n");
    return 2;
  }
  int status = 0;
  for (const std::string& file : files) {
    try {
      if (looks_like_config(file)) {
        gateway_settings s;
        load_config_file(file, s);
        resolve_config(s, {}, nullptr, nullptr, 1);
        policy::counter_store counters;
        auto access = policy::load_access_config(access_source(s, counters, false), counters);
        std::printf("%s: valid gateway config\n", file.c_str());
        for (const auto& p : access->pins())
          std::printf("  server %s: %zu tools pinned in %s\n", p->label().c_str(), p->size(),
                      p->file().c_str());
        for (const auto& id : access->identities())
          std::printf("  identity %s -> grant %s\n", id->name.c_str(),
                      id->grant ? id->grant->name.c_str() : "(none)");
        // Describe every grant's policy once.
        std::vector<const policy::grant_policy*> seen;
        auto describe_grant = [&](const policy::grant_policy* g) {
          if (!g) return;
          for (auto* x : seen)
            if (x == g) return;
          seen.push_back(g);
          std::printf("grant %s:\n", g->name.c_str());
          if (g->mode == policy::grant_policy::kind::no_policy)
            std::printf("  no policy: every tools/call is denied\n");
          else if (g->mode == policy::grant_policy::kind::allow_all)
            std::printf("  no policy anywhere: every call is allowed\n");
          else if (g->doc)
            std::printf("%s", policy::describe(*g->doc).c_str());
        };
        if (access->anonymous()) describe_grant(access->anonymous()->grant);
        for (const auto& id : access->identities()) describe_grant(id->grant);
      } else {
        policy::document doc = policy::load_document(file);
        std::printf("%s: valid policy\n%s", file.c_str(), policy::describe(doc).c_str());
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mcpgate check: %s\n", e.what());
      status = 1;
    }
  }
  return status;
}

}  // namespace mcpgate::tools
