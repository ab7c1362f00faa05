#pragma once

// The little the stdio bridge must know of a JSON-RPC message to route it: requests by id to
// the child and back, progress by token, everything else by session. Read from the bodies the
// gateway forwards and from every line a stdio child writes, so it takes any bytes.

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mcpgate::net {

struct stdio_message {
  enum class kind : uint8_t { invalid, request, notification, response };
  kind what = kind::invalid;
  // "s:" + the unescaped string id, or "n:" + the number as written: ids compare by value,
  // whichever way each side escapes them. Empty when there is no usable id.
  std::string id_key;
  size_t id_offset = 0, id_length = 0;  // the id's token in the scanned text
  bool initialize = false;              // method "initialize"
  // Normalised like id_key: a request's params._meta.progressToken, a progress notification's
  // params.progressToken.
  std::string progress_token;
  // A notification's params.requestId (notifications/cancelled), normalised like id_key, and
  // its token in the scanned text.
  std::string request_id_key;
  size_t request_id_offset = 0, request_id_length = 0;
};

// One per bridge; its buffers are reused from message to message.
class stdio_message_scanner {
 public:
  // Reads one message, or a batch of them. False when the text is not a JSON-RPC message or
  // batch (then messages() is unspecified).
  bool scan(std::string_view text);
  const std::vector<stdio_message>& messages() const { return messages_; }
  bool batch() const { return batch_; }

 private:
  void scan_object(simdjson::ondemand::object object, stdio_message& m);

  simdjson::ondemand::parser parser_;
  std::string padded_;
  std::vector<stdio_message> messages_;
  bool batch_ = false;
};

}  // namespace mcpgate::net
