#pragma once

// One client connection of a shard: its socket, what it sent and what goes back to it, and the
// exchange it is running.

#include <cstdint>
#include <string>

#include "core/byte_buffer.h"
#include "core/send_queue.h"
#include "core/timer_wheel.h"
#include "net/exchange/exchange.h"
#include "net/http/chunked.h"
#include "net/http/parser.h"
#include "net/upstream/connection.h"

namespace mcpgate::net {

struct client_conn {
  // head: waiting for a request head; body: reading its body (head stages may be holding it);
  // held: the request is in and a stage holds it; upstream: at the upstream;
  // closing: cancelling its operations; lingering: half-closed after a reply that ends it.
  enum class state : uint8_t { head, body, held, upstream, closing, lingering };

  uint32_t slot = 0;
  uint32_t gen = 0;
  bool live = false;
  int fd = -1;
  uint64_t id = 0;
  state st = state::head;
  int pending = 0;  // submissions not yet completed; a multishot recv counts once
  bool recv_armed = false;
  bool reading_paused = false;  // holds a request's worth of input while its exchange runs
  bool close_after_send = false;
  bool flush_due = false;  // bytes were queued this batch; flushed at its end (client_side)
  core::byte_buffer in;
  core::send_queue out;
  size_t head_resume = 0;
  core::deadline_slot deadline;  // header, idle or linger, by state

  chunked_decoder chunks;
  std::string chunked_body;

  exchange ex;

  // The upstream connection carrying the exchange.
  uint32_t up_slot = no_slot;
  uint32_t up_gen = 0;
};

}  // namespace mcpgate::net
