#pragma once

// The stages an exchange passes before it may go upstream, in the manner of Envoy's filter
// chain and HAProxy's stream analysers: each stage looks at the exchange and says go on, stop
// here with a reply (it filled exchange::reply), or hold. A held exchange parks: no thread
// waits, the shard keeps serving, the client connection stays watched for close and the
// exchange's deadline runs. It goes on when a message for it reaches the shard (from a timer,
// the control thread, another shard, an I/O thread) and the holding stage's resume() says so,
// or ends when the client leaves, the gateway drains or the deadline passes (cancel(), then an
// audit line saying which). The exchange, never a stage, owns the cursor: a stage does not call
// the next one.

#include <cstdint>
#include <string_view>

#include "core/mailbox.h"

namespace mcpgate::net {

struct exchange;
class shard_context;

enum class stage_result : uint8_t {
  proceed,  // the next stage, or upstream after the last
  replied,  // answered by the gateway: exchange::reply holds the answer
  held,     // parked until resume(), cancel() or the deadline
};

// Head stages run once a request head is complete (its body may still be arriving); body
// stages once the whole request is in.
enum class stage_phase : uint8_t { head, body };

// What a stage says when the deadline of a hold passes (stage::expired).
enum class hold_expiry : uint8_t { gateway_error, replied, extended };

// Why a held exchange ended without going on.
enum class hold_end : uint8_t { client_left, deadline, draining };

class stage {
 public:
  virtual ~stage() = default;
  // For audit lines and messages ("decide", "approval").
  virtual std::string_view name() const = 0;
  virtual stage_phase phase() const = 0;

  // Runs for one exchange. Stages see the exchange's own configuration generation
  // (exchange::config), never a newer one.
  virtual stage_result run(exchange& ex, shard_context& shard) = 0;

  // A message for an exchange this stage holds (see exchange_token). Default: go on.
  virtual stage_result resume(exchange&, shard_context&, const core::message&) {
    return stage_result::proceed;
  }
  // A held exchange ends without going on: give back what run() took.
  virtual void cancel(exchange&, shard_context&, hold_end) {}
  // The hold's deadline passed. gateway_error: the gateway's "held past its deadline" error
  // answers (after cancel(deadline)); replied: the stage filled exchange::reply with its own
  // answer (likewise); extended: the hold goes on until exchange::hold_until_ns, and the
  // client gets exchange::interim meanwhile (a progress notification in the response stream).
  virtual hold_expiry expired(exchange&, shard_context&) { return hold_expiry::gateway_error; }
};

}  // namespace mcpgate::net
