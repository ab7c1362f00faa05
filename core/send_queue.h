#pragma once

#include <string_view>

#include "core/byte_buffer.h"

namespace mcpgate::core {

// Bytes waiting to go out on one socket, with at most one send in flight. The kernel reads
// from `sending_` until the send completes, so that buffer is frozen meanwhile; new bytes go to
// `queued_`, which becomes the next `sending_` once the first drains.
class send_queue {
 public:
  void append(std::string_view bytes) { queued_.append(bytes); }
  bool empty() const { return sending_.empty() && queued_.empty(); }
  bool in_flight() const { return in_flight_; }
  size_t pending_bytes() const { return sending_.size() + queued_.size(); }

  // The bytes to hand to the next send, or empty when nothing is due or a send is in flight.
  // Marks a send in flight when it returns bytes.
  std::string_view next() {
    if (in_flight_) return {};
    if (sending_.empty()) {
      if (queued_.empty()) return {};
      sending_.swap(queued_);
    }
    in_flight_ = true;
    return sending_.view();
  }

  // The send completed with n bytes written (a short send leaves the rest for next()).
  void sent(size_t n) {
    in_flight_ = false;
    last_short_ = n < sending_.size();
    sending_.consume(n);
  }
  // The last send wrote less than it was given: the socket's buffer was full then.
  bool last_send_short() const { return last_short_; }

  // Gives the buffers' memory back when everything has been sent: a connection idling between
  // requests then holds none (10,000 idle keep-alive clients would otherwise keep 8 KiB each).
  void release_if_drained() {
    if (in_flight_ || !empty()) return;
    sending_.shrink_if_above(0);
    queued_.shrink_if_above(0);
  }

  // Forgets everything (the connection is closing); only legal with no send in flight.
  void clear() {
    sending_.clear();
    queued_.clear();
  }

 private:
  byte_buffer sending_;
  byte_buffer queued_;
  bool in_flight_ = false;
  bool last_short_ = false;
};

}  // namespace mcpgate::core
