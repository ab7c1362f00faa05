// The federated endpoint's names on arbitrary bytes: a tools/call routed to a server must come
// out as the same document with only params.name changed (it parses, and names the server's
// own tool), and a server's tools/list rewritten with prefixes must be a JSON array of objects
// whose names all carry the prefix.

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "net/federation/names.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mcpgate::net;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  static const std::vector<federated_server> servers = {{"a", "/mcp/a"}, {"bb-1", "/mcp/bb-1"}};

  for (federated_key key : {federated_key::name, federated_key::uri}) {
    routed_call call;
    std::string error;
    if (route_request(text, key, servers, "__", call, error)) {
      simdjson::dom::parser parser;
      simdjson::padded_string padded(call.body);
      std::string_view value;
      const char* member = key == federated_key::name ? "name" : "uri";
      if (parser.parse(padded)["params"][member].get(value) != simdjson::SUCCESS) std::abort();
      if (value != call.tool || call.tool.empty()) std::abort();
    } else if (error.empty()) {
      std::abort();
    }
  }

  std::string out;
  std::string next;
  if (append_prefixed(text, "tools", "bb-1", "__", out, next)) {
    std::string array = "[" + out + "]";
    simdjson::dom::parser parser;
    simdjson::padded_string padded(array);
    simdjson::dom::array tools;
    if (parser.parse(padded).get(tools) != simdjson::SUCCESS) std::abort();
    for (simdjson::dom::element tool : tools) {
      std::string_view name;
      if (tool["name"].get(name) != simdjson::SUCCESS || !name.starts_with("bb-1__")) std::abort();
    }
  }
  out.clear();
  if (append_prefixed(text, "resources", "bb-1", "__", out, next)) {
    std::string array = "[" + out + "]";
    simdjson::dom::parser parser;
    simdjson::padded_string padded(array);
    simdjson::dom::array resources;
    if (parser.parse(padded).get(resources) != simdjson::SUCCESS) std::abort();
    for (simdjson::dom::element resource : resources) {
      std::string_view uri;
      if (resource["uri"].get(uri) != simdjson::SUCCESS ||
          !uri.starts_with("mcp-federated://bb-1/"))
        std::abort();
    }
  }
  return 0;
}
