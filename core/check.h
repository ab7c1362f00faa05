#pragma once

// The assertion ladder. Never for untrusted input: a peer's bytes are answered, not asserted.
//
//   MCPGATE_DEBUG_ASSERT(cond)  invariants worth checking in debug builds only (sanitizer runs)
//   MCPGATE_BUG(cond)           release too: a state that should not happen but can be carried
//                               on from; logged once per site and counted (bug_count()), the
//                               caller then takes its safe path
//   MCPGATE_FATAL(cond)         release too: a state the process cannot continue from; logs and
//                               aborts

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace mcpgate::core {

// Bugs seen since start, for the metrics (mcpgate_internal_bugs_total).
inline std::atomic<uint64_t>& bug_counter() {
  static std::atomic<uint64_t> count{0};
  return count;
}
inline uint64_t bug_count() {
  return bug_counter().load(std::memory_order_relaxed);
}

// True when `failed`: logs the first time per site, counts every time.
inline bool report_bug(bool failed, std::atomic<bool>& reported, const char* what, const char* file,
                       int line) {
  if (!failed) return false;
  bug_counter().fetch_add(1, std::memory_order_relaxed);
  if (!reported.exchange(true, std::memory_order_relaxed))
    std::fprintf(stderr,
                 "mcpgate: internal bug at %s:%d: %s (counted in mcpgate_internal_bugs_total)\n",
                 file, line, what);
  return true;
}

[[noreturn]] inline void fatal(const char* what, const char* file, int line) {
  std::fprintf(stderr, "mcpgate: fatal internal error at %s:%d: %s\n", file, line, what);
  std::abort();
}

}  // namespace mcpgate::core

#ifdef NDEBUG
#define MCPGATE_DEBUG_ASSERT(cond) ((void)0)
#else
#define MCPGATE_DEBUG_ASSERT(cond) \
  ((cond) ? (void)0 : ::mcpgate::core::fatal("assertion failed: " #cond, __FILE__, __LINE__))
#endif

// Evaluates to true when the condition does NOT hold (a bug was seen): `if (MCPGATE_BUG(x)) ...`
#define MCPGATE_BUG(cond)                                                             \
  ([&]() {                                                                            \
    static std::atomic<bool> reported{false};                                         \
    return ::mcpgate::core::report_bug(!(cond), reported, #cond, __FILE__, __LINE__); \
  }())

#define MCPGATE_FATAL(cond) \
  ((cond) ? (void)0 : ::mcpgate::core::fatal("check failed: " #cond, __FILE__, __LINE__))
