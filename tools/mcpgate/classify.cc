#include "tools/mcpgate/classify.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <initializer_list>

#include "policy/json_writer.h"

namespace mcpgate::tools {
namespace {

// Verbs are matched as whole words of a tool's name or description, with their common
// inflections ("deletes", "deleted", "deleting", "running"), never as substrings: "stopwatch"
// must not read as "stop", nor "address" as "add".
struct verb_table {
  risk_class cls;
  std::initializer_list<std::string_view> verbs;
};

// Most dangerous first: when several verbs appear, the first table with a match wins.
const std::array<verb_table, 5>& verb_tables() {
  static const std::array<verb_table, 5> tables{{
      {risk_class::destructive,
       {"delete", "drop", "clear", "remove", "kill", "reset", "destroy", "erase", "purge", "wipe",
        "truncate", "terminate", "revoke", "uninstall", "rm", "unlink", "flush", "rmdir", "shred"}},
      {risk_class::financial,
       {"transfer", "pay", "charge", "purchase", "refund", "buy", "sell", "withdraw", "deposit",
        "invoice", "bill", "checkout", "payout", "trade"}},
      {risk_class::execute,
       {"run", "exec", "execute", "eval", "evaluate", "install", "invoke", "spawn", "launch",
        "deploy", "shell", "compile"}},
      {risk_class::write,
       {"write",  "create",  "update",   "send",    "edit",    "set",      "put",     "post",
        "add",    "insert",  "modify",   "move",    "rename",  "copy",     "upload",  "save",
        "append", "patch",   "change",   "toggle",  "publish", "commit",   "push",    "merge",
        "apply",  "replace", "enable",   "disable", "assign",  "register", "submit",  "upsert",
        "store",  "make",    "compress", "mkdir",   "start",   "stop",     "restart", "schedule",
        "book",   "approve", "reject",   "archive", "import"}},
      {risk_class::read,
       {"get",       "list",    "read",     "search", "find",     "fetch",   "query",
        "describe",  "show",    "view",     "lookup", "inspect",  "check",   "count",
        "retrieve",  "return",  "browse",   "echo",   "stat",     "preview", "explain",
        "summarize", "analyze", "validate", "ping",   "download", "export",  "tree",
        "print",     "display", "watch",    "diff",   "status",   "head",    "tail"}},
  }};
  return tables;
}

// Input property names that say what a tool does when the words around it do not.
const std::array<verb_table, 2>& schema_tables() {
  static const std::array<verb_table, 2> tables{{
      {risk_class::financial, {"amount", "currency", "iban", "card", "price", "payment"}},
      {risk_class::execute, {"code", "command", "cmd", "script", "shell", "expression"}},
  }};
  return tables;
}

bool is_inflection_of(std::string_view word, std::string_view verb) {
  if (word == verb) return true;
  if (!word.starts_with(verb)) return false;
  std::string_view tail = word.substr(verb.size());
  if (tail == "s" || tail == "es" || tail == "ed" || tail == "ing") return true;
  // create -> created, creating; run -> running; drop -> dropped.
  if (verb.back() == 'e' && tail == "d") return true;
  if (tail.size() >= 3 && tail[0] == verb.back() &&
      (tail.substr(1) == "ing" || tail.substr(1) == "ed"))
    return true;
  return false;
}

bool is_inflection_of_e_verb(std::string_view word, std::string_view verb) {
  // "creating", "removing": the verb's final e dropped before -ing.
  return verb.size() > 2 && verb.back() == 'e' && word.size() == verb.size() + 2 &&
         word.starts_with(verb.substr(0, verb.size() - 1)) && word.ends_with("ing");
}

struct verb_match {
  risk_class cls = risk_class::write;
  std::string_view verb;  // the table's verb
  std::string word;       // as it appeared, lower-cased
};

std::optional<verb_match> match_word(std::string_view word, const verb_table& table) {
  for (std::string_view verb : table.verbs)
    if (is_inflection_of(word, verb) || is_inflection_of_e_verb(word, verb))
      return verb_match{table.cls, verb, std::string(word)};
  return std::nullopt;
}

template <std::size_t N>
std::optional<verb_match> match_word(std::string_view word,
                                     const std::array<verb_table, N>& tables) {
  for (const verb_table& t : tables)
    if (auto m = match_word(word, t)) return m;
  return std::nullopt;
}

// The most dangerous verb among `words`.
template <std::size_t N>
std::optional<verb_match> most_dangerous(const std::vector<std::string>& words,
                                         const std::array<verb_table, N>& tables) {
  for (const verb_table& t : tables)
    for (const std::string& w : words)
      if (auto m = match_word(w, t)) return m;
  return std::nullopt;
}

// Lower-cased words of an identifier or a sentence: split at anything not a letter and at
// lower-to-upper case changes, so "deleteUser", "delete_user" and "delete-user" agree.
std::vector<std::string> words_of(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (!std::isalpha(c)) {
      flush();
      continue;
    }
    if (std::isupper(c) && i > 0 && std::islower(static_cast<unsigned char>(text[i - 1]))) flush();
    cur.push_back(static_cast<char>(std::tolower(c)));
  }
  flush();
  return out;
}

// The description up to the end of its first sentence: docstrings go on to list arguments
// ("Args: ... to execute") whose words say nothing about the tool itself.
std::string_view first_sentence(std::string_view text) {
  std::size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return {};
  text.remove_prefix(start);
  std::size_t end = text.size();
  for (std::string_view stop : {". ", ".\n", "\n\n", "\n", ": "})
    end = std::min(end, text.find(stop));
  return text.substr(0, end);
}

std::string in_quotes(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

struct text_evidence {
  risk_class cls = risk_class::write;
  std::string reason;
  bool found = false;  // false: no evidence; cls is the Write assumption
};

text_evidence from_text(const tool_info& tool) {
  auto describe = [](const verb_match& m) {
    return m.word == m.verb ? in_quotes(m.verb)
                            : in_quotes(m.word) + " (" + std::string(m.verb) + ")";
  };
  std::vector<std::string> name_words = words_of(tool.name);
  if (!name_words.empty())
    if (auto m = match_word(name_words.front(), verb_tables()))
      return {m->cls, "name verb " + describe(*m), true};
  if (auto m = most_dangerous(name_words, verb_tables()))
    return {m->cls, "name word " + describe(*m), true};

  std::vector<std::string> sentence = words_of(first_sentence(tool.description));
  if (!sentence.empty())
    if (auto m = match_word(sentence.front(), verb_tables()))
      return {m->cls, "description starts with " + describe(*m), true};
  if (auto m = most_dangerous(sentence, verb_tables()))
    return {m->cls, "description says " + describe(*m), true};

  simdjson::dom::parser parser;
  simdjson::dom::element schema;
  simdjson::dom::object properties;
  if (!parser.parse(tool.input_schema_json).get(schema) &&
      !schema["properties"].get_object().get(properties)) {
    for (const verb_table& t : schema_tables())
      for (auto field : properties)
        for (const std::string& w : words_of(field.key))
          if (auto m = match_word(w, t))
            return {m->cls, "input schema has " + in_quotes(field.key), true};
  }
  return {risk_class::write,
          "no verb recognised in name, description or schema; assumed to change state", false};
}

std::string hints_text(const tool_annotations& a) {
  std::string out;
  auto add = [&](std::string_view key, const std::optional<bool>& v) {
    if (!v) return;
    if (!out.empty()) out += ", ";
    out += std::string(key) + (*v ? " true" : " false");
  };
  add("readOnlyHint", a.read_only);
  add("destructiveHint", a.destructive);
  add("idempotentHint", a.idempotent);
  add("openWorldHint", a.open_world);
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string_view class_name(risk_class c) {
  switch (c) {
    case risk_class::read:
      return "Read";
    case risk_class::write:
      return "Write";
    case risk_class::execute:
      return "Execute";
    case risk_class::destructive:
      return "Destructive";
    case risk_class::financial:
      return "Financial";
  }
  return "Write";
}

classification classify_by_text_and_hints(const tool_info& tool);

std::optional<tool_info> parse_tool(std::string_view tool_json) {
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(tool_json).get_object().get(obj)) return std::nullopt;
  tool_info t;
  std::string_view name;
  if (obj["name"].get_string().get(name) || name.empty()) return std::nullopt;
  t.name = name;
  std::string_view description;
  if (!obj["description"].get_string().get(description)) t.description = description;
  simdjson::dom::element schema;
  t.input_schema_json = obj["inputSchema"].get(schema) ? "{}" : simdjson::minify(schema);
  simdjson::dom::object annotations;
  if (!obj["annotations"].get_object().get(annotations)) {
    auto hint = [&](const char* key) -> std::optional<bool> {
      bool v = false;
      if (annotations[key].get_bool().get(v)) return std::nullopt;
      return v;
    };
    t.annotations.read_only = hint("readOnlyHint");
    t.annotations.destructive = hint("destructiveHint");
    t.annotations.idempotent = hint("idempotentHint");
    t.annotations.open_world = hint("openWorldHint");
  }
  return t;
}

namespace {

// Why the tool looks like it reveals secrets or the environment, or empty.
std::string sensitive_evidence(const tool_info& tool) {
  static constexpr std::string_view name_words[] = {
      "env",        "environ",     "environment", "getenv",    "printenv", "secret", "secrets",
      "credential", "credentials", "password",    "passwords", "apikey",   "token",  "tokens"};
  for (const std::string& w : words_of(tool.name))
    for (std::string_view s : name_words)
      if (w == s) return "name word " + in_quotes(w);
  std::vector<std::string> sentence = words_of(first_sentence(tool.description));
  for (size_t i = 0; i < sentence.size(); ++i) {
    const std::string& w = sentence[i];
    if (w == "environment" && i + 1 < sentence.size() && sentence[i + 1].rfind("variable", 0) == 0)
      return "description says \"environment variables\"";
    if (w == "secret" || w == "secrets" || w == "credential" || w == "credentials" ||
        w == "password" || w == "passwords")
      return "description says " + in_quotes(w);
  }
  return {};
}

// deny_if entries the schema makes obvious: path-like string arguments must not climb out
// ("..") and amounts stay small until someone raises the bound.
std::vector<classification::argument_check> argument_checks_of(const tool_info& tool) {
  std::vector<classification::argument_check> out;
  simdjson::dom::parser parser;
  simdjson::dom::element schema;
  simdjson::dom::object properties;
  if (parser.parse(tool.input_schema_json).get(schema) ||
      schema["properties"].get_object().get(properties))
    return out;
  static constexpr std::string_view path_names[] = {
      "path",     "file",           "filename", "file_path",   "filepath", "directory", "dir",
      "dir_path", "directory_path", "target",   "destination", "dest",     "source",    "src"};
  static constexpr std::string_view amount_names[] = {"amount", "price", "value_usd", "total"};
  for (auto field : properties) {
    std::string key(field.key);
    std::string type;
    std::string_view t;
    if (!field.value["type"].get_string().get(t)) type = t;
    std::string lowered = lower(key);
    for (std::string_view n : path_names)
      if (lowered == n && (type.empty() || type == "string"))
        out.push_back({key, "contains", "\"..\"",
                       "Paths with '..' are refused: they can leave the allowed directory."});
    for (std::string_view n : amount_names)
      if (lowered == n && (type.empty() || type == "number" || type == "integer"))
        out.push_back({key, "gt", "100", "Amounts over 100 need a person's approval."});
  }
  return out;
}

}  // namespace

classification classify_tool(const tool_info& tool) {
  classification out = classify_by_text_and_hints(tool);
  out.sensitive = sensitive_evidence(tool);
  out.argument_checks = argument_checks_of(tool);
  return out;
}

classification classify_by_text_and_hints(const tool_info& tool) {
  text_evidence text = from_text(tool);
  const tool_annotations& a = tool.annotations;
  classification out;
  std::optional<risk_class> stated;
  // A tool that is not read-only is destructive unless it says otherwise: the spec's default
  // for destructiveHint is true, and it is meaningful only when readOnlyHint is false, whose
  // own default is false.
  if (a.read_only.value_or(false))
    stated = risk_class::read;
  else if (a.read_only || a.destructive)
    stated = a.destructive.value_or(true) ? risk_class::destructive : risk_class::write;

  if (!stated) {
    out.cls = text.cls;
    out.reason = text.reason;
    return out;
  }
  out.from_annotations = true;
  out.cls = *stated;
  out.reason = "annotations: " + hints_text(a);
  if (*stated == risk_class::destructive && !a.destructive)
    out.reason += " (destructiveHint absent: the spec's default is true)";
  if (!text.found || text.cls == *stated) return out;
  // Annotations cannot say "runs code" or "moves money": those refine an additive write.
  if (*stated == risk_class::write &&
      (text.cls == risk_class::execute || text.cls == risk_class::financial)) {
    out.cls = text.cls;
    out.reason += "; " + text.reason + " makes it " + std::string(class_name(text.cls));
    return out;
  }
  out.disagreement = "annotations say " + std::string(class_name(*stated)) + ", but the " +
                     text.reason + " suggests " + std::string(class_name(text.cls));
  return out;
}

server_catalogue make_catalogue(std::string server_name, std::string server_version,
                                std::string protocol_version, std::string source,
                                std::vector<tool_info> tools) {
  server_catalogue c;
  c.server_name = std::move(server_name);
  c.server_version = std::move(server_version);
  c.protocol_version = std::move(protocol_version);
  c.source = std::move(source);
  for (tool_info& t : tools) {
    classification r = classify_tool(t);
    c.tools.push_back({std::move(t), std::move(r)});
  }
  return c;
}

class_counts count_classes(const server_catalogue& c) {
  class_counts n;
  for (const catalogued_tool& t : c.tools) {
    switch (t.result.cls) {
      case risk_class::read:
        ++n.read;
        break;
      case risk_class::write:
        ++n.write;
        break;
      case risk_class::execute:
        ++n.execute;
        break;
      case risk_class::destructive:
        ++n.destructive;
        break;
      case risk_class::financial:
        ++n.financial;
        break;
    }
  }
  return n;
}

risk_level assess_risk(const class_counts& n) {
  if (n.destructive + n.financial > 0) return risk_level::critical;
  if (n.execute > 0) return risk_level::high;
  if (n.write > 0) return risk_level::medium;
  return risk_level::low;
}

std::string_view risk_level_name(risk_level level) {
  switch (level) {
    case risk_level::low:
      return "Low";
    case risk_level::medium:
      return "Medium";
    case risk_level::high:
      return "High";
    case risk_level::critical:
      return "Critical";
  }
  return "Critical";
}

std::string risk_rule(risk_level level) {
  switch (level) {
    case risk_level::critical:
      return "at least one Destructive or Financial tool, and an MCP server declares no "
             "limits of its own";
    case risk_level::high:
      return "no Destructive or Financial tool, but at least one Execute tool (runs code or "
             "commands)";
    case risk_level::medium:
      return "no Destructive, Financial or Execute tool, but at least one Write tool";
    case risk_level::low:
      return "every tool is Read";
  }
  return {};
}

namespace {

constexpr std::array<risk_class, 5> kMostDangerousFirst{risk_class::destructive,
                                                        risk_class::financial, risk_class::execute,
                                                        risk_class::write, risk_class::read};

std::size_t count_of(const class_counts& n, risk_class c) {
  switch (c) {
    case risk_class::read:
      return n.read;
    case risk_class::write:
      return n.write;
    case risk_class::execute:
      return n.execute;
    case risk_class::destructive:
      return n.destructive;
    case risk_class::financial:
      return n.financial;
  }
  return 0;
}

std::string plural(std::size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

// The catalogue's headline: "10 tools. 5 can modify or destroy data. 1 destructive tool with
// no built-in limits. Policy required."
std::string headline(const class_counts& n) {
  std::string out = plural(n.total(), "tool.", "tools.");
  if (n.total() == 0) return out + " Nothing to limit.";
  if (n.modifying() == 0)
    out += " All are read-only.";
  else
    out += " " + std::to_string(n.modifying()) + " can modify or destroy data.";
  if (n.destructive)
    out += " " + plural(n.destructive, "destructive tool", "destructive tools") +
           " with no built-in limits.";
  if (n.financial)
    out += " " + plural(n.financial, "financial tool", "financial tools") +
           " with no built-in limits.";
  switch (assess_risk(n)) {
    case risk_level::critical:
    case risk_level::high:
      return out + " Policy required.";
    case risk_level::medium:
      return out + " Policy recommended.";
    case risk_level::low:
      return out + " Read caps suggested.";
  }
  return out;
}

std::string policy_action(risk_class c, const starter_limits& limits) {
  switch (c) {
    case risk_class::destructive:
    case risk_class::financial:
      return "blocked by default, requires approval";
    case risk_class::execute:
    case risk_class::write:
      return std::to_string(limits.write_per_hour) + " per grant per hour";
    case risk_class::read:
      return std::to_string(limits.read_per_minute) + " per grant per minute";
  }
  return {};
}

const char kDenyMessage[] = "Blocked by default. Requires approval.";
const char kSensitiveMessage[] =
    "Blocked by default: it may reveal secrets or the environment. Review before allowing.";

void append_limit(std::string& out, const std::string& counter, std::string_view window,
                  std::int64_t max) {
  out += "\"limits\": [ { \"counter\": ";
  policy::append_json_string(out, counter);
  out += ", \"window\": \"";
  out += window;
  out += "\", \"max\": ";
  policy::append_json_int(out, max);
  out += ", \"scope\": \"grant\" } ]";
}

}  // namespace

std::string format_summary(const server_catalogue& c, const starter_limits& limits) {
  class_counts n = count_classes(c);
  risk_level level = assess_risk(n);
  std::string out;
  out += c.server_name.empty() ? "(unnamed server)" : c.server_name;
  if (!c.server_version.empty()) out += " " + c.server_version;
  if (!c.source.empty()) out += " (" + c.source + ")";
  if (!c.protocol_version.empty()) out += ", MCP " + c.protocol_version;
  out += "\n\n" + headline(n) + "\n\n";
  out += "Risk: " + std::string(risk_level_name(level)) + " (" + risk_rule(level) + ")\n";

  std::size_t width = 0;
  for (const catalogued_tool& t : c.tools) width = std::max(width, t.tool.name.size());
  width = std::min<std::size_t>(width, 40) + 2;
  for (risk_class cls : kMostDangerousFirst) {
    std::size_t k = count_of(n, cls);
    out += "\n" + std::string(class_name(cls)) + " (" + std::to_string(k) + ")";
    if (k > 0) out += ": " + policy_action(cls, limits);
    out += "\n";
    for (const catalogued_tool& t : c.tools) {
      if (t.result.cls != cls) continue;
      std::string name = t.tool.name;
      name.resize(std::max(name.size(), width), ' ');
      out += "  " + name + t.result.reason + "\n";
      std::string pad(width + 2, ' ');
      if (!t.result.sensitive.empty())
        out += pad + "sensitive: " + t.result.sensitive +
               "; the starter policy denies it (it may reveal secrets or the environment)\n";
      else if (cls != risk_class::destructive && cls != risk_class::financial)
        for (const classification::argument_check& a : t.result.argument_checks)
          out += pad + "denied when " + a.argument + " " + a.op + " " + a.value + "\n";
    }
  }

  std::size_t annotated = 0;
  for (const catalogued_tool& t : c.tools) annotated += t.result.from_annotations;
  out += "\n";
  if (annotated == 0 && !c.tools.empty())
    out +=
        "No tool carries annotations: every class comes from names, descriptions and input "
        "schemas.\n";
  else if (annotated < c.tools.size())
    out += std::to_string(annotated) + " of " + std::to_string(c.tools.size()) +
           " tools carry annotations; the others are classified from their text.\n";
  std::vector<const catalogued_tool*> disagreeing;
  for (const catalogued_tool& t : c.tools)
    if (!t.result.disagreement.empty()) disagreeing.push_back(&t);
  if (!disagreeing.empty()) {
    out += "Disagreements (the annotations win):\n";
    for (const catalogued_tool* t : disagreeing)
      out += "  " + t->tool.name + ": " + t->result.disagreement + "\n";
  }
  out +=
      "Risk levels: Critical, any Destructive or Financial tool; High, any Execute tool; "
      "Medium, any Write tool; Low, only Read tools.\n";
  return out;
}

std::string format_json(const server_catalogue& c, const starter_limits& limits) {
  class_counts n = count_classes(c);
  risk_level level = assess_risk(n);
  std::string out = "{\"server\":{\"name\":";
  policy::append_json_string(out, c.server_name);
  out += ",\"version\":";
  policy::append_json_string(out, c.server_version);
  out += ",\"protocol_version\":";
  policy::append_json_string(out, c.protocol_version);
  out += ",\"source\":";
  policy::append_json_string(out, c.source);
  out += "},\"summary\":";
  policy::append_json_string(out, headline(n));
  out += ",\"risk\":{\"level\":";
  policy::append_json_string(out, risk_level_name(level));
  out += ",\"rule\":";
  policy::append_json_string(out, risk_rule(level));
  out += "},\"counts\":{\"total\":";
  policy::append_json_int(out, static_cast<std::int64_t>(n.total()));
  out += ",\"modifying\":";
  policy::append_json_int(out, static_cast<std::int64_t>(n.modifying()));
  for (risk_class cls : kMostDangerousFirst) {
    out += ",";
    policy::append_json_string(out, lower(class_name(cls)));
    out += ":";
    policy::append_json_int(out, static_cast<std::int64_t>(count_of(n, cls)));
  }
  out += "},\"limits\":{\"write_per_hour\":";
  policy::append_json_int(out, limits.write_per_hour);
  out += ",\"read_per_minute\":";
  policy::append_json_int(out, limits.read_per_minute);
  out += "},\"tools\":[";
  bool first = true;
  for (const catalogued_tool& t : c.tools) {
    if (!first) out += ",";
    first = false;
    out += "{\"name\":";
    policy::append_json_string(out, t.tool.name);
    out += ",\"class\":";
    policy::append_json_string(out, class_name(t.result.cls));
    out += ",\"reason\":";
    policy::append_json_string(out, t.result.reason);
    out += ",\"from_annotations\":";
    out += t.result.from_annotations ? "true" : "false";
    out += ",\"disagreement\":";
    if (t.result.disagreement.empty())
      out += "null";
    else
      policy::append_json_string(out, t.result.disagreement);
    out += ",\"sensitive\":";
    if (t.result.sensitive.empty())
      out += "null";
    else
      policy::append_json_string(out, t.result.sensitive);
    out += ",\"argument_checks\":[";
    for (size_t i = 0; i < t.result.argument_checks.size(); ++i) {
      const classification::argument_check& a = t.result.argument_checks[i];
      if (i) out += ',';
      out += "{\"argument\":";
      policy::append_json_string(out, a.argument);
      out += ",\"op\":";
      policy::append_json_string(out, a.op);
      out += ",\"value\":" + a.value + "}";
    }
    out += "],\"policy\":";
    policy::append_json_string(out, t.result.sensitive.empty()
                                        ? policy_action(t.result.cls, limits)
                                        : std::string("blocked by default, may reveal secrets"));
    out += "}";
  }
  out += "]}\n";
  return out;
}

std::string format_policy(const server_catalogue& c, const starter_limits& limits) {
  std::string out = "{\n  \"version\": \"1\",\n  \"default\": \"deny\",\n  \"tools\": {";
  bool first = true;
  for (risk_class cls : kMostDangerousFirst) {
    for (const catalogued_tool& t : c.tools) {
      if (t.result.cls != cls) continue;
      out += first ? "\n    " : ",\n    ";
      first = false;
      policy::append_json_string(out, t.tool.name);
      out += ": { ";
      if (!t.result.sensitive.empty()) {
        out += "\"deny_if\": [ { \"conditions\": [], \"on_deny\": ";
        policy::append_json_string(out, kSensitiveMessage);
        out += " } ] }";
        continue;
      }
      switch (cls) {
        case risk_class::destructive:
        case risk_class::financial:
          out += "\"deny_if\": [ { \"conditions\": [], \"on_deny\": ";
          policy::append_json_string(out, kDenyMessage);
          out += " } ]";
          break;
        case risk_class::execute:
        case risk_class::write:
        case risk_class::read:
          if (!t.result.argument_checks.empty()) {
            out += "\"deny_if\": [";
            bool first_check = true;
            for (const classification::argument_check& a : t.result.argument_checks) {
              out += first_check ? " " : ", ";
              first_check = false;
              out += "{ \"conditions\": [ { \"path\": ";
              policy::append_json_string(out, "args." + a.argument);
              out += ", \"op\": \"" + a.op + "\", \"value\": " + a.value + " } ], \"on_deny\": ";
              policy::append_json_string(out, a.message);
              out += " }";
            }
            out += " ], ";
          }
          if (cls == risk_class::read)
            append_limit(out, t.tool.name + "_per_minute", "minute", limits.read_per_minute);
          else
            append_limit(out, t.tool.name + "_per_hour", "hour", limits.write_per_hour);
          break;
      }
      out += " }";
    }
  }
  out += first ? "}\n}\n" : "\n  }\n}\n";
  return out;
}

}  // namespace mcpgate::tools
