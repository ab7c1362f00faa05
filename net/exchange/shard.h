#pragma once

// One shard of the gateway: a thread with its own ring that accepts MCP Streamable HTTP
// clients on its own listening socket, runs every exchange through the stage chain, and
// relays allowed ones to their upstream over per-shard keep-alive pools. It is the composition
// of its parts: the client side (net/exchange/client_side.h), the relay
// (net/exchange/relay.h), the upstream pool (net/upstream/pool.h), the recorder
// (net/observe/recorder.h), one timer wheel for every deadline, and the control messages.

#include <cstdint>
#include <memory>

#include "core/log_writer.h"
#include "core/ring.h"
#include "core/shard.h"
#include "net/exchange/client_side.h"
#include "net/exchange/context.h"
#include "net/exchange/gateway_config.h"
#include "net/exchange/relay.h"
#include "net/exchange/stages.h"
#include "net/observe/metrics.h"
#include "net/observe/shard_stats.h"
#include "net/upstream/pool.h"

namespace mcpgate::net {

// Messages to every shard (or, for resume, to the shard of one exchange).
enum class shard_message : uint32_t {
  drain = core::message_drain,  // stop accepting, finish in-flight exchanges, then end the loop
  reload = 2,  // ptr: a heap-allocated std::shared_ptr<const gateway_config>, owned by the receiver
  reopen_audit = 3,  // ptr: a heap-allocated std::shared_ptr<core::log_file>, owned likewise
  // value and extra: an exchange_token (net/exchange/exchange.h); the rest is the holding
  // stage's (see stage::resume). ptr carries no ownership.
  resume = 4,
};

// The message that resumes the exchange `token` names.
inline core::message resume_message(const exchange_token& token) {
  core::message m;
  m.kind = static_cast<uint32_t>(shard_message::resume);
  m.value = (uint64_t{token.slot} << 32) | token.gen;
  m.extra = token.seq;
  return m;
}

class proxy_shard final : public core::shard_handler {
 public:
  // listen_fd: this shard's listening socket, owned (closed) by the shard from now on.
  // metrics may be null (no admin listener); the shard writes only its own slot of it.
  // extra_stages run after the policy decision (see make_stages()).
  proxy_shard(std::shared_ptr<const gateway_config> config, int listen_fd, shard_stats& stats,
              metrics_registry* metrics = nullptr, stage_list extra_stages = {});
  ~proxy_shard() override;

  void on_start(core::reactor& r) override;
  void on_completion(const io_uring_cqe& cqe) override;
  void on_tick(int64_t now_ns) override;
  void on_message(const core::message& m) override;
  void on_batch_end() override;
  bool finished() const override;

 private:
  void start_drain();

  static constexpr uint8_t op_audit_base = 0x40;  // the audit log writer's own ops

  shard_context ctx_;
  stage_list stages_;
  int listen_fd_;
  metrics_registry* registry_;
  std::unique_ptr<core::buffer_ring> buffers_;
  std::unique_ptr<core::log_writer> audit_;
  bool audit_closing_ = false;
  std::unique_ptr<client_side> clients_;
  std::unique_ptr<upstream_pool> pool_;
  std::unique_ptr<relay> relay_;
  int64_t drain_deadline_ns_ = 0;
};

}  // namespace mcpgate::net
