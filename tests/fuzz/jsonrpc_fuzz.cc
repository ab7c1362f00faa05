// libFuzzer target for net/jsonrpc: arbitrary bytes as a POST body.
//
// Invariants checked on every input:
// - ok exactly when there is at least one message; a reason exactly when not ok;
// - every view lies inside the input or the extractor's scratch, and the raw views (id,
//   params, arguments, outcome, raw) inside the input, with the expected first/last bytes;
// - kinds agree with ids, a non-batch has at most one message;
// - extracting again gives the same answer (no state leaks between calls);
// - anything accepted is also accepted by simdjson's DOM parser, which validates the whole
//   document independently (except numbers DOM cannot represent, which are valid JSON), and
//   DOM reads the same unescaped method, params.name and params.uri.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include <simdjson.h>

#include "net/mcp/jsonrpc.h"

namespace {

using mcpgate::net::id_type;
using mcpgate::net::jsonrpc_extractor;
using mcpgate::net::jsonrpc_limits;
using mcpgate::net::jsonrpc_message;
using mcpgate::net::jsonrpc_result;
using mcpgate::net::jsonrpc_status;
using mcpgate::net::message_kind;

constexpr jsonrpc_limits fuzz_limits{
    .max_body = 64 * 1024, .max_batch = 8, .max_depth = 16, .max_members = 64};

// A macro so that a failure names the broken invariant.
#define require(condition)                                                             \
  do {                                                                                 \
    if (!(condition)) {                                                                \
      std::fprintf(stderr, "invariant failed at line %d: %s\n", __LINE__, #condition); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (false)

bool inside(std::string_view outer, std::string_view inner) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

void check_raw(std::string_view input, std::string_view view, char first, char last) {
  require(inside(input, view));
  require(view.size() >= 2 && view.front() == first && view.back() == last);
}

void check_message(const jsonrpc_extractor& extractor, std::string_view input,
                   const jsonrpc_message& m) {
  check_raw(input, m.raw, '{', '}');
  require(m.id.empty() == (m.id_kind == id_type::none));
  if (!m.id.empty()) require(inside(m.raw, m.id));
  require(m.method.empty() || inside(input, m.method) || extractor.in_scratch(m.method));
  for (const auto& routing : {m.name, m.uri}) {
    if (routing) require(inside(input, *routing) || extractor.in_scratch(*routing));
  }
  if (m.params) {
    require(inside(m.raw, *m.params));
    require(m.params->front() == '{' || m.params->front() == '[');
  }
  if (m.arguments) {
    check_raw(input, *m.arguments, '{', '}');
    require(m.params && inside(*m.params, *m.arguments));
  }
  if (m.outcome) require(inside(m.raw, *m.outcome) && !m.outcome->empty());
  switch (m.kind) {
    case message_kind::request:
      require(m.id_kind == id_type::number || m.id_kind == id_type::string);
      break;
    case message_kind::notification:
      require(m.id_kind == id_type::none);
      break;
    case message_kind::response:
      require(m.id_kind == id_type::number || m.id_kind == id_type::string);
      require(m.outcome.has_value() && m.method.empty());
      break;
    case message_kind::error_response:
      require(m.id_kind != id_type::none && m.outcome && m.outcome->front() == '{');
      require(m.method.empty());
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static jsonrpc_extractor extractor(fuzz_limits);
  static simdjson::dom::parser dom;
  static const std::size_t capacity = fuzz_limits.max_body + 1 + mcpgate::net::jsonrpc_padding;
  static const std::unique_ptr<char[]> buffer = std::make_unique<char[]>(capacity);

  if (size > fuzz_limits.max_body + 1) return 0;
  std::memcpy(buffer.get(), data, size);
  std::memset(buffer.get() + size, 0, capacity - size);
  const std::string_view input(buffer.get(), size);

  const jsonrpc_result r = extractor.extract({buffer.get(), size, capacity});
  require((r.status == jsonrpc_status::ok) == !r.messages.empty());
  require((r.status == jsonrpc_status::ok) == r.reason.empty());
  require(r.status != jsonrpc_status::internal_error);
  if (!r.batch) require(r.messages.size() <= 1);
  require(r.messages.size() <= fuzz_limits.max_batch);
  for (const jsonrpc_message& m : r.messages) check_message(extractor, input, m);

  if (r.status == jsonrpc_status::ok) {
    simdjson::dom::element root;
    const simdjson::error_code error = dom.parse(buffer.get(), size, false).get(root);
    require(error == simdjson::SUCCESS || error == simdjson::NUMBER_ERROR);
    // Names are unique, so DOM's first-match lookup must find what we extracted.
    if (error == simdjson::SUCCESS && !r.batch) {
      const jsonrpc_message& m = r.messages[0];
      std::string_view method;
      if (root["method"].get(method) == simdjson::SUCCESS) require(method == m.method);
      std::string_view name;
      if (root["params"]["name"].get(name) == simdjson::SUCCESS) require(m.name && name == *m.name);
      std::string_view uri;
      if (root["params"]["uri"].get(uri) == simdjson::SUCCESS) require(m.uri && uri == *m.uri);
    }
  }

  const jsonrpc_result again = extractor.extract({buffer.get(), size, capacity});
  require(again.status == r.status && again.messages.size() == r.messages.size());
  return 0;
}
