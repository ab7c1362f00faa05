#include "policy/condition.h"

#include <re2/re2.h>

#include <array>
#include <charconv>
#include <cstdio>
#include <optional>

namespace mcpgate::policy {

namespace {

namespace dom = simdjson::dom;

constexpr int kMaxNesting = 32;

constexpr std::array<std::string_view, 14> kOpNames = {
    "eq",     "neq",      "lt",          "lte",       "gt",    "gte",    "in",
    "not_in", "contains", "starts_with", "ends_with", "regex", "exists", "not_exists"};

bool parse_op(std::string_view name, condition_op* op) {
  for (size_t i = 0; i < kOpNames.size(); ++i) {
    if (kOpNames[i] == name) {
      *op = static_cast<condition_op>(i);
      return true;
    }
  }
  return false;
}

bool is_scalar(dom::element value) {
  switch (value.type()) {
    case dom::element_type::ARRAY:
    case dom::element_type::OBJECT:
      return false;
    default:
      return true;
  }
}

bool is_number(dom::element value) {
  auto t = value.type();
  return t == dom::element_type::INT64 || t == dom::element_type::UINT64 ||
         t == dom::element_type::DOUBLE;
}

long double number_of(dom::element value) {
  switch (value.type()) {
    case dom::element_type::INT64:
      return static_cast<long double>(value.get_int64().value_unsafe());
    case dom::element_type::UINT64:
      return static_cast<long double>(value.get_uint64().value_unsafe());
    default:
      return static_cast<long double>(value.get_double().value_unsafe());
  }
}

// A number, or a string holding one, as the upstream will read it: pydantic (FastMCP and the
// Python SDK) and zod's coerce accept "20000" for an integer field, so a condition on the
// amount must see 20000. The text must be a plain decimal number (sign, digits, fraction,
// exponent; ASCII spaces around it), nothing strtold would also take (hex, inf, nan).
std::optional<long double> numeric_value(dom::element value) {
  if (is_number(value)) return number_of(value);
  if (!value.is_string()) return std::nullopt;
  std::string_view text = value.get_string().value_unsafe();
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (text.empty() || text.size() > 64) return std::nullopt;
  size_t i = 0;
  auto digits = [&] {
    size_t from = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    return i - from;
  };
  if (text[i] == '+' || text[i] == '-') ++i;
  size_t whole = digits();
  size_t fraction = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    fraction = digits();
  }
  if (whole + fraction == 0) return std::nullopt;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    if (digits() == 0) return std::nullopt;
  }
  if (i != text.size()) return std::nullopt;
  std::string copy(text);
  return std::strtold(copy.c_str(), nullptr);
}

}  // namespace

std::string_view op_name(condition_op op) {
  return kOpNames[static_cast<size_t>(op)];
}

argument_reader::argument_reader() {
  // Room for typical arguments up front, so the first calls of a shard do not allocate.
  // A failure here only means the first parse allocates instead.
  if (parser_.allocate(64 * 1024) != simdjson::SUCCESS) return;
}

void argument_reader::reset(std::string_view json) {
  json_ = json;
  state_ = state::unread;
  ambiguous_ = false;
}

const dom::element* argument_reader::root() {
  if (state_ == state::unread) {
    if (json_.empty()) {
      state_ = state::absent;
    } else {
      // In place: the caller guarantees SIMDJSON_PADDING readable bytes after the end.
      auto parsed = parser_.parse(json_.data(), json_.size(), false);
      if (parsed.error()) {
        state_ = state::invalid;
      } else {
        root_ = parsed.value_unsafe();
        state_ = state::parsed;
      }
    }
  }
  return state_ == state::parsed ? &root_ : nullptr;
}

condition condition::parse(dom::element value, const json_location& where, bool allow_on_deny,
                           std::string* on_deny) {
  condition result;
  result.parse_node(value, where, 0, allow_on_deny, on_deny);
  return result;
}

uint32_t condition::parse_node(dom::element value, const json_location& where, int depth,
                               bool allow_on_deny, std::string* on_deny) {
  if (depth > kMaxNesting) where.fail("conditions nested more than 32 deep");
  if (!value.is_object()) {
    where.fail_expected("a condition object ({\"path\",\"op\",\"value\"}, all, any or not)", value);
  }
  dom::object object = value.get_object().value_unsafe();
  const uint32_t index = static_cast<uint32_t>(nodes_.size());
  nodes_.emplace_back();

  auto get = [&](std::string_view key) -> std::optional<dom::element> {
    auto found = object.at_key(key);
    if (found.error()) return std::nullopt;
    return found.value_unsafe();
  };
  if (allow_on_deny) {
    if (auto message = get("on_deny")) {
      if (!message->is_string()) where.key("on_deny").fail_expected("a string", *message);
      if (on_deny) *on_deny = std::string(message->get_string().value_unsafe());
    }
  }

  for (auto [name, type] : {std::pair{std::string_view("all"), node::kind::all},
                            std::pair{std::string_view("any"), node::kind::any}}) {
    if (auto list = get(name)) {
      if (allow_on_deny) {
        check_keys(object, where, {name, "on_deny"});
      } else {
        check_keys(object, where, {name});
      }
      if (!list->is_array()) where.key(name).fail_expected("an array of conditions", *list);
      std::vector<uint32_t> children;
      size_t i = 0;
      const dom::array items = list->get_array().value_unsafe();
      for (dom::element child : items) {
        children.push_back(parse_node(child, where.key(name).index(i), depth + 1, false, nullptr));
        ++i;
      }
      nodes_[index].type = type;
      nodes_[index].children = std::move(children);
      return index;
    }
  }
  if (auto inner = get("not")) {
    if (allow_on_deny) {
      check_keys(object, where, {"not", "on_deny"});
    } else {
      check_keys(object, where, {"not"});
    }
    uint32_t child = parse_node(*inner, where.key("not"), depth + 1, false, nullptr);
    nodes_[index].type = node::kind::negate;
    nodes_[index].children = {child};
    return index;
  }

  if (allow_on_deny) {
    check_keys(object, where, {"path", "op", "value", "on_deny"});
  } else {
    check_keys(object, where, {"path", "op", "value"});
  }
  node leaf;
  leaf.type = node::kind::leaf;

  auto path = get("path");
  if (!path) where.fail("missing key \"path\" (or all, any, not)");
  if (!path->is_string()) where.key("path").fail_expected("a string like \"args.amount\"", *path);
  leaf.path_text = std::string(path->get_string().value_unsafe());
  {
    std::string_view text = leaf.path_text;
    auto bad = [&](std::string_view why) {
      where.key("path").fail(std::string(why) + ", got " + quote_string(leaf.path_text));
    };
    if (text.substr(0, 4) != "args") bad("expected a path starting with \"args\"");
    size_t i = 4;
    while (i < text.size()) {
      step s;
      if (text[i] == '.') {
        size_t end = text.find_first_of(".[", i + 1);
        if (end == std::string_view::npos) end = text.size();
        if (end == i + 1) bad("empty key in path");
        s.key = std::string(text.substr(i + 1, end - i - 1));
        i = end;
      } else if (text[i] == '[') {
        size_t end = text.find(']', i);
        if (end == std::string_view::npos || end == i + 1) bad("expected [index] in path");
        std::string_view digits = text.substr(i + 1, end - i - 1);
        auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), s.index);
        if (ec != std::errc() || ptr != digits.data() + digits.size()) {
          bad("expected a non-negative integer index in path");
        }
        s.is_index = true;
        i = end + 1;
      } else {
        bad("expected \".key\" or \"[index]\" after \"args\"");
      }
      leaf.path.push_back(std::move(s));
    }
  }

  auto op = get("op");
  if (!op) where.fail("missing key \"op\"");
  if (!op->is_string() || !parse_op(op->get_string().value_unsafe(), &leaf.op)) {
    where.key("op").fail_expected(
        "one of eq, neq, lt, lte, gt, gte, in, not_in, contains, starts_with, ends_with, regex, "
        "exists, not_exists",
        *op);
  }

  auto value_of = [&](dom::element v) {
    literal lit;
    switch (v.type()) {
      case dom::element_type::NULL_VALUE:
        lit.type = literal::kind::null;
        break;
      case dom::element_type::BOOL:
        lit.type = literal::kind::boolean;
        lit.boolean = v.get_bool().value_unsafe();
        break;
      case dom::element_type::STRING:
        lit.type = literal::kind::string;
        lit.text = std::string(v.get_string().value_unsafe());
        break;
      default:
        lit.type = literal::kind::number;
        lit.number = number_of(v);
        break;
    }
    return lit;
  };

  auto given = get("value");
  const json_location value_at = where.key("value");
  switch (leaf.op) {
    case condition_op::exists:
    case condition_op::not_exists:
      if (given) value_at.fail(std::string(op_name(leaf.op)) + " takes no value");
      break;
    default:
      if (!given) where.fail("missing key \"value\" for op " + std::string(op_name(leaf.op)));
  }
  switch (leaf.op) {
    case condition_op::eq:
    case condition_op::neq:
    case condition_op::contains:
      if (!is_scalar(*given)) {
        value_at.fail_expected("a string, number, boolean or null", *given);
      }
      leaf.value = value_of(*given);
      break;
    case condition_op::lt:
    case condition_op::lte:
    case condition_op::gt:
    case condition_op::gte:
      if (!is_number(*given)) value_at.fail_expected("a number", *given);
      leaf.value = value_of(*given);
      break;
    case condition_op::in:
    case condition_op::not_in: {
      if (!given->is_array()) value_at.fail_expected("an array of strings or numbers", *given);
      size_t i = 0;
      const dom::array items = given->get_array().value_unsafe();
      for (dom::element item : items) {
        if (!is_scalar(item))
          value_at.index(i).fail_expected("a string, number, boolean or null", item);
        leaf.values.push_back(value_of(item));
        ++i;
      }
      break;
    }
    case condition_op::starts_with:
    case condition_op::ends_with:
      if (!given->is_string()) value_at.fail_expected("a string", *given);
      leaf.value = value_of(*given);
      break;
    case condition_op::regex: {
      if (!given->is_string()) value_at.fail_expected("a string (RE2 syntax)", *given);
      leaf.value = value_of(*given);
      RE2::Options options;
      options.set_log_errors(false);
      auto compiled = std::make_shared<const RE2>(leaf.value.text, options);
      if (!compiled->ok()) {
        value_at.fail("invalid RE2 pattern " + quote_string(leaf.value.text) + ": " +
                      compiled->error());
      }
      leaf.pattern = std::move(compiled);
      break;
    }
    case condition_op::exists:
    case condition_op::not_exists:
      break;
  }
  nodes_[index] = std::move(leaf);
  return index;
}

bool condition::equal(const literal& want, dom::element got) {
  switch (want.type) {
    case literal::kind::null:
      return got.is_null();
    case literal::kind::boolean:
      return got.is_bool() && got.get_bool().value_unsafe() == want.boolean;
    case literal::kind::number: {
      std::optional<long double> n = numeric_value(got);
      return n && *n == want.number;
    }
    case literal::kind::string:
      return got.is_string() && got.get_string().value_unsafe() == want.text;
  }
  return false;
}

bool condition::holds(argument_reader& args) const {
  return eval(0, args);
}

bool condition::eval(uint32_t index, argument_reader& args) const {
  const node& n = nodes_[index];
  switch (n.type) {
    case node::kind::leaf:
      return eval_leaf(n, args);
    case node::kind::all:
      for (uint32_t child : n.children) {
        if (!eval(child, args)) return false;
      }
      return true;
    case node::kind::any:
      for (uint32_t child : n.children) {
        if (eval(child, args)) return true;
      }
      return false;
    case node::kind::negate:
      return !eval(n.children[0], args);
  }
  return false;
}

bool condition::eval_leaf(const node& leaf, argument_reader& args) const {
  // Resolve the path; `found` stays false when any step is missing or of the wrong type.
  bool found = false;
  dom::element at;
  if (const dom::element* root = args.root()) {
    at = *root;
    found = true;
    for (const step& s : leaf.path) {
      if (s.is_index) {
        auto next = at.at(s.index);
        if (!at.is_array() || next.error()) {
          found = false;
          break;
        }
        at = next.value_unsafe();
      } else {
        if (!at.is_object()) {
          found = false;
          break;
        }
        int matches = 0;
        dom::element match;
        // Copied out first: the simdjson_result temporary dies before the loop body.
        const dom::object fields = at.get_object().value_unsafe();
        for (dom::key_value_pair field : fields) {
          if (field.key == s.key) {
            ++matches;
            match = field.value;
          }
        }
        if (matches > 1) args.mark_ambiguous();
        if (matches != 1) {
          found = false;
          break;
        }
        at = match;
      }
    }
  }

  if (leaf.op == condition_op::not_exists) return !found;
  if (!found) return false;
  switch (leaf.op) {
    case condition_op::exists:
      return true;
    case condition_op::eq:
      return equal(leaf.value, at);
    case condition_op::neq:
      // Wrong type is false, not "different".
      switch (leaf.value.type) {
        case literal::kind::null:
          return false;
        case literal::kind::boolean:
          return at.is_bool() && !equal(leaf.value, at);
        case literal::kind::number:
          return numeric_value(at) && !equal(leaf.value, at);
        case literal::kind::string:
          return at.is_string() && !equal(leaf.value, at);
      }
      return false;
    case condition_op::lt: {
      std::optional<long double> n = numeric_value(at);
      return n && *n < leaf.value.number;
    }
    case condition_op::lte: {
      std::optional<long double> n = numeric_value(at);
      return n && *n <= leaf.value.number;
    }
    case condition_op::gt: {
      std::optional<long double> n = numeric_value(at);
      return n && *n > leaf.value.number;
    }
    case condition_op::gte: {
      std::optional<long double> n = numeric_value(at);
      return n && *n >= leaf.value.number;
    }
    case condition_op::in:
    case condition_op::not_in: {
      if (!is_scalar(at)) return false;
      bool member = false;
      for (const literal& v : leaf.values) member = member || equal(v, at);
      return leaf.op == condition_op::in ? member : !member;
    }
    case condition_op::contains:
      if (at.is_string()) {
        return leaf.value.type == literal::kind::string &&
               at.get_string().value_unsafe().find(leaf.value.text) != std::string_view::npos;
      }
      if (at.is_array()) {
        // Copied out first: the simdjson_result temporary dies before the loop body.
        const dom::array items = at.get_array().value_unsafe();
        for (dom::element item : items) {
          if (equal(leaf.value, item)) return true;
        }
      }
      return false;
    case condition_op::starts_with:
      return at.is_string() && at.get_string().value_unsafe().starts_with(leaf.value.text);
    case condition_op::ends_with:
      return at.is_string() && at.get_string().value_unsafe().ends_with(leaf.value.text);
    case condition_op::regex: {
      if (!at.is_string()) return false;
      std::string_view text = at.get_string().value_unsafe();
      return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), *leaf.pattern);
    }
    case condition_op::not_exists:
      break;
  }
  return false;
}

std::string condition::describe() const {
  std::string out;
  describe_node(0, out);
  return out;
}

void condition::describe_node(uint32_t index, std::string& out) const {
  const node& n = nodes_[index];
  auto lit = [&](const literal& l) {
    switch (l.type) {
      case literal::kind::null:
        out += "null";
        break;
      case literal::kind::boolean:
        out += l.boolean ? "true" : "false";
        break;
      case literal::kind::number: {
        char buf[64];
        int len = std::snprintf(buf, sizeof buf, "%.17Lg", l.number);
        out.append(buf, static_cast<size_t>(len));
        break;
      }
      case literal::kind::string:
        out += quote_string(l.text);
        break;
    }
  };
  switch (n.type) {
    case node::kind::leaf:
      out += n.path_text;
      out += ' ';
      out += op_name(n.op);
      if (n.op == condition_op::in || n.op == condition_op::not_in) {
        out += " [";
        for (size_t i = 0; i < n.values.size(); ++i) {
          if (i) out += ", ";
          lit(n.values[i]);
        }
        out += ']';
      } else if (n.op != condition_op::exists && n.op != condition_op::not_exists) {
        out += ' ';
        lit(n.value);
      }
      return;
    case node::kind::all:
    case node::kind::any:
      out += n.type == node::kind::all ? "all(" : "any(";
      for (size_t i = 0; i < n.children.size(); ++i) {
        if (i) out += ", ";
        describe_node(n.children[i], out);
      }
      out += ')';
      return;
    case node::kind::negate:
      out += "not(";
      describe_node(n.children[0], out);
      out += ')';
      return;
  }
}

bool all_hold(const std::vector<condition>& conditions, argument_reader& args) {
  for (const condition& c : conditions) {
    if (!c.holds(args)) return false;
  }
  return true;
}

}  // namespace mcpgate::policy
