#pragma once

// One connection to an upstream, pooled per shard: its socket and state, the request it
// carries, and the response being read off it (parsed here, relayed to the client by the
// exchange, net/exchange/relay.h).

#include <cstdint>
#include <memory>
#include <string>

#include "core/byte_buffer.h"
#include "core/timer_wheel.h"
#include "net/http/chunked.h"
#include "net/http/parser.h"
#include "net/http/sse.h"

namespace mcpgate::net {

inline constexpr uint32_t no_slot = UINT32_MAX;

struct upstream_conn {
  enum class state : uint8_t { connecting, busy, idle, closing };

  uint32_t slot = 0;
  uint32_t gen = 0;
  bool live = false;
  uint32_t upstream = 0;  // index into gateway_config::upstreams of the generation that made it
  int fd = -1;
  state st = state::connecting;
  int pending = 0;  // submissions not yet completed; a multishot recv counts once
  bool recv_armed = false;
  bool paused = false;  // not read while the client has too much unsent
  bool reused = false;  // came from the pool: a request it provably never took is retried once
  bool retried = false;
  bool write_refused = false;  // the first write of the request failed with nothing taken
  core::byte_buffer in;
  std::string request;  // bytes to send (owned while in flight, for a retry)
  size_t request_sent = 0;
  bool send_in_flight = false;
  core::deadline_slot deadline;
  int64_t response_timeout_ms = 0;
  int64_t sse_idle_timeout_ms = 0;

  uint32_t client_slot = no_slot;
  uint32_t client_gen = 0;

  // The response being relayed.
  bool head_done = false;
  bool head_relayed = false;  // the client has (the start of) the response
  size_t head_resume = 0;
  int status = 0;
  body_framing framing = body_framing::none;
  uint64_t remaining = 0;
  bool keep_alive = false;
  bool dechunk = false;  // HTTP/1.0 client: strip the chunked framing
  bool sse = false;
  bool sse_counted = false;  // counted in the open-streams gauge until the exchange lets go of it
  bool not_run = false;      // the stdio bridge answered without passing the request on
  chunked_decoder chunks;
  std::string decoded;
  // Filtering (the gate rewrites the response, e.g. tools/list per grant): the body is decoded
  // here; a JSON body is held whole, an SSE stream is re-emitted event by event, chunked.
  bool filtering = false;
  // The client's response is already an event stream (exchange::response_streaming): the
  // response is decoded as when filtering, and its head is not sent; a JSON body becomes one
  // event, an SSE body's events pass on, and the last chunk ends the stream.
  bool into_stream = false;
  std::string held_head;
  std::unique_ptr<sse_parser> events;
  uint64_t events_base = 0;  // stream offset of filter_body[0]
  std::string filter_body;
  std::string filter_out;

  // When a response body in progress is given up on. A JSON, chunked or until-close body must
  // keep arriving: the response timeout at most between reads, or an upstream that stalls after
  // its head would hold the client forever. An SSE stream may be quiet by design; it has its own
  // idle timeout, 0 meaning none.
  int64_t body_deadline_ns(int64_t now_ns) const {
    int64_t timeout_ms = sse ? sse_idle_timeout_ms : response_timeout_ms;
    return timeout_ms > 0 ? now_ns + timeout_ms * 1'000'000 : 0;
  }
};

}  // namespace mcpgate::net
