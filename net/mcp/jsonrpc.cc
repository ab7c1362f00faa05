#include "net/mcp/jsonrpc.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

#include <simdjson.h>

#include "net/mcp/json_lexer.h"

namespace mcpgate::net {

static_assert(jsonrpc_padding == simdjson::SIMDJSON_PADDING);

struct jsonrpc_extractor::storage {
  simdjson::ondemand::parser parser;
  // Unescaped strings; all of them together are never longer than the body.
  std::unique_ptr<char[]> scratch;
  std::size_t scratch_size = 0;
  // Member names of the objects currently open, for duplicate detection.
  std::unique_ptr<std::string_view[]> names;
  std::size_t names_capacity = 0;
  std::vector<jsonrpc_message> messages;
};

namespace {

namespace od = simdjson::ondemand;
using namespace json_lexer;

// How a step of the walk ended. Anything but ok stops the walk at once: malformed JSON,
// or a limit that makes further work unsafe or quadratic.
struct stop {
  jsonrpc_status status = jsonrpc_status::ok;
  std::string_view reason;

  bool halts() const { return status != jsonrpc_status::ok; }
};

constexpr stop go{};
constexpr stop syntax(std::string_view reason) {
  return {jsonrpc_status::parse_error, reason};
}
constexpr stop limit(std::string_view reason) {
  return {jsonrpc_status::invalid_request, reason};
}

// A string (unescaped) or a raw byte range read by one step of the walk.
struct text {
  stop outcome;
  std::string_view value;
};

// Walks one document. Syntax and limit errors stop the walk (returned as stop); JSON-RPC
// rule violations are remembered (first one wins) and the walk goes on, so that a body that
// is also malformed JSON further on still answers parse_error.
class walker {
 public:
  walker(const jsonrpc_limits& limits, od::document& doc, const char* begin, const char* end,
         char* scratch, std::string_view* names, std::size_t names_capacity)
      : limits_(limits),
        doc_(doc),
        begin_(begin),
        end_(end),
        scratch_(scratch),
        names_(names),
        names_capacity_(names_capacity) {}

  std::string_view violation() const { return violation_; }

  // U+0000 can only come from a \u0000 escape (raw control bytes are errors), and escaped
  // strings live in scratch, so strings that are views into the input need no search.
  bool has_nul(std::string_view s) const {
    const bool in_input = s.data() >= begin_ && s.data() <= end_;
    return !in_input && s.find('\0') != std::string_view::npos;
  }

  void reject(std::string_view reason) {
    if (violation_.empty()) violation_ = reason;
  }

  // Validates any value; containers at `depth` (outermost is 1).
  stop walk_value(od::value& v, std::size_t depth) {
    od::json_type type;
    if (v.type().get(type) != simdjson::SUCCESS) return syntax("malformed JSON value");
    switch (type) {
      case od::json_type::object:
        return walk_members(v, depth, [&](std::string_view, od::value& member) {
          return walk_value(member, depth + 1);
        });
      case od::json_type::array:
        return walk_elements(v, depth);
      default:
        return check_scalar(v, type).outcome;
    }
  }

  // Validates any value and returns its raw bytes.
  text capture_value(od::value& v, std::size_t depth) {
    const char* start = v.raw_json_token().data();
    if (*start != '{' && *start != '[') {
      od::json_type type;
      if (v.type().get(type) != simdjson::SUCCESS) return {syntax("malformed JSON value"), {}};
      return check_scalar(v, type);
    }
    const stop s = walk_value(v, depth);
    if (s.halts()) return {s, {}};
    return {go, std::string_view(start, static_cast<std::size_t>(consumed_end() - start))};
  }

  // Reads a string value, unescaped (consuming it, see check_scalar).
  text read_string(od::value& v) {
    od::raw_json_string raw;
    if (v.get_raw_json_string().get(raw) != simdjson::SUCCESS) {
      return {syntax("malformed JSON string"), {}};
    }
    return unescape(raw.raw());
  }

  // Walks one message object at depth into m.
  stop walk_message(od::value& v, std::size_t depth, jsonrpc_message& m) {
    const char* start = v.raw_json_token().data();
    bool has_jsonrpc = false;
    bool has_method = false;
    bool has_result = false;
    bool has_error = false;
    const stop s = walk_members(v, depth, [&](std::string_view name, od::value& member) -> stop {
      od::json_type type;
      if (member.type().get(type) != simdjson::SUCCESS) return syntax("malformed JSON value");
      if (name == "jsonrpc") {
        if (type != od::json_type::string) {
          reject("jsonrpc member is not \"2.0\"");
          return walk_value(member, depth + 1);
        }
        const text t = read_string(member);
        if (t.outcome.halts()) return t.outcome;
        if (t.value != "2.0") reject("jsonrpc member is not \"2.0\"");
        has_jsonrpc = true;
        return go;
      }
      if (name == "method") {
        if (type != od::json_type::string) {
          reject("method is not a string");
          return walk_value(member, depth + 1);
        }
        const text t = read_string(member);
        if (t.outcome.halts()) return t.outcome;
        if (has_nul(t.value)) reject("method contains U+0000");
        m.method = t.value;
        has_method = true;
        return go;
      }
      if (name == "id") return read_id(member, type, depth + 1, m);
      if (name == "params") {
        if (type == od::json_type::object) return walk_params(member, depth + 1, m);
        if (type != od::json_type::array) reject("params is not an object or array");
        const text t = capture_value(member, depth + 1);
        if (t.outcome.halts()) return t.outcome;
        m.params = t.value;
        return go;
      }
      if (name == "result" || name == "error") {
        if (name == "result") {
          has_result = true;
        } else {
          has_error = true;
          if (type != od::json_type::object) reject("error is not an object");
        }
        const text t = capture_value(member, depth + 1);
        if (t.outcome.halts()) return t.outcome;
        m.outcome = t.value;
        return go;
      }
      return walk_value(member, depth + 1);
    });
    if (s.halts()) return s;
    m.raw = std::string_view(start, static_cast<std::size_t>(consumed_end() - start));

    if (!has_jsonrpc) reject("jsonrpc member is missing");
    if (has_method) {
      if (has_result || has_error) reject("request carries result or error");
      m.kind = m.id_kind == id_type::none ? message_kind::notification : message_kind::request;
      // MCP forbids null request ids, unlike base JSON-RPC.
      if (m.id_kind == id_type::null) reject("request id is null");
    } else if (has_result && has_error) {
      reject("response carries both result and error");
    } else if (!has_result && !has_error) {
      reject("message has neither method nor result nor error");
    } else {
      m.kind = has_error ? message_kind::error_response : message_kind::response;
      if (m.id_kind == id_type::none) reject("response has no id");
      // A null id is only for errors answering a request whose id could not be read.
      if (has_result && m.id_kind == id_type::null) reject("result response id is null");
    }
    return go;
  }

  stop walk_batch(od::value& v, std::vector<jsonrpc_message>& messages) {
    if (limits_.max_depth < 1) return limit("nesting deeper than max_depth");
    od::array array;
    if (v.get_array().get(array) != simdjson::SUCCESS) return syntax("malformed JSON array");
    std::size_t count = 0;
    for (auto element_result : array) {
      od::value element;
      if (std::move(element_result).get(element) != simdjson::SUCCESS)
        return syntax("malformed JSON array");
      if (++count > limits_.max_batch) return limit("batch larger than max_batch");
      od::json_type type;
      if (element.type().get(type) != simdjson::SUCCESS) return syntax("malformed JSON value");
      if (type != od::json_type::object) {
        reject("batch element is not an object");
        const stop s = walk_value(element, 2);
        if (s.halts()) return s;
        continue;
      }
      messages.emplace_back();
      const stop s = walk_message(element, 2, messages.back());
      if (s.halts()) return s;
    }
    if (count == 0) reject("empty batch");
    return go;
  }

  // Where the value just walked ends: simdjson's iterator now sits on the next structural
  // character (or at the end of the input), and only whitespace lies between the two.
  const char* consumed_end() {
    const char* next = nullptr;
    if (doc_.current_location().get(next) != simdjson::SUCCESS || next < begin_ || next > end_) {
      next = end_;
    }
    while (next > begin_ && is_json_space(next[-1])) --next;
    return next;
  }

 private:
  // Iterates an object's members, checking names (unescaped, unique, bounded in number) and
  // handing each value to on_member, which must consume or skip it.
  template <typename OnMember>
  stop walk_members(od::value& v, std::size_t depth, OnMember&& on_member) {
    if (depth > limits_.max_depth) return limit("nesting deeper than max_depth");
    od::object object;
    if (v.get_object().get(object) != simdjson::SUCCESS) return syntax("malformed JSON object");
    const std::size_t base = names_used_;
    for (auto field_result : object) {
      od::field field;
      if (std::move(field_result).get(field) != simdjson::SUCCESS)
        return syntax("malformed JSON object");
      if (names_used_ - base >= limits_.max_members)
        return limit("object has more than max_members");
      if (names_used_ == names_capacity_) return limit("too many member names");
      const text name = unescape(field.key().raw());
      if (name.outcome.halts()) return name.outcome;
      if (has_nul(name.value)) reject("member name contains U+0000");
      names_[names_used_++] = name.value;
      const stop s = on_member(name.value, field.value());
      if (s.halts()) return s;
    }
    check_unique(base);
    names_used_ = base;
    return go;
  }

  stop walk_elements(od::value& v, std::size_t depth) {
    if (depth > limits_.max_depth) return limit("nesting deeper than max_depth");
    od::array array;
    if (v.get_array().get(array) != simdjson::SUCCESS) return syntax("malformed JSON array");
    for (auto element_result : array) {
      od::value element;
      if (std::move(element_result).get(element) != simdjson::SUCCESS)
        return syntax("malformed JSON array");
      const stop s = walk_value(element, depth + 1);
      if (s.halts()) return s;
    }
    return go;
  }

  // Duplicate names are valid JSON (RFC 8259 only says SHOULD be unique) but parsers
  // disagree on which one wins, so a policy could read one value and the upstream another.
  // Small objects compare pairwise; larger ones sort, to stay O(n log n) under max_members.
  void check_unique(std::size_t base) {
    std::string_view* first = names_ + base;
    std::string_view* last = names_ + names_used_;
    const std::size_t n = names_used_ - base;
    if (n < 2) return;
    if (n <= 16) {
      for (std::string_view* a = first; a != last; ++a) {
        for (std::string_view* b = a + 1; b != last; ++b) {
          if (*a == *b) {
            reject("duplicate member name");
            return;
          }
        }
      }
      return;
    }
    std::sort(first, last);
    if (std::adjacent_find(first, last) != last) reject("duplicate member name");
  }

  // Validates a scalar, consumes it, and returns its raw token (strings up to their
  // closing quote).
  //
  // Every scalar must be consumed through simdjson, never left for it to skip: its skipper
  // (json_iterator::skip_child in 3.0.1) takes a string followed by ':' for a key and then
  // skips to the enclosing close brace without checking anything, so
  // {"method":"a":"b","method":"tools/call"} would hide the second method.
  text check_scalar(od::value& v, od::json_type type) {
    const std::string_view token = trim_end(v.raw_json_token());
    switch (type) {
      case od::json_type::string: {
        od::raw_json_string raw;
        if (v.get_raw_json_string().get(raw) != simdjson::SUCCESS) {
          return {syntax("malformed JSON string"), {}};
        }
        const scanned_string s = scan_string(raw.raw(), end_, nullptr);
        if (!s.valid || s.close + 1 != token.data() + token.size()) {
          return {syntax("malformed JSON string"), {}};
        }
        return {go, token};
      }
      case od::json_type::number: {
        if (!is_json_number(token)) return {syntax("malformed JSON number"), {}};
        // The grammar is ours; get_double() is only how simdjson consumes the token. It
        // fails for valid numbers beyond the double range (1e400), which parsers read as
        // infinity, an error or a big number: refuse them rather than guess.
        // A number that ends the input cannot be valid inside a container (which must still
        // close), and simdjson's check of the byte after it would read the padding.
        if (token.data() + token.size() == end_) return {syntax("truncated JSON"), {}};
        double ignored;
        if (v.get_double().get(ignored) != simdjson::SUCCESS) {
          return {limit("number beyond the range of a double"), {}};
        }
        return {go, token};
      }
      case od::json_type::boolean: {
        bool ignored;
        if ((token != "true" && token != "false") ||
            v.get_bool().get(ignored) != simdjson::SUCCESS) {
          return {syntax("malformed JSON literal"), {}};
        }
        return {go, token};
      }
      case od::json_type::null: {
        bool is_null = false;
        if (token != "null" || v.is_null().get(is_null) != simdjson::SUCCESS || !is_null) {
          return {syntax("malformed JSON literal"), {}};
        }
        return {go, token};
      }
      default:
        return {syntax("malformed JSON value"), {}};
    }
  }

  // Unescapes the string whose body starts at p. Strings without escapes stay views into
  // the input; escaped ones are written to scratch, which never overflows because each
  // unescaped string is no longer than its raw bytes and raw strings do not overlap.
  text unescape(const char* p) {
    char* out = scratch_ + scratch_used_;
    const scanned_string s = scan_string(p, end_, out);
    if (!s.valid) return {syntax("malformed JSON string"), {}};
    if (!s.escaped) return {go, std::string_view(p, s.length)};
    scratch_used_ += s.length;
    return {go, std::string_view(out, s.length)};
  }

  stop read_id(od::value& v, od::json_type type, std::size_t depth, jsonrpc_message& m) {
    if (type != od::json_type::number && type != od::json_type::string &&
        type != od::json_type::null) {
      reject("id is not a string, integer or null");
      return walk_value(v, depth);
    }
    const text t = check_scalar(v, type);
    if (t.outcome.halts()) return t.outcome;
    if (type == od::json_type::number && !is_exact_integer(t.value)) {
      reject("id is not an integer within +-2^53");
    }
    m.id = t.value;
    m.id_kind = type == od::json_type::number   ? id_type::number
                : type == od::json_type::string ? id_type::string
                                                : id_type::null;
    return go;
  }

  stop walk_params(od::value& v, std::size_t depth, jsonrpc_message& m) {
    const char* start = v.raw_json_token().data();
    const stop s = walk_members(v, depth, [&](std::string_view name, od::value& member) -> stop {
      od::json_type type;
      if (member.type().get(type) != simdjson::SUCCESS) return syntax("malformed JSON value");
      if (name == "name" || name == "uri") {
        // Routing keys: anything but a plain string would let the policy and the server
        // read different tools, so refuse rather than guess.
        if (type != od::json_type::string) {
          reject("params.name or params.uri is not a string");
          return walk_value(member, depth + 1);
        }
        const text t = read_string(member);
        if (t.outcome.halts()) return t.outcome;
        if (has_nul(t.value)) reject("params.name or params.uri contains U+0000");
        (name == "name" ? m.name : m.uri) = t.value;
        return go;
      }
      if (name == "arguments") {
        if (type != od::json_type::object) {
          reject("params.arguments is not an object");
          return walk_value(member, depth + 1);
        }
        const text t = capture_value(member, depth + 1);
        if (t.outcome.halts()) return t.outcome;
        m.arguments = t.value;
        return go;
      }
      if (name == "_meta" && type == od::json_type::object) {
        return walk_members(member, depth + 1, [&](std::string_view key, od::value& value) {
          if (key == "progressToken") m.has_progress_token = true;
          return walk_value(value, depth + 2);
        });
      }
      return walk_value(member, depth + 1);
    });
    if (s.halts()) return s;
    m.params = std::string_view(start, static_cast<std::size_t>(consumed_end() - start));
    return go;
  }

  const jsonrpc_limits& limits_;
  od::document& doc_;
  const char* begin_;
  const char* end_;
  char* scratch_;
  std::size_t scratch_used_ = 0;
  std::string_view* names_;
  std::size_t names_capacity_;
  std::size_t names_used_ = 0;
  std::string_view violation_;
};

// A body that is a lone scalar is valid JSON but not JSON-RPC. simdjson's document API is
// awkward for root scalars, so check the whole trimmed body against the grammar ourselves.
bool is_single_scalar(std::string_view body) {
  body = trim(body);
  if (body.empty()) return false;
  if (body.front() == '"') {
    const scanned_string s = scan_string(body.data() + 1, body.data() + body.size(), nullptr);
    return s.valid && s.close + 1 == body.data() + body.size();
  }
  return body == "true" || body == "false" || body == "null" || is_json_number(body);
}

std::string_view describe(simdjson::error_code error) {
  switch (error) {
    case simdjson::UTF8_ERROR:
      return "invalid UTF-8";
    case simdjson::UNCLOSED_STRING:
      return "unclosed string";
    case simdjson::UNESCAPED_CHARS:
      return "unescaped control character in string";
    case simdjson::EMPTY:
      return "empty body";
    default:
      return "malformed JSON";
  }
}

jsonrpc_result fail(jsonrpc_status status, std::string_view reason, bool batch = false) {
  return {status, reason, batch, {}};
}

}  // namespace

int jsonrpc_error_code(jsonrpc_status status) {
  switch (status) {
    case jsonrpc_status::ok:
      return 0;
    case jsonrpc_status::parse_error:
      return -32700;
    case jsonrpc_status::invalid_request:
      return -32600;
    case jsonrpc_status::internal_error:
      return -32603;
  }
  return -32603;
}

jsonrpc_extractor::jsonrpc_extractor(jsonrpc_limits limits)
    : limits_(limits), storage_(std::make_unique<storage>()) {
  // simdjson's own depth bound sits above ours so that ours is the one that trips.
  if (storage_->parser.allocate(limits_.max_body, limits_.max_depth + 2) != simdjson::SUCCESS) {
    throw std::bad_alloc();
  }
  storage_->scratch_size = limits_.max_body + 1;
  storage_->scratch = std::make_unique<char[]>(storage_->scratch_size);
  // Every member name takes at least 4 bytes ("":0), so a body holds at most max_body / 4
  // of them; open objects hold at most max_depth * max_members.
  storage_->names_capacity =
      std::min(limits_.max_body / 4 + 1, limits_.max_depth * limits_.max_members);
  storage_->names = std::make_unique<std::string_view[]>(storage_->names_capacity + 1);
  storage_->messages.reserve(std::max<std::size_t>(limits_.max_batch, 1));
}

jsonrpc_extractor::~jsonrpc_extractor() = default;
jsonrpc_extractor::jsonrpc_extractor(jsonrpc_extractor&&) noexcept = default;
jsonrpc_extractor& jsonrpc_extractor::operator=(jsonrpc_extractor&&) noexcept = default;

bool jsonrpc_extractor::in_scratch(std::string_view view) const {
  const char* first = storage_->scratch.get();
  const char* last = first + storage_->scratch_size;
  return view.data() >= first && view.data() + view.size() <= last;
}

jsonrpc_result jsonrpc_extractor::extract(padded_body body) {
  std::vector<jsonrpc_message>& messages = storage_->messages;
  messages.clear();
  if (body.data == nullptr) return fail(jsonrpc_status::internal_error, "no input buffer");
  if (body.size > limits_.max_body) {
    return fail(jsonrpc_status::invalid_request, "body larger than max_body");
  }
  if (body.capacity < body.size || body.capacity - body.size < simdjson::SIMDJSON_PADDING) {
    return fail(jsonrpc_status::internal_error, "input buffer lacks SIMDJSON_PADDING");
  }
  // A BOM is not JSON (RFC 8259 section 8.1) and some parsers skip it while others fail.
  if (body.size >= 3 && std::memcmp(body.data, "\xEF\xBB\xBF", 3) == 0) {
    return fail(jsonrpc_status::parse_error, "UTF-8 byte order mark");
  }

  od::document doc;
  simdjson::error_code error =
      storage_->parser.iterate(body.data, body.size, body.capacity).get(doc);
  if (error != simdjson::SUCCESS) return fail(jsonrpc_status::parse_error, describe(error));
  od::value root;
  od::json_type type;
  if (doc.get_value().get(root) != simdjson::SUCCESS ||
      root.type().get(type) != simdjson::SUCCESS) {
    if (is_single_scalar(std::string_view(body.data, body.size))) {
      return fail(jsonrpc_status::invalid_request, "body is not an object or array");
    }
    return fail(jsonrpc_status::parse_error, "malformed JSON");
  }

  const char* end = body.data + body.size;
  walker walk(limits_, doc, body.data, end, storage_->scratch.get(), storage_->names.get(),
              storage_->names_capacity);
  const bool batch = type == od::json_type::array;
  stop s;
  if (type == od::json_type::object) {
    messages.emplace_back();
    s = walk.walk_message(root, 1, messages.back());
  } else if (batch) {
    s = walk.walk_batch(root, messages);
  } else {
    if (is_single_scalar(std::string_view(body.data, body.size))) {
      return fail(jsonrpc_status::invalid_request, "body is not an object or array");
    }
    return fail(jsonrpc_status::parse_error, "malformed JSON");
  }
  if (s.halts()) {
    messages.clear();
    return fail(s.status, s.reason, batch);
  }
  // simdjson 3.0.1 stops after the first value: anything left is trailing data.
  const char* trailing = nullptr;
  if (doc.current_location().get(trailing) != simdjson::OUT_OF_BOUNDS) {
    messages.clear();
    return fail(jsonrpc_status::parse_error, "trailing data after the JSON value", batch);
  }
  if (!walk.violation().empty()) {
    messages.clear();
    return fail(jsonrpc_status::invalid_request, walk.violation(), batch);
  }
  return {jsonrpc_status::ok, {}, batch, std::span<const jsonrpc_message>(messages)};
}

}  // namespace mcpgate::net
