// Pinned definitions on arbitrary bytes: the pins file loader must return a file or throw
// load_error; canonical JSON must be a fixed point (canonicalising it again changes nothing,
// or a pin taken from the gateway's view would not match the file's); and a tools/list
// response checked against pins must filter, keep or refuse it, never crash.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "policy/access_config.h"
#include "policy/load_error.h"
#include "policy/tool_pins.h"
#include "policy/tools_list_filter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mcpgate::policy;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    pins_file f = parse_pins_file(text, "fuzz.json");
    std::string again = format_pins_file(f);
    if (format_pins_file(parse_pins_file(again, "again.json")) != again) std::abort();
  } catch (const load_error&) {
  }

  std::string canonical, twice;
  if (canonical_json(text, canonical)) {
    if (!canonical_json(canonical, twice) || twice != canonical) std::abort();
    (void)pretty_json(canonical);
  }
  if (canonical_definition(text, canonical)) {
    if (!canonical_json(canonical, twice) || twice != canonical) std::abort();
  }

  static counter_store store;
  static auto config = make_access_config(nullptr, store);
  static auto pins = [] {
    pins_file f;
    f.servers["default"].tools.push_back(*pin_of(R"({"name":"a","description":"x"})", "Read"));
    return std::make_unique<server_pins>("", "default", "pins.json", f.servers["default"],
                                         pin_change_action::hide, unpinned_action::hide,
                                         std::make_shared<pin_counts>());
  }();
  static tools_list_scratch scratch;
  std::string out;
  filter_tools_list(text, *config->anonymous()->grant, true, scratch, out, pins.get());
  return 0;
}
