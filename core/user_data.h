#pragma once

#include <cstdint>

namespace mcpgate::core {

// Every submission carries who it belongs to in its 64-bit user_data: the operation, the slot
// of the owner in its shard's table, and the slot's generation. A completion that arrives after
// its slot was freed and reused carries an old generation and is recognised as stale.
struct op_tag {
  uint8_t op;     // what the submission was (owner-defined numbering)
  uint32_t slot;  // index in the owner's table
  uint32_t gen;   // 24 bits: generation of that slot
};

inline constexpr uint32_t gen_mask = 0xffffff;

constexpr uint64_t encode(op_tag t) {
  return (uint64_t{t.op} << 56) | (uint64_t{t.gen & gen_mask} << 32) | t.slot;
}
constexpr op_tag decode(uint64_t v) {
  return {static_cast<uint8_t>(v >> 56), static_cast<uint32_t>(v),
          static_cast<uint32_t>(v >> 32) & gen_mask};
}
static_assert(decode(encode({7, 123456, 0xabcdef})).op == 7);
static_assert(decode(encode({7, 123456, 0xabcdef})).slot == 123456);
static_assert(decode(encode({7, 123456, 0xabcdef})).gen == 0xabcdef);

}  // namespace mcpgate::core
