#include "core/random.h"

#include <sys/random.h>

#include <cerrno>

namespace mcpgate::core {

void random_bytes(void* out, size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::getrandom(p + got, n - got, 0);
    if (r > 0) got += static_cast<size_t>(r);
  }
}

std::string random_hex(size_t bytes) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string raw(bytes, '\0');
  random_bytes(raw.data(), bytes);
  std::string out;
  out.reserve(bytes * 2);
  for (unsigned char b : raw) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

}  // namespace mcpgate::core
