// The federated endpoint's names on arbitrary bytes: a request routed to a server by its name
// or URI must come out as a document that parses and names the server's own tool, prompt or
// resource, and a server's list rewritten with prefixes must be a JSON array of objects whose
// names (or URIs, or URI templates) all carry the prefix.

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

  // Each kind of list: the array it reads, the member it prefixes, and the prefix.
  struct kind {
    const char* list;
    const char* member;
    std::string_view prefix;
  };
  for (kind k : {kind{"tools", "name", "bb-1__"}, kind{"prompts", "name", "bb-1__"},
                 kind{"resources", "uri", "mcp-federated://bb-1/"},
                 kind{"resourceTemplates", "uriTemplate", "mcp-federated://bb-1/"}}) {
    std::string out;
    std::string next;
    if (!append_prefixed(text, k.list, "bb-1", "__", out, next)) continue;
    std::string array = "[" + out + "]";
    simdjson::dom::parser parser;
    simdjson::padded_string padded(array);
    simdjson::dom::array entries;
    if (parser.parse(padded).get(entries) != simdjson::SUCCESS) std::abort();
    for (simdjson::dom::element entry : entries) {
      std::string_view named;
      if (entry[k.member].get(named) != simdjson::SUCCESS || !named.starts_with(k.prefix))
        std::abort();
    }
  }
  return 0;
}
