#pragma once

// The stdio bridge's parts, shared by its three files: bridge.cc (lifecycle, completions,
// sessions), bridge_http.cc (the gateway's side: requests in, replies and streams out) and
// bridge_children.cc (the children: start, read, write, exit). Include bridge.h, not this.

#include <array>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "net/upstream/stdio/bridge.h"

namespace mcpgate::net {
namespace stdio_detail {

enum op : uint8_t {
  op_accept = 1,
  op_recv,
  op_send,
  op_read_out,  // the child's stdout
  op_read_err,  // the child's stderr
  op_write_in,  // the child's stdin
  op_exit,      // the child's pidfd became readable
  op_log,       // a write of child stderr lines to the gateway's stderr
  op_ignore,    // cancellations
};

inline constexpr uint32_t no_slot = UINT32_MAX;
inline constexpr int64_t ms = 1'000'000;
inline constexpr size_t recv_size = 16 * 1024;
inline constexpr size_t read_size = 64 * 1024;
inline constexpr size_t max_log_backlog = 1 << 20;
// Bytes a client may leave unread before the child's stdout is no longer read (note_backlog).
inline constexpr size_t backlog_high_water = 1 << 20;
// A child's stdout ends just before its exit is seen on the pidfd, usually within the same loop
// turn: wait this long for the exit before deciding it closed stdout and runs on.
inline constexpr int64_t stdout_closed_grace_ns = 200 * ms;
// Read/write offset -1: the file's own position, so that stderr redirected to a file is
// appended to rather than overwritten from its start.
inline constexpr uint64_t current_position = ~uint64_t{0};

}  // namespace stdio_detail

// Where a response to a request the bridge passed on goes back to.
struct stdio_bridge::route {
  uint32_t conn_slot, conn_gen;
  uint64_t exchange;
  std::string client_id;   // the id as the client wrote it (shared mode restores it on the way out)
  std::string client_key;  // shared mode: the same, normalised (stdio_message::id_key)
  uint32_t session_slot = UINT32_MAX, session_gen = 0;  // shared mode: whose request it is
};

struct stdio_bridge::conn {
  uint32_t slot = 0, gen = 0;
  bool live = false;
  int fd = -1;
  int pending = 0;
  bool recv_armed = false;
  bool closing = false;
  std::string in;
  std::array<char, stdio_detail::recv_size> buf;
  core::send_queue out;
  enum class mode : uint8_t { idle, post, get } mode = mode::idle;
  uint64_t exchange = 0;  // bumped per request; routes of an earlier one no longer match
  uint32_t session_slot = stdio_detail::no_slot, session_gen = 0;
  uint32_t process_slot = stdio_detail::no_slot, process_gen = 0;
  int waiting = 0;            // responses still due on this POST
  bool can_be_json = false;   // one request and nothing sent yet: the answer may be plain JSON
  bool streaming = false;     // an SSE head went out
  std::string extra_headers;  // for the reply head (the new Mcp-Session-Id)
  std::string reply_id;       // the request's id token, for errors the bridge answers itself
  std::vector<std::string> progress_tokens;
};

struct stdio_bridge::session {
  uint32_t slot = 0, gen = 0;
  bool live = false;
  std::string id;
  uint32_t process_slot = stdio_detail::no_slot, process_gen = 0;
  uint32_t get_slot = stdio_detail::no_slot, get_gen = 0;  // the GET stream's connection
  std::string queued;  // server messages waiting for a GET, one per line
  int64_t last_ns = 0;
  int busy = 0;  // POST exchanges open
};

struct stdio_bridge::process {
  uint32_t slot = 0, gen = 0;
  bool live = false;
  core::child_process child;
  std::string label;     // for log lines: "session 1a2b3c4d" or "shared"
  std::string identity;  // who started it (counted in identity_processes_), empty when shared
  pid_t pid = -1;
  int pending = 0;
  bool reaped = false, stdout_eof = false, stderr_eof = false, finalized = false;
  bool stop_requested = false;
  bool stdout_paused = false;   // a client's backlog is over the high-water mark
  bool stdout_waiting = false;  // paused with no read in flight
  int status = 0;
  int64_t started_ns = 0;
  int64_t kill_at_ns = 0;      // SIGKILL when still running then
  int64_t stop_at_ns = 0;      // stdout closed: stop it then unless it has exited by itself
  int64_t finalize_at_ns = 0;  // reaped but stdout still open (a stray holds it): give up then
  std::array<char, stdio_detail::read_size> out_buf, err_buf;
  std::string out_line, err_line;
  core::send_queue to_child;
  std::unordered_map<std::string, route> routes;        // by the id the child sees
  std::vector<std::pair<uint32_t, uint32_t>> posts;     // open POST exchanges, oldest first
  std::vector<std::pair<uint32_t, uint32_t>> sessions;  // the sessions it serves
};

}  // namespace mcpgate::net
