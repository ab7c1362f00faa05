#pragma once

#include <atomic>
#include <cstdint>

#include "net/observe/shard_stats.h"

namespace mcpgate::net {

// What the bridge counts; written by the bridge thread, read by the metrics renderer.
struct stdio_bridge_stats {
  shard_stats::counter processes_running;
  shard_stats::counter sessions_open;
  shard_stats::counter spawned;
  shard_stats::counter spawn_failures;
  shard_stats::counter exits;    // every child that ended, whoever ended it
  shard_stats::counter crashes;  // ended on its own before min_uptime_ms
  shard_stats::counter refused_over_cap;
  shard_stats::counter refused_over_identity_cap;
  shard_stats::counter refused_backoff;
  shard_stats::counter messages_dropped;  // server messages with nowhere to go
  std::atomic<int64_t> backoff_until_ns{0};
};

}  // namespace mcpgate::net
