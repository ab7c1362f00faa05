// Trace context from the network: a traceparent header value and a request's params (for
// _meta.traceparent). Whatever the bytes, a parsed context must print back as a valid header
// naming the same trace.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/observe/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mcpgate::net;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  static trace_meta_reader meta;
  static trace_ids ids;
  for (std::string_view value : {text, meta.traceparent(text)}) {
    trace_context t;
    if (!parse_traceparent(value, t)) continue;
    ids.fill(t);
    std::string header;
    append_traceparent_header(header, t);
    trace_context again;
    std::string_view printed = std::string_view(header).substr(13, 55);
    if (!parse_traceparent(printed, again) || again.trace != t.trace || again.sampled != t.sampled)
      std::abort();
  }
  return 0;
}
