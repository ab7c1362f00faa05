#pragma once

// Conditions on a tool call's arguments, in the vocabulary of the open-source policy proxies:
//   { "path": "args.amount", "op": "gt", "value": 10000 }
//   { "all": [ ... ] }   { "any": [ ... ] }   { "not": { ... } }
// path is "args" followed by ".key" and "[i]" steps into params.arguments. A field that is
// missing or of the wrong type makes its condition false, except for not_exists.
//
// Arguments are read the way an upstream server will read them: keys are compared after JSON
// unescaping, and a key that appears twice in an object the path walks through makes the
// call ambiguous (the policy cannot know which copy the server uses), which decide() denies.

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/load_error.h"

namespace re2 {
class RE2;
}

namespace mcpgate::policy {

enum class condition_op : uint8_t {
  eq,
  neq,
  lt,
  lte,
  gt,
  gte,
  in,
  not_in,
  contains,
  starts_with,
  ends_with,
  regex,
  exists,
  not_exists,
};

std::string_view op_name(condition_op op);

// params.arguments of one call, parsed at most once and only if a condition reads it.
// Lives in the per-shard scratch; reset() for every call.
class argument_reader {
 public:
  argument_reader();

  // `json` is the raw bytes of params.arguments (empty when absent); at least
  // SIMDJSON_PADDING readable bytes must follow its end. It must outlive the evaluation.
  void reset(std::string_view json);

  // The arguments' root, or nullptr when absent or not valid JSON.
  const simdjson::dom::element* root();

  // The arguments were present but not valid JSON.
  bool invalid() const { return state_ == state::invalid; }
  // A path went through a duplicated key.
  bool ambiguous() const { return ambiguous_; }
  void mark_ambiguous() { ambiguous_ = true; }

 private:
  enum class state : uint8_t { unread, absent, parsed, invalid };
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
  std::string_view json_;
  state state_ = state::unread;
  bool ambiguous_ = false;
};

// One condition, compiled at load (paths split, literals typed, regexes compiled).
class condition {
 public:
  // Compiles `value` found at `where`; throws load_error naming the path and the bad value.
  // `allow_on_deny` lets a top-level require entry carry an "on_deny" message, returned in
  // *on_deny.
  static condition parse(simdjson::dom::element value, const json_location& where,
                         bool allow_on_deny = false, std::string* on_deny = nullptr);

  // Whether the condition holds for these arguments. Never throws, never allocates.
  bool holds(argument_reader& args) const;

  // Human-readable form for `mcpgate check`, e.g. `args.amount gt 10000`.
  std::string describe() const;

 private:
  struct literal {
    enum class kind : uint8_t { null, boolean, number, string };
    kind type = kind::null;
    bool boolean = false;
    long double number = 0;  // exact for every int64, uint64 and double
    std::string text;
  };
  struct step {
    bool is_index = false;
    size_t index = 0;
    std::string key;
  };
  struct node {
    enum class kind : uint8_t { leaf, all, any, negate };
    kind type = kind::leaf;
    std::vector<uint32_t> children;  // indexes into nodes_
    std::string path_text;
    std::vector<step> path;
    condition_op op = condition_op::eq;
    literal value;                // eq .. ends_with, regex pattern text
    std::vector<literal> values;  // in, not_in
    std::shared_ptr<const re2::RE2> pattern;
  };

  uint32_t parse_node(simdjson::dom::element value, const json_location& where, int depth,
                      bool allow_on_deny, std::string* on_deny);
  bool eval(uint32_t index, argument_reader& args) const;
  bool eval_leaf(const node& leaf, argument_reader& args) const;
  void describe_node(uint32_t index, std::string& out) const;
  static bool equal(const literal& want, simdjson::dom::element got);

  std::vector<node> nodes_;  // nodes_[0] is the root
};

// True when every condition holds (an empty list always holds).
bool all_hold(const std::vector<condition>& conditions, argument_reader& args);

}  // namespace mcpgate::policy
