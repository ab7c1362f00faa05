#include "policy/tool_pins.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "policy/identity.h"
#include "policy/json_writer.h"
#include "policy/load_error.h"

namespace mcpgate::policy {

namespace {

namespace od = simdjson::ondemand;

std::string_view trim_right(std::string_view s) {
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool valid_number(std::string_view t, bool* integer) {
  size_t i = 0;
  if (i < t.size() && t[i] == '-') ++i;
  if (i >= t.size() || !is_digit(t[i])) return false;
  if (t[i] == '0') {
    ++i;
  } else {
    while (i < t.size() && is_digit(t[i])) ++i;
  }
  *integer = true;
  if (i < t.size() && t[i] == '.') {
    *integer = false;
    ++i;
    if (i >= t.size() || !is_digit(t[i])) return false;
    while (i < t.size() && is_digit(t[i])) ++i;
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    *integer = false;
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (i >= t.size() || !is_digit(t[i])) return false;
    while (i < t.size() && is_digit(t[i])) ++i;
  }
  return i == t.size();
}

// Numbers mean their value, not their spelling: an integer that fits in 64 bits stays as
// written ("-0" is 0), anything else is the shortest text that reads back as the same double
// (1.0 and 1e0 are both 1), so a file rewritten by another JSON library pins the same.
bool append_number(std::string& out, std::string_view token) {
  bool integer = false;
  if (!valid_number(token, &integer)) return false;
  if (integer) {
    bool negative = token[0] == '-';
    std::string_view digits = negative ? token.substr(1) : token;
    if (digits == "0") {
      out += '0';
      return true;
    }
    uint64_t magnitude = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude);
    bool fits = ec == std::errc() && end == digits.data() + digits.size() &&
                (!negative || magnitude <= uint64_t(1) << 63);
    if (fits) {
      out.append(token);
      return true;
    }
  }
  double value = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  if (ec != std::errc() || end != token.data() + token.size()) return false;  // out of range
  if (value == 0) value = 0;                                                  // -0.0 is 0
  if (value > -9.2e18 && value < 9.2e18 &&
      value == static_cast<double>(static_cast<int64_t>(value))) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(value));
    out.append(buf, r.ptr);
    return true;
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  if (r.ec != std::errc()) return false;
  out.append(buf, r.ptr);
  return true;
}

bool append_value(od::value v, std::string& out, int depth);

bool append_object(od::object o, std::string& out, int depth) {
  std::vector<std::pair<std::string_view, std::string>> members;
  for (auto field_result : o) {
    od::field field;
    std::string_view key;
    if (std::move(field_result).get(field) || field.unescaped_key().get(key)) return false;
    std::string value;
    if (!append_value(field.value(), value, depth + 1)) return false;
    members.emplace_back(key, std::move(value));
  }
  std::sort(members.begin(), members.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < members.size(); ++i)
    if (members[i].first == members[i - 1].first) return false;
  out += '{';
  for (size_t i = 0; i < members.size(); ++i) {
    if (i) out += ',';
    append_json_string(out, members[i].first);
    out += ':';
    out += members[i].second;
  }
  out += '}';
  return true;
}

bool append_value(od::value v, std::string& out, int depth) {
  if (depth > max_canonical_depth) return false;
  od::json_type type;
  if (v.type().get(type)) return false;
  switch (type) {
    case od::json_type::object: {
      od::object o;
      return !v.get_object().get(o) && append_object(o, out, depth);
    }
    case od::json_type::array: {
      od::array a;
      if (v.get_array().get(a)) return false;
      out += '[';
      bool first = true;
      for (auto item_result : a) {
        od::value item;
        if (std::move(item_result).get(item)) return false;
        if (!first) out += ',';
        first = false;
        if (!append_value(item, out, depth + 1)) return false;
      }
      out += ']';
      return true;
    }
    case od::json_type::string: {
      std::string_view s;
      if (v.get_string().get(s)) return false;
      append_json_string(out, s);
      return true;
    }
    case od::json_type::number: {
      return append_number(out, trim_right(v.raw_json_token()));
    }
    case od::json_type::boolean:
    case od::json_type::null: {
      std::string_view token = trim_right(v.raw_json_token());
      if (token != "true" && token != "false" && token != "null") return false;
      out.append(token);
      return true;
    }
  }
  return false;
}

// The keys a definition is made of, in canonical (sorted) order.
constexpr std::array<std::string_view, 5> definition_keys = {
    "annotations", "description", "inputSchema", "outputSchema", "title"};

// Parses `json` (one value, whitespace around it allowed) and hands its document to `read`.
template <typename Read>
bool with_document(std::string_view json, Read&& read) {
  // One parser per thread: canonical_json runs on the control plane and in fuzzing only.
  thread_local od::parser parser;
  std::string padded(json);
  padded.append(simdjson::SIMDJSON_PADDING, '\0');
  od::document doc;
  if (parser.iterate(padded.data(), json.size(), padded.size()).get(doc)) return false;
  if (!read(doc) || !doc.is_alive()) return false;
  // Anything but whitespace after the value is an error (3.0.1 has no at_end()).
  std::string_view whole;
  doc.rewind();
  if (doc.raw_json().get(whole)) return false;
  size_t end = static_cast<size_t>(whole.data() - padded.data()) + whole.size();
  return trim_right(json.substr(end)).empty();
}

}  // namespace

bool canonical_json(std::string_view json, std::string& out) {
  out.clear();
  return with_document(json, [&](od::document& doc) {
    od::json_type type;
    if (doc.type().get(type)) return false;
    if (type == od::json_type::object) {
      od::object o;
      return !doc.get_object().get(o) && append_object(o, out, 1);
    }
    if (type == od::json_type::array) {
      od::value v;
      return !doc.get_value().get(v) && append_value(v, out, 0);
    }
    return false;  // a scalar document: no definition is one
  });
}

bool canonical_definition(od::object tool, std::string& out) {
  out.clear();
  std::array<std::string, definition_keys.size()> parts;
  std::array<bool, definition_keys.size()> present{};
  std::vector<std::string_view> seen;
  for (auto field_result : tool) {
    od::field field;
    std::string_view key;
    if (std::move(field_result).get(field) || field.unescaped_key().get(key)) return false;
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) return false;
    seen.push_back(key);
    auto at = std::find(definition_keys.begin(), definition_keys.end(), key);
    if (at == definition_keys.end()) continue;
    size_t i = static_cast<size_t>(at - definition_keys.begin());
    if (!append_value(field.value(), parts[i], 1)) return false;
    present[i] = true;
  }
  out += '{';
  bool first = true;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!present[i]) continue;
    if (!first) out += ',';
    first = false;
    append_json_string(out, definition_keys[i]);
    out += ':';
    out += parts[i];
  }
  out += '}';
  return true;
}

bool canonical_definition(std::string_view tool_json, std::string& out) {
  out.clear();
  return with_document(tool_json, [&](od::document& doc) {
    od::object o;
    return !doc.get_object().get(o) && canonical_definition(o, out);
  });
}

std::string digest_hex(const pin_digest& d) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (unsigned char b : d) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

std::optional<pin_digest> parse_digest_hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  pin_digest d{};
  for (size_t i = 0; i < d.size(); ++i) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, value, 16);
    if (ec != std::errc() || end != hex.data() + 2 * i + 2) return std::nullopt;
    d[i] = static_cast<unsigned char>(value);
  }
  return d;
}

std::string pretty_json(std::string_view s) {
  std::string out;
  int indent = 0;
  auto newline = [&] {
    out += '\n';
    out.append(static_cast<size_t>(2 * indent), ' ');
  };
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      out += c;
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        out += c;
        break;
      case '{':
      case '[':
        if (i + 1 < s.size() && s[i + 1] == (c == '{' ? '}' : ']')) {
          out += c;
          out += s[++i];
          break;
        }
        out += c;
        ++indent;
        newline();
        break;
      case '}':
      case ']':
        --indent;
        newline();
        out += c;
        break;
      case ',':
        out += c;
        newline();
        break;
      case ':':
        out += ": ";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pins files

namespace {

namespace dom = simdjson::dom;

std::string get_string(dom::element e, const json_location& at, std::string_view what) {
  if (!e.is_string()) at.fail_expected(what, e);
  return std::string(e.get_string().value_unsafe());
}

dom::object get_object(dom::element e, const json_location& at, std::string_view what) {
  if (!e.is_object()) at.fail_expected(what, e);
  return e.get_object().value_unsafe();
}

// Refuses a key given twice: whichever a reader kept, the file would mean two things.
void check_unique(dom::object object, const json_location& at) {
  std::vector<std::string_view> seen;
  for (dom::key_value_pair field : object) {
    if (std::find(seen.begin(), seen.end(), field.key) != seen.end())
      at.key(field.key).fail("duplicate key " + quote_string(field.key));
    seen.push_back(field.key);
  }
}

pin_entry parse_pin(std::string_view name, dom::element e, const json_location& at) {
  dom::object tool = get_object(e, at, "a pinned tool {\"class\", \"sha256\", \"definition\"}");
  check_keys(tool, at, {"class", "sha256", "definition"});
  pin_entry pin;
  pin.name = std::string(name);
  if (auto cls = tool.at_key("class"); !cls.error())
    pin.cls = get_string(cls.value_unsafe(), at.key("class"), "a class name");
  auto sha = tool.at_key("sha256");
  if (sha.error()) at.fail("missing key \"sha256\"");
  std::string hex = get_string(sha.value_unsafe(), at.key("sha256"), "64 hex digits");
  std::optional<pin_digest> digest = parse_digest_hex(hex);
  if (!digest) at.key("sha256").fail_expected("64 hex digits", sha.value_unsafe());
  pin.sha256 = *digest;
  auto definition = tool.at_key("definition");
  if (definition.error()) at.fail("missing key \"definition\"");
  json_location def_at = at.key("definition");
  get_object(definition.value_unsafe(), def_at, "the tool's definition, an object");
  if (!canonical_json(simdjson::minify(definition.value_unsafe()), pin.definition))
    def_at.fail("cannot be made canonical (a key repeated, or nested deeper than " +
                std::to_string(max_canonical_depth) + ")");
  if (sha256(pin.definition) != pin.sha256)
    at.key("sha256").fail(
        "is not the SHA-256 of the definition beside it (" + digest_hex(sha256(pin.definition)) +
        "): the definition was edited by hand; take pins again with `mcpgate pins accept`");
  return pin;
}

}  // namespace

pins_file parse_pins_file(std::string_view text, const std::string& file) {
  dom::parser parser;
  dom::element root;
  if (auto err = parser.parse(simdjson::padded_string(text)).get(root))
    throw load_error(file + ": " + describe_invalid_json(text, err));
  json_location at(file, "$");
  dom::object top = get_object(root, at, "a pins file {\"mcpgate_pins\": 1, \"servers\": {...}}");
  check_keys(top, at, {"mcpgate_pins", "servers"});
  auto version = top.at_key("mcpgate_pins");
  if (version.error())
    at.fail(
        "missing key \"mcpgate_pins\" (is this a pins file? `mcpgate catalogue --pin FILE` "
        "writes one)");
  if (!version.value_unsafe().is_int64() || int64_t(version.value_unsafe()) != 1)
    at.key("mcpgate_pins").fail_expected("1", version.value_unsafe());
  auto servers = top.at_key("servers");
  if (servers.error()) at.fail("missing key \"servers\"");
  json_location servers_at = at.key("servers");
  dom::object server_map = get_object(servers.value_unsafe(), servers_at, "an object of servers");
  check_unique(server_map, servers_at);
  pins_file pins;
  for (dom::key_value_pair s : server_map) {
    json_location server_at = servers_at.key(s.key);
    dom::object server = get_object(s.value, server_at, "a server {\"source\", \"tools\"}");
    check_keys(server, server_at, {"source", "tools"});
    pins_file::server& out = pins.servers[std::string(s.key)];
    if (auto source = server.at_key("source"); !source.error())
      out.source = get_string(source.value_unsafe(), server_at.key("source"), "a string");
    auto tools = server.at_key("tools");
    if (tools.error()) server_at.fail("missing key \"tools\"");
    json_location tools_at = server_at.key("tools");
    dom::object tool_map = get_object(tools.value_unsafe(), tools_at, "an object of tools");
    check_unique(tool_map, tools_at);
    for (dom::key_value_pair t : tool_map)
      out.tools.push_back(parse_pin(t.key, t.value, tools_at.key(t.key)));
    std::sort(out.tools.begin(), out.tools.end(),
              [](const pin_entry& a, const pin_entry& b) { return a.name < b.name; });
  }
  return pins;
}

pins_file load_pins_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw load_error(path + ": cannot read the pins file: " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_pins_file(text, path);
}

std::string format_pins_file(const pins_file& pins) {
  std::string compact = "{\"mcpgate_pins\":1,\"servers\":{";
  bool first_server = true;
  for (const auto& [name, server] : pins.servers) {
    if (!first_server) compact += ',';
    first_server = false;
    append_json_string(compact, name);
    compact += ":{\"source\":";
    append_json_string(compact, server.source);
    compact += ",\"tools\":{";
    std::vector<const pin_entry*> sorted;
    for (const pin_entry& t : server.tools) sorted.push_back(&t);
    std::sort(sorted.begin(), sorted.end(),
              [](const pin_entry* a, const pin_entry* b) { return a->name < b->name; });
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (i) compact += ',';
      append_json_string(compact, sorted[i]->name);
      compact += ":{\"class\":";
      append_json_string(compact, sorted[i]->cls);
      compact += ",\"sha256\":\"" + digest_hex(sorted[i]->sha256) + "\",\"definition\":";
      compact += sorted[i]->definition;
      compact += '}';
    }
    compact += "}}";
  }
  compact += "}}";
  return pretty_json(compact) + "\n";
}

std::optional<pin_entry> pin_of(std::string_view tool_json, std::string cls) {
  pin_entry pin;
  pin.cls = std::move(cls);
  if (!canonical_definition(tool_json, pin.definition)) return std::nullopt;
  bool named = with_document(tool_json, [&](od::document& doc) {
    od::object o;
    std::string_view name;
    if (doc.get_object().get(o) || o["name"].get_string().get(name)) return false;
    pin.name = std::string(name);
    return true;
  });
  if (!named) return std::nullopt;
  pin.sha256 = sha256(pin.definition);
  return pin;
}

// ---------------------------------------------------------------------------------------------
// Modes and counts

std::optional<pin_change_action> parse_pin_change_action(std::string_view name) {
  if (name == "hide") return pin_change_action::hide;
  if (name == "deny") return pin_change_action::deny;
  if (name == "log") return pin_change_action::log;
  return std::nullopt;
}

std::optional<unpinned_action> parse_unpinned_action(std::string_view name) {
  if (name == "allow") return unpinned_action::allow;
  if (name == "hide") return unpinned_action::hide;
  return std::nullopt;
}

std::string_view action_name(pin_change_action a) {
  switch (a) {
    case pin_change_action::hide:
      return "hidden";
    case pin_change_action::deny:
      return "denied";
    case pin_change_action::log:
      return "logged";
  }
  return "hidden";
}

std::atomic<uint64_t>& pin_counts::last_seen(const std::string& tool) {
  std::lock_guard lock(mu_);
  std::unique_ptr<std::atomic<uint64_t>>& slot = last_seen_[tool];
  if (!slot) slot = std::make_unique<std::atomic<uint64_t>>(0);
  return *slot;
}

std::shared_ptr<pin_counts> pin_counts_store::for_server(const std::string& label) {
  std::lock_guard lock(mu_);
  auto& slot = by_server_[label];
  if (!slot) slot = std::make_shared<pin_counts>();
  return slot;
}

std::string pin_counts_store::render() const {
  std::lock_guard lock(mu_);
  if (by_server_.empty()) return {};
  std::string out =
      "# HELP mcpgate_tool_pin_mismatches_total tools/list entries that did not match their "
      "pin, by what the gateway did\n"
      "# TYPE mcpgate_tool_pin_mismatches_total counter\n";
  auto line = [&](const std::string& server, std::string_view action, uint64_t n) {
    out += "mcpgate_tool_pin_mismatches_total{server=";
    append_json_string(out, server);  // a config name: [a-z0-9-], quoting is all it needs
    out += ",action=\"" + std::string(action) + "\"} " + std::to_string(n) + "\n";
  };
  for (const auto& [server, c] : by_server_) {
    line(server, "hidden", c->hidden.load(std::memory_order_relaxed));
    line(server, "denied", c->denied.load(std::memory_order_relaxed));
    line(server, "logged", c->logged.load(std::memory_order_relaxed));
    line(server, "unpinned", c->unpinned.load(std::memory_order_relaxed));
  }
  out +=
      "# HELP mcpgate_tool_pin_refused_calls_total tools/call refused because the tool changed "
      "since it was pinned, or is not pinned\n"
      "# TYPE mcpgate_tool_pin_refused_calls_total counter\n";
  for (const auto& [server, c] : by_server_) {
    out += "mcpgate_tool_pin_refused_calls_total{server=";
    append_json_string(out, server);
    out += "} " + std::to_string(c->calls_refused.load(std::memory_order_relaxed)) + "\n";
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Enforcement

namespace {

uint64_t mark_of(const pin_digest& d) {
  uint64_t m = 0;
  for (size_t i = 0; i < 8; ++i) m = (m << 8) | d[i];
  return m | 1;
}

constexpr uint64_t unreadable_mark = 2;

}  // namespace

server_pins::server_pins(std::string server, std::string label, std::string file,
                         pins_file::server pins, pin_change_action on_change,
                         unpinned_action unpinned, std::shared_ptr<pin_counts> counts)
    : server_(std::move(server)),
      label_(std::move(label)),
      file_(std::move(file)),
      tools_(std::move(pins.tools)),
      on_change_(on_change),
      unpinned_(unpinned),
      counts_(std::move(counts)) {
  std::sort(tools_.begin(), tools_.end(),
            [](const pin_entry& a, const pin_entry& b) { return a.name < b.name; });
  seen_.reserve(tools_.size());
  for (const pin_entry& tool : tools_) seen_.push_back(&counts_->last_seen(tool.name));
}

const pin_entry* server_pins::find(std::string_view name) const {
  auto at = std::lower_bound(tools_.begin(), tools_.end(), name,
                             [](const pin_entry& p, std::string_view n) { return p.name < n; });
  return at != tools_.end() && at->name == name ? &*at : nullptr;
}

pin_check server_pins::check_listed(std::string_view name, od::object tool,
                                    std::string& scratch) const {
  pin_check c;
  c.pin = find(name);
  if (!c.pin) {
    c.keep = unpinned_ == unpinned_action::allow;
    if (!c.keep) counts_->unpinned.fetch_add(1, std::memory_order_relaxed);
    return c;
  }
  std::atomic<uint64_t>& seen = *seen_[static_cast<size_t>(c.pin - tools_.data())];
  uint64_t mark = unreadable_mark;
  c.readable = !tool.reset().error() && canonical_definition(tool, scratch);
  if (c.readable) {
    c.seen = sha256(scratch);
    mark = mark_of(c.seen);
    if (c.seen == c.pin->sha256) {
      // Written only when it differs: matching lists do not bounce a cache line between shards.
      if (seen.load(std::memory_order_relaxed) != mark) seen.store(mark, std::memory_order_relaxed);
      return c;
    }
  }
  c.first_seen = seen.exchange(mark, std::memory_order_relaxed) != mark;
  switch (on_change_) {
    case pin_change_action::hide:
      c.keep = false;
      counts_->hidden.fetch_add(1, std::memory_order_relaxed);
      break;
    case pin_change_action::deny:
      counts_->denied.fetch_add(1, std::memory_order_relaxed);
      break;
    case pin_change_action::log:
      counts_->logged.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  return c;
}

bool server_pins::refuses_call(std::string_view name) const {
  const pin_entry* pin = find(name);
  if (!pin) return unpinned_ == unpinned_action::hide;
  if (on_change_ == pin_change_action::log) return false;
  uint64_t seen = seen_[static_cast<size_t>(pin - tools_.data())]->load(std::memory_order_relaxed);
  return seen != 0 && seen != mark_of(pin->sha256);
}

}  // namespace mcpgate::policy
