#include "net/exchange/shard.h"

#include <unistd.h>

#include "core/user_data.h"

namespace mcpgate::net {
namespace {

constexpr int64_t ms = 1'000'000;

uint16_t port_of(int fd) {
  return fd >= 0 ? bound_port(fd) : 0;
}

}  // namespace

proxy_shard::proxy_shard(std::shared_ptr<const gateway_config> config, int listen_fd,
                         shard_stats& stats, metrics_registry* metrics, stage_list extra_stages)
    : ctx_(std::move(config), port_of(listen_fd), stats),
      stages_(make_stages(std::move(extra_stages))),
      listen_fd_(listen_fd),
      registry_(metrics) {}

proxy_shard::~proxy_shard() {
  if (registry_ && audit_ && ctx_.reactor) registry_->attach_audit(ctx_.reactor->id(), nullptr);
  if (!clients_ && listen_fd_ >= 0) ::close(listen_fd_);  // never started: the fd is still ours
  relay_.reset();
  pool_.reset();
  clients_.reset();  // closes its connections and the listening socket
}

void proxy_shard::on_start(core::reactor& r) {
  ctx_.reactor = &r;
  const gateway_config& config = *ctx_.config();
  buffers_ =
      std::make_unique<core::buffer_ring>(r.io(), 0, config.recv_buffers, config.recv_buffer_size);
  ctx_.buffers = buffers_.get();
  if (config.audit.file)
    audit_ = std::make_unique<core::log_writer>(r.io(), config.audit.file, config.audit.writer,
                                                op_audit_base);
  ctx_.audit = audit_.get();
  if (registry_) {
    ctx_.metrics = &registry_->shard(r.id());
    if (audit_) registry_->attach_audit(r.id(), &audit_->stats());
  }
  ctx_.record =
      std::make_unique<recorder>(r.id(), audit_.get(), ctx_.metrics, config.audit.arguments);
  clients_ = std::make_unique<client_side>(ctx_, stages_, listen_fd_);
  pool_ = std::make_unique<upstream_pool>(r, *buffers_, ctx_.timers, ctx_.stats, ctx_.metrics,
                                          config.idle_timeout_ms);
  relay_ = std::make_unique<relay>(ctx_, *clients_, *pool_);
  clients_->set_forwarder(relay_.get());
  pool_->set_events(relay_.get());
  clients_->start();
}

bool proxy_shard::finished() const {
  return ctx_.draining && clients_->open() == 0 && pool_->open() == 0 && !clients_->accepting() &&
         (!audit_ || (audit_closing_ && !audit_->busy()));
}

void proxy_shard::on_completion(const io_uring_cqe& cqe) {
  core::op_tag t = core::decode(cqe.user_data);
  if (audit_ && audit_->owns(t.op)) {
    audit_->on_completion(cqe);
  } else if (client_side::owns(t.op)) {
    clients_->on_completion(cqe);
  } else if (upstream_pool::owns(t.op)) {
    pool_->on_completion(cqe);
  }
}

void proxy_shard::on_batch_end() {
  if (clients_) clients_->flush_due();
}

void proxy_shard::on_tick(int64_t now) {
  if (ctx_.span_count &&
      (ctx_.draining || now - ctx_.spans_since_ns >= ctx_.config()->trace_flush_ns))
    ctx_.flush_spans();
  if (audit_) {
    audit_->on_tick(now);
    if (ctx_.draining && !audit_closing_ && clients_->open() == 0 && pool_->open() == 0) {
      audit_->flush_and_close();  // every exchange has ended: write what is left, then stop
      audit_closing_ = true;
    }
  }
  ctx_.timers.advance(now, [&](uint64_t tag, int64_t fired) {
    core::op_tag t = core::decode(tag);
    if (t.op == upstream_pool::op_deadline)
      pool_->on_deadline(t.slot, t.gen, fired, now);
    else
      clients_->on_timer(t.op, t.slot, t.gen, fired, now);
  });
  if (ctx_.draining && now >= drain_deadline_ns_) {
    clients_->drain_deadline();
    pool_->close_all();
    // The audit log gets a second past the deadline to write its last lines; then what it
    // still holds is counted as dropped and reported, so the process can end.
    if (audit_ && audit_closing_ && audit_->busy() && now >= drain_deadline_ns_ + 1000 * ms)
      audit_->abandon();
  }
}

void proxy_shard::on_message(const core::message& m) {
  switch (static_cast<shard_message>(m.kind)) {
    case shard_message::drain:
      start_drain();
      break;
    case shard_message::reload: {
      auto* fresh = static_cast<std::shared_ptr<const gateway_config>*>(m.ptr);
      ctx_.set_config(std::move(*fresh));
      delete fresh;
      break;
    }
    case shard_message::reopen_audit: {
      auto* file = static_cast<std::shared_ptr<core::log_file>*>(m.ptr);
      if (audit_) audit_->set_file(std::move(*file));
      delete file;
      break;
    }
    case shard_message::resume:
      clients_->on_resume(m);
      break;
  }
}

void proxy_shard::start_drain() {
  if (ctx_.draining) return;
  ctx_.draining = true;
  drain_deadline_ns_ = ctx_.now_ns() + ctx_.config()->drain_timeout_ms * ms;
  clients_->start_drain();
  pool_->close_idle();
}

}  // namespace mcpgate::net
