#pragma once

#include <atomic>
#include <cstdint>

namespace mcpgate::net {

// Counters one shard writes and the admin listener reads. Single writer: the shard adds with
// relaxed loads and stores (no locked instructions); readers sum over shards.
struct shard_stats {
  struct counter {
    std::atomic<uint64_t> v{0};
    void add(uint64_t n = 1) {
      v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void sub(uint64_t n = 1) {
      v.store(v.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
    }
    uint64_t get() const { return v.load(std::memory_order_relaxed); }
  };

  counter connections_accepted;
  counter connections_open;
  counter connections_rejected;  // over max_connections
  counter requests;
  counter upstream_connects;
  counter upstream_reused;
  counter upstream_errors;
  counter responses_relayed;
  counter sse_streams_open;
  counter bytes_in;
  counter bytes_out;
};

}  // namespace mcpgate::net
