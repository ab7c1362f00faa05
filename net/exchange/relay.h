#pragma once

// Between an exchange and its upstream connection: hands the request to a pooled connection,
// and relays the response back as it arrives (head rewritten: hop-by-hop fields dropped, the
// session id sealed for the caller; the body as it came, chunk framing included, or filtered
// by the gate, e.g. tools/list per grant). Failures before the response are answered by the
// gateway; after it started, the client's stream is ended cleanly.

#include <string>
#include <string_view>

#include "net/exchange/client_side.h"
#include "net/exchange/context.h"
#include "net/upstream/pool.h"

namespace mcpgate::net {

class relay final : public upstream_events, public exchange_forwarder {
 public:
  relay(shard_context& ctx, client_side& clients, upstream_pool& pool)
      : ctx_(ctx), clients_(clients), pool_(pool) {}

  // exchange_forwarder
  void forward(client_conn& c) override;
  void client_gone(client_conn& c) override;
  void client_drained(client_conn& c) override;

  // upstream_events
  void on_bytes(upstream_conn& u, std::string_view fresh) override;
  void on_closed(upstream_conn& u) override;
  void on_failed(upstream_conn& u, int err) override;

 private:
  bool relay_head(upstream_conn& u, client_conn& c, std::string_view data, size_t& used);
  bool emit_filtered(upstream_conn& u, client_conn& c, bool done);
  // Audit lines for what the gate's last filter_response() found changed.
  void record_tool_changes(const gate& g, const client_conn& c);
  bool seal_session(client_conn& c, std::string_view upstream_id, std::string& out);
  void count_sse(upstream_conn& u);
  void uncount_sse(upstream_conn& u);
  void complete(upstream_conn& u, client_conn& c);

  shard_context& ctx_;
  client_side& clients_;
  upstream_pool& pool_;
  std::string head_scratch_;
};

}  // namespace mcpgate::net
