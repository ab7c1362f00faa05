#include "policy/document.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "policy/identity.h"

namespace mcpgate::policy {

namespace {

namespace dom = simdjson::dom;

dom::object expect_object(dom::element value, const json_location& at, std::string_view what) {
  if (!value.is_object()) at.fail_expected(what, value);
  return value.get_object().value_unsafe();
}

dom::array expect_array(dom::element value, const json_location& at, std::string_view what) {
  if (!value.is_array()) at.fail_expected(what, value);
  return value.get_array().value_unsafe();
}

std::string expect_string(dom::element value, const json_location& at, std::string_view what) {
  if (!value.is_string()) at.fail_expected(what, value);
  return std::string(value.get_string().value_unsafe());
}

limit_rule parse_limit(dom::element value, const json_location& at) {
  dom::object object =
      expect_object(value, at, "a limit object {\"counter\", \"window\", \"max\", \"scope\"}");
  check_keys(object, at, {"counter", "window", "max", "scope"});
  limit_rule rule;
  auto counter = object.at_key("counter");
  if (counter.error()) at.fail("missing key \"counter\"");
  rule.counter = expect_string(counter.value_unsafe(), at.key("counter"), "a counter name");
  if (rule.counter.empty()) at.key("counter").fail("expected a non-empty counter name, got \"\"");

  auto window = object.at_key("window");
  if (window.error()) at.fail("missing key \"window\"");
  auto parsed_window = window.value_unsafe().is_string()
                           ? parse_window(window.value_unsafe().get_string().value_unsafe())
                           : std::nullopt;
  if (!parsed_window) {
    at.key("window").fail_expected("one of second, minute, hour, day", window.value_unsafe());
  }
  rule.window = *parsed_window;

  auto max = object.at_key("max");
  if (max.error()) at.fail("missing key \"max\"");
  dom::element m = max.value_unsafe();
  bool positive_integer = m.is_int64() ? int64_t(m) > 0 : m.is_uint64();
  if (!positive_integer) at.key("max").fail_expected("a positive integer", m);
  if (!m.is_int64() || int64_t(m) > kMaxLimitMax) {
    at.key("max").fail_expected("at most " + std::to_string(kMaxLimitMax), m);
  }
  rule.max = int64_t(m);

  auto scope = object.at_key("scope");
  if (!scope.error()) {
    auto parsed_scope = scope.value_unsafe().is_string()
                            ? parse_scope(scope.value_unsafe().get_string().value_unsafe())
                            : std::nullopt;
    if (!parsed_scope) {
      at.key("scope").fail_expected("one of grant, identity, session, global",
                                    scope.value_unsafe());
    }
    rule.scope = *parsed_scope;
  }
  return rule;
}

std::vector<limit_rule> parse_limits(dom::element value, const json_location& at) {
  std::vector<limit_rule> rules;
  size_t i = 0;
  for (dom::element item : expect_array(value, at, "an array of limits")) {
    rules.push_back(parse_limit(item, at.index(i)));
    ++i;
  }
  return rules;
}

// The "conditions" of a deny_if or approve_if entry (required; [] always holds, which
// `empty_means` words for the error).
std::vector<condition> parse_entry_conditions(dom::object entry, const json_location& at,
                                              std::string_view empty_means) {
  auto conditions = entry.at_key("conditions");
  if (conditions.error())
    at.fail("missing key \"conditions\" (use [] to " + std::string(empty_means) + ")");
  json_location conditions_at = at.key("conditions");
  std::vector<condition> out;
  size_t k = 0;
  for (dom::element c :
       expect_array(conditions.value_unsafe(), conditions_at, "an array of conditions")) {
    out.push_back(condition::parse(c, conditions_at.index(k)));
    ++k;
  }
  return out;
}

approval_rule parse_approval(dom::element item, const json_location& at) {
  dom::object entry = expect_object(
      item, at, "an approve_if entry {\"conditions\", \"message\", \"timeout_ms\", \"via\"}");
  check_keys(entry, at, {"conditions", "message", "timeout_ms", "via"});
  approval_rule rule;
  rule.conditions = parse_entry_conditions(entry, at, "hold every call");
  if (auto message = entry.at_key("message"); !message.error())
    rule.message = expect_string(message.value_unsafe(), at.key("message"), "a string");
  if (auto timeout = entry.at_key("timeout_ms"); !timeout.error()) {
    dom::element v = timeout.value_unsafe();
    if (!v.is_int64() || v.get_int64().value_unsafe() < 1000 ||
        v.get_int64().value_unsafe() > 86'400'000)
      at.key("timeout_ms").fail_expected("an integer from 1000 to 86400000 (one day)", v);
    rule.timeout_ms = v.get_int64().value_unsafe();
  }
  if (auto via = entry.at_key("via"); !via.error()) {
    dom::element v = via.value_unsafe();
    std::string_view s = v.is_string() ? v.get_string().value_unsafe() : std::string_view();
    if (s == "operator")
      rule.via = approval_via::operator_;
    else if (s == "client")
      rule.via = approval_via::client;
    else
      at.key("via").fail_expected("\"operator\" or \"client\"", v);
  }
  return rule;
}

tool_rules parse_tool(dom::element value, const json_location& at) {
  dom::object object = expect_object(
      value, at, "a tool rules object {\"require\", \"deny_if\", \"approve_if\", \"limits\"}");
  check_keys(object, at, {"require", "deny_if", "approve_if", "limits"});
  tool_rules rules;
  if (auto require = object.at_key("require"); !require.error()) {
    json_location list_at = at.key("require");
    size_t i = 0;
    for (dom::element item :
         expect_array(require.value_unsafe(), list_at, "an array of conditions")) {
      require_rule rule;
      rule.check = condition::parse(item, list_at.index(i), true, &rule.on_deny);
      rules.require.push_back(std::move(rule));
      ++i;
    }
  }
  if (auto deny_if = object.at_key("deny_if"); !deny_if.error()) {
    json_location list_at = at.key("deny_if");
    size_t i = 0;
    for (dom::element item : expect_array(deny_if.value_unsafe(), list_at,
                                          "an array of {\"conditions\", \"on_deny\"}")) {
      json_location entry_at = list_at.index(i);
      dom::object entry =
          expect_object(item, entry_at, "a deny_if entry {\"conditions\", \"on_deny\"}");
      check_keys(entry, entry_at, {"conditions", "on_deny"});
      deny_rule rule;
      rule.conditions = parse_entry_conditions(entry, entry_at, "always deny");
      if (auto on_deny = entry.at_key("on_deny"); !on_deny.error()) {
        rule.on_deny = expect_string(on_deny.value_unsafe(), entry_at.key("on_deny"), "a string");
      }
      rules.deny_if.push_back(std::move(rule));
      ++i;
    }
  }
  if (auto approve_if = object.at_key("approve_if"); !approve_if.error()) {
    json_location list_at = at.key("approve_if");
    dom::element list = approve_if.value_unsafe();
    // One entry may be written without the array around it.
    if (list.is_object()) {
      rules.approve_if.push_back(parse_approval(list, list_at));
    } else {
      size_t i = 0;
      for (dom::element item : expect_array(list, list_at, "an array of approve_if entries")) {
        rules.approve_if.push_back(parse_approval(item, list_at.index(i)));
        ++i;
      }
    }
  }
  if (auto limits = object.at_key("limits"); !limits.error()) {
    rules.limits = parse_limits(limits.value_unsafe(), at.key("limits"));
  }
  return rules;
}

void parse_tools(dom::object tools, const json_location& at, document& doc) {
  for (dom::key_value_pair field : tools) {
    json_location tool_at = at.key(field.key);
    if (field.key.empty()) tool_at.fail("expected a tool name, got \"\"");
    if (doc.tools.count(field.key)) tool_at.fail("duplicate tool " + quote_string(field.key));
    doc.tools.emplace(std::string(field.key), parse_tool(field.value, tool_at));
  }
}

// Counters with one name share one count, so every declaration of a name must agree; and a
// tool's distinct counters must fit in a decision.
void check_counters(const document& doc, const json_location& root) {
  struct declared {
    const limit_rule* rule;
    std::string path;
  };
  std::map<std::string, declared, std::less<>> first;
  auto visit = [&](const limit_rule& rule, const std::string& path) {
    auto [it, inserted] = first.try_emplace(rule.counter, declared{&rule, path});
    if (inserted) return;
    const limit_rule& earlier = *it->second.rule;
    if (earlier.window != rule.window || earlier.max != rule.max || earlier.scope != rule.scope) {
      json_location(root.file(), path)
          .fail("counter " + quote_string(rule.counter) + " is declared at " + it->second.path +
                " with another window, max or scope; one name is one count");
    }
  };
  for (size_t i = 0; i < doc.all_tools_limits.size(); ++i) {
    visit(doc.all_tools_limits[i], root.key("all_tools").key("limits").index(i).path());
  }
  for (const auto& [name, rules] : doc.tools) {
    std::vector<std::string_view> distinct;
    for (const limit_rule& r : doc.all_tools_limits) distinct.push_back(r.counter);
    for (size_t i = 0; i < rules.limits.size(); ++i) {
      json_location at = root.key("tools").key(name).key("limits").index(i);
      visit(rules.limits[i], at.path());
      bool seen = false;
      for (std::string_view d : distinct) seen = seen || d == rules.limits[i].counter;
      if (!seen) distinct.push_back(rules.limits[i].counter);
      if (distinct.size() > kMaxLimitsPerTool) {
        at.fail("more than " + std::to_string(kMaxLimitsPerTool) +
                " counters apply to this tool (all_tools limits included)");
      }
    }
  }
  if (doc.all_tools_limits.size() > kMaxLimitsPerTool) {
    root.key("all_tools")
        .key("limits")
        .fail("more than " + std::to_string(kMaxLimitsPerTool) + " limits");
  }
}

}  // namespace

std::string_view via_name(approval_via v) {
  return v == approval_via::client ? "client" : "operator";
}

bool tool_rules::denied_unconditionally() const {
  for (const deny_rule& rule : deny_if) {
    if (rule.conditions.empty()) return true;
  }
  return false;
}

bool document::hidden(std::string_view tool) const {
  if (hide_all) return true;
  for (const std::string& name : hide) {
    if (name == tool) return true;
  }
  return false;
}

document parse_document(std::string_view text, std::string_view file_name) {
  const json_location root(file_name, "$");
  dom::parser parser;
  simdjson::padded_string padded(text);
  auto parsed = parser.parse(padded);
  if (parsed.error()) {
    root.fail(describe_invalid_json(text, parsed.error()));
  }
  dom::object top = expect_object(parsed.value_unsafe(), root, "a policy object");

  document doc;
  doc.file = std::string(file_name);
  static constexpr char hex[] = "0123456789abcdef";
  std::array<unsigned char, 32> digest = sha256(text);
  for (size_t i = 0; i < 6; ++i) {
    doc.revision += hex[digest[i] >> 4];
    doc.revision += hex[digest[i] & 15];
  }
  bool full_form = false;
  for (dom::key_value_pair field : top) {
    for (std::string_view k : {"version", "default", "hide", "all_tools", "tools"}) {
      full_form = full_form || field.key == k;
    }
  }
  if (!full_form) {
    // The catalogue shorthand: the whole object is the "tools" map.
    parse_tools(top, root.key("tools"), doc);
    check_counters(doc, root);
    return doc;
  }

  check_keys(top, root, {"version", "default", "hide", "all_tools", "tools"});
  if (auto version = top.at_key("version"); !version.error()) {
    dom::element v = version.value_unsafe();
    if (!v.is_string() || v.get_string().value_unsafe() != "1") {
      root.key("version").fail_expected("\"1\"", v);
    }
  }
  if (auto verdict = top.at_key("default"); !verdict.error()) {
    dom::element v = verdict.value_unsafe();
    std::string_view s = v.is_string() ? v.get_string().value_unsafe() : std::string_view();
    if (s == "allow") {
      doc.default_for_unlisted = default_verdict::allow;
    } else if (s == "deny") {
      doc.default_for_unlisted = default_verdict::deny;
    } else {
      root.key("default").fail_expected("\"allow\" or \"deny\"", v);
    }
  }
  if (auto hide = top.at_key("hide"); !hide.error()) {
    json_location at = root.key("hide");
    size_t i = 0;
    for (dom::element item : expect_array(hide.value_unsafe(), at, "an array of tool names")) {
      std::string name = expect_string(item, at.index(i), "a tool name");
      if (name.empty()) at.index(i).fail("expected a tool name, got \"\"");
      if (name == "*") doc.hide_all = true;
      doc.hide.push_back(std::move(name));
      ++i;
    }
  }
  if (auto all_tools = top.at_key("all_tools"); !all_tools.error()) {
    json_location at = root.key("all_tools");
    dom::object object = expect_object(all_tools.value_unsafe(), at, "an object {\"limits\"}");
    check_keys(object, at, {"limits"});
    if (auto limits = object.at_key("limits"); !limits.error()) {
      doc.all_tools_limits = parse_limits(limits.value_unsafe(), at.key("limits"));
    }
  }
  if (auto tools = top.at_key("tools"); !tools.error()) {
    json_location at = root.key("tools");
    parse_tools(expect_object(tools.value_unsafe(), at, "an object of tool rules"), at, doc);
  }
  check_counters(doc, root);
  return doc;
}

document load_document(const std::filesystem::path& path, const json_location* referenced_by) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::string why = std::strerror(errno);
    if (referenced_by)
      referenced_by->fail("cannot read the policy file " + path.string() + ": " + why);
    throw load_error(path.string() + ": cannot read the policy file: " + why);
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw load_error(path.string() + ": cannot read the file");
  return parse_document(text.str(), path.string());
}

namespace {

// "always", or the conditions joined by "and".
void describe_conditions(std::string& out, const std::vector<condition>& conditions) {
  if (conditions.empty()) out += "always";
  for (size_t k = 0; k < conditions.size(); ++k) {
    if (k) out += " and ";
    out += conditions[k].describe();
  }
}

void describe_limit(std::string& out, const limit_rule& rule) {
  out += "  limit " + quote_string(rule.counter) + ": at most " + std::to_string(rule.max) +
         " calls per rolling " + std::string(window_name(rule.window)) + ", counted per " +
         std::string(scope_name(rule.scope)) + "\n";
}

}  // namespace

std::string describe(const document& doc) {
  std::string out = "policy " + doc.file + "\n";
  out += doc.default_for_unlisted == default_verdict::allow
             ? "default: allow (tools not listed are allowed)\n"
             : "default: deny (tools not listed are denied)\n";
  if (doc.hide_all) {
    out += "hide: every tool (hidden from tools/list, denied at call time)\n";
  } else if (!doc.hide.empty()) {
    out += "hide:";
    for (const std::string& name : doc.hide) out += " " + quote_string(name);
    out += " (hidden from tools/list, denied at call time)\n";
  }
  if (!doc.all_tools_limits.empty()) {
    out += "all tools:\n";
    for (const limit_rule& rule : doc.all_tools_limits) describe_limit(out, rule);
  }
  for (const auto& [name, rules] : doc.tools) {
    out += "tool " + quote_string(name) + ":";
    if (doc.hidden(name)) {
      out += " hidden, always denied\n";
      continue;
    }
    out += "\n";
    if (rules.require.empty() && rules.deny_if.empty() && rules.approve_if.empty() &&
        rules.limits.empty() && doc.all_tools_limits.empty()) {
      out += "  allowed, no conditions, no limits\n";
    }
    for (size_t i = 0; i < rules.require.size(); ++i) {
      out += "  require[" + std::to_string(i) + "]: " + rules.require[i].check.describe();
      if (!rules.require[i].on_deny.empty()) {
        out += " else deny with " + quote_string(rules.require[i].on_deny);
      }
      out += "\n";
    }
    for (size_t i = 0; i < rules.deny_if.size(); ++i) {
      const deny_rule& rule = rules.deny_if[i];
      out += "  deny_if[" + std::to_string(i) + "]: ";
      describe_conditions(out, rule.conditions);
      if (!rule.on_deny.empty()) out += " -> " + quote_string(rule.on_deny);
      out += "\n";
    }
    for (size_t i = 0; i < rules.approve_if.size(); ++i) {
      const approval_rule& rule = rules.approve_if[i];
      out += "  approve_if[" + std::to_string(i) + "]: ";
      describe_conditions(out, rule.conditions);
      out += " -> held for approval by " + std::string(via_name(rule.via)) + ", denied after " +
             std::to_string(rule.timeout_ms) + " ms";
      if (!rule.message.empty()) out += " (" + quote_string(rule.message) + ")";
      out += "\n";
    }
    for (const limit_rule& rule : rules.limits) describe_limit(out, rule);
    if (!doc.all_tools_limits.empty()) out += "  and the all_tools limits\n";
  }
  return out;
}

}  // namespace mcpgate::policy
