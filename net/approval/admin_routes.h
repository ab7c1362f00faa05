#pragma once

// The operator's side of approvals, on the admin listener:
//
//   GET  /approvals                 the pending calls, JSON, oldest first
//   GET  /approvals/events          an SSE stream: "snapshot" (every pending call) at once,
//                                   then "held", "approved", "denied", "timed_out", "cancelled"
//   POST /approvals/<id>/approve    {"by": "...", "reason": "...", "for_ms": N}
//   POST /approvals/<id>/deny       {"by": "...", "reason": "..."}
//   GET  /ui/approvals              the page that shows and decides them (no data in it: it
//                                   asks for the admin token and reads the routes above)
//
// A decision must come as Content-Type: application/json, and a browser's Origin, when sent,
// must be the admin listener itself: a page on another site cannot make an operator's browser
// approve a call (a cross-site form can send neither).

#include <optional>
#include <string>
#include <string_view>

#include "net/approval/registry.h"
#include "net/http/parser.h"

namespace mcpgate::net {

struct approval_http_reply {
  int status = 200;
  std::string_view content_type = "application/json";
  std::string body;
  std::string_view extra_headers;  // complete "Name: value\r\n" lines
  bool stream = false;             // /approvals/events: send the head, then events as they come
};

// Whether `path` is served here (and by which rules: the page needs no token).
bool is_approval_path(std::string_view path);
bool is_public_approval_path(std::string_view path);

approval_http_reply approval_route(approval_registry& registry, const request_head& head,
                                   std::string_view path, std::string_view body);

// The page at /ui/approvals: HTML, CSS and JavaScript in one document.
std::string_view approvals_page();

}  // namespace mcpgate::net
