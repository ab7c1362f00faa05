#pragma once

// Randomness from the kernel (getrandom), for ids and keys a client must not guess.

#include <cstddef>
#include <string>

namespace mcpgate::core {

// Fills `out` with `n` random bytes; waits for the kernel's pool at early boot, never fails.
void random_bytes(void* out, size_t n);

// `bytes` random bytes as lowercase hex (2 × bytes characters).
std::string random_hex(size_t bytes);

}  // namespace mcpgate::core
