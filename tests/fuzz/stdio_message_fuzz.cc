// The stdio bridge's message scanner on arbitrary bytes (what a stdio child may write on its
// stdout, or a body the gateway forwards): it must never crash, hang or leak, and an id it
// reports must lie inside the text.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "net/upstream/stdio/message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static mcpgate::net::stdio_message_scanner scanner;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (scanner.scan(text)) {
    for (const mcpgate::net::stdio_message& m : scanner.messages()) {
      if (m.id_key.empty()) continue;
      if (m.id_offset > text.size() || m.id_length > text.size() - m.id_offset) std::abort();
    }
  }
  return 0;
}
