// The policy loader on arbitrary bytes: it must either return a document or throw
// load_error, never crash, hang or leak; a loaded document must also describe itself and
// decide a call with arbitrary arguments without failing.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "policy/access_config.h"
#include "policy/document.h"
#include "policy/engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mcpgate::policy;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto doc = std::make_shared<const document>(parse_document(text, "fuzz.json"));
    std::string described = describe(*doc);
    counter_store store;
    auto config = make_access_config(doc, store);
    decide_scratch scratch;
    std::string args = R"({"a": 1, "b": [1, "x", {"c": null}], "path": "/etc/x", "amount": 1e3})";
    const size_t args_size = args.size();
    args.append(64, '\0');
    for (const auto& [name, rules] : doc->tools) {
      decision d = decide({config->anonymous(), "s"},
                          {"tools/call", name, {args.data(), args_size}}, 1'000'000'000, scratch);
      if (d.allowed()) refund(d);
    }
  } catch (const load_error&) {
  }
  return 0;
}
