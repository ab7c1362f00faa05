#include "tools/mcpgate/check.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cctype>
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
#include "tools/mcpgate/mcp_client.h"
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
  src.oauth = s.oauth;
  return src;
}

// A config file: some top-level key is a config key and none is one of a policy's full form
// (version, default, hide, all_tools, tools). A policy in the catalogue's shorthand has tool
// names at the top; one whose every tool is named like a config key would be misread, and
// then says so in a config error naming the key.
bool looks_like_config(const std::string& file) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.load(file).get(root) || !root.is_object()) return false;
  simdjson::dom::object top = root.get_object().value_unsafe();
  bool config_key = false;
  for (auto field : top) {
    std::string_view k = field.key;
    for (std::string_view p : {"version", "default", "hide", "all_tools", "tools"})
      if (k == p) return false;
    config_key =
        config_key || std::find(config_keys.begin(), config_keys.end(), k) != config_keys.end();
  }
  return config_key;
}

}  // namespace

std::shared_ptr<const net::gate_config> load_gate(const gateway_settings& settings,
                                                  policy::counter_store& counters,
                                                  const net::metric_labels* previous) {
  bool pins = settings.default_pins.has_value();
  for (const upstream_spec& spec : settings.upstreams) pins = pins || spec.pins.has_value();
  if (settings.policy.empty() && settings.identities_json.empty() && settings.grants_json.empty() &&
      !pins && !settings.oauth) {
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
  body += "},\"version\":\"sha256:" + policy::digest_hex(policy::sha256(text));
  body += "\",\"summary\":";
  policy::append_json_string(body, describe_gate(gate));
  body += "}";
  return body;
}

bool authenticates(const net::gate_config& gate) {
  auto* p = dynamic_cast<const net::policy_gate_config*>(&gate);
  return p && !p->access->anonymous();
}

bool holds_for_approval(const net::gate_config& gate) {
  auto* p = dynamic_cast<const net::policy_gate_config*>(&gate);
  return p && p->access->holds_for_approval();
}

std::string describe_gate(const net::gate_config& gate) {
  auto* p = dynamic_cast<const net::policy_gate_config*>(&gate);
  if (!p || p->access->allows_everything()) return "no policy: every call is allowed";
  const policy::access_config& a = *p->access;
  if (a.anonymous())
    return "no identities: every caller is 'anonymous' in grant 'default' under its policy";
  size_t n = a.identities().size();
  std::string out = std::to_string(n) +
                    (n == 1 ? " identity authenticates" : " identities authenticate") +
                    " with a bearer key";
  if (const policy::oauth_settings* o = a.oauth())
    out += ", and access tokens from " + o->rules.issuer + " (" +
           std::to_string(o->keys->current()->size()) + " key" +
           (o->keys->current()->size() == 1 ? "" : "s") + " from " + o->jwks_source + ")";
  return out;
}

namespace {

// "get_env" and "get-env", "ReadFile" and "read_file": the same name to a human.
std::string loose(std::string_view name) {
  std::string out;
  for (char c : name)
    if (c != '-' && c != '_' && c != '.' && c != ' ')
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The server's tool a typo most likely meant, or empty.
std::string closest(std::string_view name, const std::vector<std::string>& tools) {
  for (const std::string& t : tools)
    if (loose(t) == loose(name)) return t;
  std::string best;
  size_t best_distance = 3;  // at most two edits away
  for (const std::string& t : tools) {
    size_t d = edit_distance(name, t);
    if (d < best_distance) {
      best_distance = d;
      best = t;
    }
  }
  return best;
}

// Warnings for the tools `doc` names that `tools` (what the server lists) does not have.
size_t warn_unknown_tools(const policy::document& doc, const std::vector<std::string>& tools,
                          const std::string& source) {
  std::vector<std::string> named;
  for (const auto& [name, rules] : doc.tools) named.push_back(name);
  for (const std::string& name : doc.hide)
    if (name != "*") named.push_back(name);
  std::sort(named.begin(), named.end());
  named.erase(std::unique(named.begin(), named.end()), named.end());
  size_t warnings = 0;
  for (const std::string& name : named) {
    if (std::find(tools.begin(), tools.end(), name) != tools.end()) continue;
    ++warnings;
    std::string hint = closest(name, tools);
    std::string rule_gap =
        doc.default_for_unlisted == policy::default_verdict::allow
            ? "; under default allow, the server's own tool is not covered by this rule"
            : "";
    std::fprintf(
        stderr, "mcpgate check: warning: %s: tool %s is not a tool of %s%s%s\n", doc.file.c_str(),
        policy::quote_string(name).c_str(), source.c_str(),
        hint.empty() ? "" : (" (did you mean " + policy::quote_string(hint) + "?)").c_str(),
        rule_gap.c_str());
  }
  return warnings;
}

}  // namespace

int check_files(const std::vector<std::string>& args) {
  // FILE... [--upstream URL | -- COMMAND ARGS...]
  auto dash = std::find(args.begin(), args.end(), "--");
  std::vector<std::string> command(dash == args.end() ? dash : dash + 1, args.end());
  std::vector<std::string> files;
  std::string upstream;
  for (auto it = args.begin(); it != dash; ++it) {
    if (*it == "--upstream") {
      if (it + 1 == dash) {
        std::fprintf(stderr, "mcpgate check: --upstream needs a URL\n");
        return 2;
      }
      upstream = *++it;
    } else if (it->rfind("--upstream=", 0) == 0) {
      upstream = it->substr(11);
    } else if (*it == "-h" || *it == "--help") {
      std::printf(
          "usage: mcpgate check FILE... [--upstream URL | -- COMMAND ARGS...]\n"
          "  validates policy documents and gateway configs (with the policies and pins they\n"
          "  name) and prints what applies per tool; with a server, warns of tools the\n"
          "  policies name that the server does not list (exit 3)\n");
      return 0;
    } else {
      files.push_back(*it);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: mcpgate check FILE... [--upstream URL | -- COMMAND ARGS...]\n");
    return 2;
  }
  if (!upstream.empty() && !command.empty()) {
    std::fprintf(stderr,
                 "mcpgate check: give either --upstream or a stdio command after --, not both\n");
    return 2;
  }
  int status = 0;
  // Every policy document read, to compare with the server's tools afterwards.
  std::vector<std::shared_ptr<const policy::document>> documents;
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
          if (g->doc) documents.push_back(g->doc);
          for (const auto& [server, p] : g->for_servers)
            if (p->doc) documents.push_back(p->doc);
        };
        if (access->anonymous()) describe_grant(access->anonymous()->grant);
        for (const auto& id : access->identities()) describe_grant(id->grant);
      } else {
        auto doc = std::make_shared<const policy::document>(policy::load_document(file));
        std::printf("%s: valid policy\n%s", file.c_str(), policy::describe(*doc).c_str());
        documents.push_back(doc);
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mcpgate check: %s\n", e.what());
      status = 1;
    }
  }
  if (upstream.empty() && command.empty()) return status;

  server_tools listed;
  try {
    core::spawn_options spawn;
    spawn.argv = command;
    listed = fetch_tools(upstream, spawn, 15'000);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mcpgate check: %s\n", e.what());
    return status ? status : 1;
  }
  const std::vector<std::string>& names = listed.names;
  std::sort(documents.begin(), documents.end());
  documents.erase(std::unique(documents.begin(), documents.end()), documents.end());
  size_t warnings = 0;
  for (const auto& doc : documents) warnings += warn_unknown_tools(*doc, names, listed.source);
  std::printf("%zu tool%s listed by %s; %zu name%s in the policies it does not have\n",
              names.size(), names.size() == 1 ? "" : "s", listed.source.c_str(), warnings,
              warnings == 1 ? "" : "s");
  if (status == 0 && warnings > 0) status = 3;
  return status;
}

}  // namespace mcpgate::tools
