// The operator's approval routes on arbitrary request bodies and paths: a decision is taken
// only from a body that parses as an object with a non-empty "by", and every other body gets
// 400 with a reason; the registry is never told twice.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/approval/admin_routes.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mcpgate::net;
  if (size == 0) return 0;
  int posted = 0;
  approval_registry registry({}, [&posted](unsigned, const mcpgate::core::message&) {
    ++posted;
    return true;
  });
  approval_subject s;
  s.identity = "alice";
  std::string id = registry.hold(s, 60'000, 0, {}).id;
  bool approve = data[0] & 1;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string head = "POST /approvals/" + id + (approve ? "/approve" : "/deny") +
                     " HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Type: application/json\r\n"
                     "Content-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n";
  request_head parsed = parse_request_head(head, http_limits{});
  if (parsed.status() != parse_status::complete) std::abort();
  std::string_view target = parsed.target();
  approval_http_reply r = approval_route(registry, parsed, target, body);
  if (r.status == 200) {
    if (posted != 1 || r.body.find(id) == std::string::npos) std::abort();
    approval_http_reply again = approval_route(registry, parsed, target, body);
    if (again.status != 409 || posted != 1) std::abort();
  } else if (r.status != 400 || posted != 0 || r.body.find("\"error\":") == std::string::npos) {
    std::abort();
  }
  return 0;
}
