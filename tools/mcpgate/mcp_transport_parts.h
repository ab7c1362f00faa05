#pragma once

// What the catalogue's MCP client shares between its transports (mcp_client.cc: Streamable
// HTTP and the client; mcp_stdio.cc: stdio). Include mcp_client.h, not this.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tools/mcpgate/mcp_client.h"

namespace mcpgate::tools::transport_detail {

// Bounds on what a misbehaving server can make us hold.
inline constexpr std::size_t kMaxMessageBytes = 64 * 1024 * 1024;
inline constexpr std::size_t kStderrTailBytes = 4096;
inline constexpr int kMaxToolPages = 1000;

// Protocol revision offered; servers answer with one they support, which we then use.
inline constexpr std::string_view kProtocolVersion = "2025-06-18";

std::string errno_text(int e);

// Shortens untrusted text for a one-line message: control characters become spaces.
std::string excerpt(std::string_view text, std::size_t max = 80);

class fd_guard {
 public:
  explicit fd_guard(int fd = -1) : fd_(fd) {}
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() { reset(); }
  int get() const { return fd_; }
  // Gives up ownership.
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Milliseconds left until `deadline`, for poll(); 0 once it has passed.
int ms_left(mcp_deadline deadline);

// What one message received while awaiting a response is.
enum class message_kind { awaited_response, other_response, notification, server_request, garbage };

struct received {
  message_kind kind = message_kind::garbage;
  std::string server_request_id;  // raw JSON of a server request's id, to answer it
};

// Sorts a message; `id` is the request we wait for. A batch (array) is garbage here: this
// client never sends one, so no server may answer with one.
received sort_message(std::string_view text, std::int64_t id);

}  // namespace mcpgate::tools::transport_detail
