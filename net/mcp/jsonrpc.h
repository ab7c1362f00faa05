#pragma once

// JSON-RPC 2.0 extraction for MCP Streamable HTTP bodies.
//
// The gateway forwards the client's bytes unchanged, so this extractor only reads and
// validates; it never rewrites. Because an upstream parser will read the same bytes, every
// construct where two parsers could disagree (duplicate names, escaped names, trailing data,
// lone surrogates, over-large integer ids) is rejected rather than interpreted.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace mcpgate::net {

// Readable bytes required after every body: simdjson's SIMDJSON_PADDING (checked in
// jsonrpc.cc). The header keeps simdjson out so that its compile-time implementation choice
// (fallback vs haswell namespaces, SIMDJSON_THREADS_ENABLED) cannot differ between includers.
inline constexpr std::size_t jsonrpc_padding = 64;

// Bounds on one body; fixed when the extractor is created and sizing its storage.
struct jsonrpc_limits {
  std::size_t max_body = 1 << 20;  // bytes; larger bodies are invalid_request
  std::size_t max_batch = 64;      // elements of a batch array
  std::size_t max_depth = 64;      // nested objects/arrays, the outermost counting as 1
  std::size_t max_members = 1024;  // members of any one object
};

// A body followed by at least jsonrpc_padding readable bytes (capacity >= size + padding).
// The padding need not be zeroed for correctness, but zeroing it keeps sanitizers quiet.
struct padded_body {
  const char* data = nullptr;
  std::size_t size = 0;
  std::size_t capacity = 0;
};

// Where an error came from decides the reply: parse_error and invalid_request are the
// client's fault (JSON-RPC -32700 / -32600), internal_error is the caller's (-32603).
enum class jsonrpc_status : std::uint8_t { ok, parse_error, invalid_request, internal_error };

// The JSON-RPC error code to answer with; 0 for ok.
int jsonrpc_error_code(jsonrpc_status status);

enum class message_kind : std::uint8_t {
  request,         // method and id
  notification,    // method, no id
  response,        // id and result
  error_response,  // id (possibly null) and error
};

enum class id_type : std::uint8_t { none, number, string, null };

// One JSON-RPC message. Every view points into the input body or into the extractor's
// scratch storage and is valid until the next extract() call on the same extractor.
struct jsonrpc_message {
  message_kind kind = message_kind::request;
  id_type id_kind = id_type::none;
  // Raw JSON token of the id exactly as sent (7, "abc" with its quotes, null), so an
  // error reply can echo it byte for byte. Empty when id_kind is none. Numbers are always
  // integers within +-2^53.
  std::string_view id;
  // Unescaped method name; empty for responses.
  std::string_view method;
  // Raw bytes of the params value (an object or an array), when present.
  std::optional<std::string_view> params;
  // Unescaped params.name (tools/call tool name, prompts/get prompt name), when present.
  std::optional<std::string_view> name;
  // Unescaped params.uri (resources/read), when present.
  std::optional<std::string_view> uri;
  // Raw bytes of the params.arguments object exactly as sent, when present.
  std::optional<std::string_view> arguments;
  // Raw bytes of the result or error value of a response, when present.
  std::optional<std::string_view> outcome;
  // params._meta.progressToken is present (any JSON value).
  bool has_progress_token = false;
  // Raw bytes of the whole message object (for a batch: this element of the array).
  std::string_view raw;
};

struct jsonrpc_result {
  jsonrpc_status status = jsonrpc_status::ok;
  // A short static description of the first error; empty when ok. Safe to log, never
  // contains input bytes.
  std::string_view reason;
  // The body was a JSON array (even if it was rejected).
  bool batch = false;
  // The messages in input order; non-empty exactly when status is ok.
  std::span<const jsonrpc_message> messages;
};

// Parses and validates JSON-RPC bodies. One per shard thread: it owns a simdjson parser and
// scratch storage sized for limits.max_body, allocated once at construction, so extract()
// never allocates. Not thread-safe; not copyable.
class jsonrpc_extractor {
 public:
  // Control plane: throws std::bad_alloc if the storage cannot be allocated.
  explicit jsonrpc_extractor(jsonrpc_limits limits = {});
  ~jsonrpc_extractor();
  jsonrpc_extractor(jsonrpc_extractor&&) noexcept;
  jsonrpc_extractor& operator=(jsonrpc_extractor&&) noexcept;
  jsonrpc_extractor(const jsonrpc_extractor&) = delete;
  jsonrpc_extractor& operator=(const jsonrpc_extractor&) = delete;

  // Validates the whole body and extracts its messages. The returned views stay valid until
  // the next extract() call and as long as body's buffer is unchanged.
  //
  // Status precedence: malformed JSON anywhere gives parse_error even if a JSON-RPC rule was
  // broken earlier in the body, because the whole document is always walked. The exceptions
  // are the limits (max_body, max_depth, max_members, max_batch, and numbers beyond the
  // double range), which stop the walk at once with invalid_request: the body may well be
  // valid JSON, we refuse to process it.
  jsonrpc_result extract(padded_body body);

  const jsonrpc_limits& limits() const { return limits_; }

  // True when view lies inside this extractor's scratch storage (unescaped strings live
  // there); for invariant checks in tests and fuzzing.
  bool in_scratch(std::string_view view) const;

 private:
  struct storage;  // the simdjson parser and scratch buffers, defined in jsonrpc.cc

  jsonrpc_limits limits_;
  std::unique_ptr<storage> storage_;
};

}  // namespace mcpgate::net
