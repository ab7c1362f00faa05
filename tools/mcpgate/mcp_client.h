#pragma once

// A small blocking MCP client for the command-line tools (control plane: `mcpgate catalogue`).
// It never runs on the gateway's data path, so it uses plain sockets and pipes with poll()
// deadlines rather than the shards' io_uring loop, and reports failures by throwing
// mcp_client_error whose message is one line naming the cause.

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/child_process.h"

namespace mcpgate::tools {

// One line, without the program's prefix: "cannot start 'x': No such file or directory".
class mcp_client_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using mcp_deadline = std::chrono::steady_clock::time_point;

// How JSON-RPC messages travel. A transport returns whole messages as JSON text and leaves
// their meaning to mcp_client, except that it skips what is not the awaited response
// (notifications, server-to-client requests, which the stdio transport answers with "method
// not found" since the client declares no capabilities).
class mcp_transport {
 public:
  virtual ~mcp_transport() = default;

  // Sends a request whose id is `id` and returns the response with that id (the whole
  // JSON-RPC object). `method` only labels errors. Throws mcp_client_error on a timeout, a
  // closed or exited peer, a transport error or bytes that are not JSON-RPC.
  virtual std::string request(const std::string& message, std::int64_t id,
                              std::string_view method) = 0;
  // Sends a notification; nothing is awaited beyond the transport's acknowledgement.
  virtual void notify(const std::string& message) = 0;
  // Called once after initialize with the revision the server chose (HTTP sends it in
  // MCP-Protocol-Version on every later request).
  virtual void set_protocol_version(std::string_view) {}
  // The URL, or "stdio: <command line>", for the summary.
  virtual std::string describe() const = 0;
};

// Streamable HTTP to `url` (http:// only). Every POST uses a fresh connection; the
// Mcp-Session-Id the server assigns on initialize is sent back on every later request. Every
// wait ends at `deadline`; `timeout_ms` only words the error.
// `headers` ("Name: value", from --header) go on every request, for servers behind auth.
std::unique_ptr<mcp_transport> connect_http(const std::string& url, mcp_deadline deadline,
                                            std::int64_t timeout_ms,
                                            const std::vector<std::string>& headers = {});

// Starts `command` (argv; argv[0] looked up in PATH) in a process group of its own, with
// its stdin and stdout as the stdio transport (one JSON-RPC message per line) and its stderr
// captured for error messages. Destroying the transport closes its stdin and then ends the
// whole group (SIGTERM, then SIGKILL) and reaps the server.
std::unique_ptr<mcp_transport> start_stdio(const std::vector<std::string>& command,
                                           mcp_deadline deadline, std::int64_t timeout_ms);
// The same with the environment and working directory a stdio upstream is configured with.
std::unique_ptr<mcp_transport> start_stdio(const core::spawn_options& command,
                                           mcp_deadline deadline, std::int64_t timeout_ms);

struct mcp_server_info {
  std::string name;
  std::string version;
  std::string protocol_version;
  bool has_tools = false;  // the server declared the tools capability
};

class mcp_client {
 public:
  explicit mcp_client(std::unique_ptr<mcp_transport> transport);

  // initialize, then notifications/initialized. Call once, before list_tools().
  mcp_server_info initialize();
  // Every tool of every tools/list page (following nextCursor), as raw JSON objects.
  std::vector<std::string> list_tools();

  const mcp_transport& transport() const { return *transport_; }

 private:
  // The response's `result` object as JSON text; a JSON-RPC error becomes mcp_client_error.
  std::string call(std::string_view method, const std::string& params_json);

  std::unique_ptr<mcp_transport> transport_;
  std::int64_t next_id_ = 1;
};

// Every tool a server lists, as `mcpgate catalogue` and pins see it.
struct server_tools {
  mcp_server_info info;
  std::string source;              // the transport's describe()
  std::vector<std::string> tools;  // raw tools/list entries, each with a unique string name
  std::vector<std::string> names;  // their names, in the same order
};

// Connects to `url` (when not empty) or starts `command`, initializes, and lists every tool.
// Throws mcp_client_error, also for an entry without a name or a name listed twice (a policy
// or a pin keys tools by name).
server_tools fetch_tools(const std::string& url, const core::spawn_options& command,
                         std::int64_t timeout_ms, const std::vector<std::string>& headers = {});

}  // namespace mcpgate::tools
