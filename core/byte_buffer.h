#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

namespace mcpgate::core {

// A growable byte buffer that always keeps `padding` readable bytes past its size, so that
// simdjson can parse a body in place (it reads up to 64 bytes beyond the end). Consumed bytes
// at the front are dropped with consume(); the buffer compacts lazily. Not copyable: it is a
// connection's own storage, and views into it stay valid until the next append or consume.
class byte_buffer {
 public:
  static constexpr size_t padding = 64;

  byte_buffer() = default;
  byte_buffer(const byte_buffer&) = delete;
  byte_buffer& operator=(const byte_buffer&) = delete;
  ~byte_buffer() { std::free(data_); }

  const char* data() const { return data_ + begin_; }
  char* data() { return data_ + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return end_ == begin_; }
  std::string_view view() const { return {data(), size()}; }
  size_t capacity_bytes() const { return capacity_; }

  void append(const void* bytes, size_t n) {
    reserve_tail(n);
    std::memcpy(data_ + end_, bytes, n);
    end_ += n;
  }
  void append(std::string_view s) { append(s.data(), s.size()); }

  // Drops n bytes from the front.
  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  void clear() { begin_ = end_ = 0; }

  void swap(byte_buffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(capacity_, other.capacity_);
    std::swap(begin_, other.begin_);
    std::swap(end_, other.end_);
  }

  // Frees the storage when it grew past `keep` bytes (a large body should not pin memory on an
  // idle keep-alive connection).
  void shrink_if_above(size_t keep) {
    if (capacity_ > keep && empty()) {
      std::free(data_);
      data_ = nullptr;
      capacity_ = begin_ = end_ = 0;
    }
  }

 private:
  void reserve_tail(size_t n) {
    if (end_ + n + padding <= capacity_) return;
    size_t live = end_ - begin_;
    if (begin_ > 0 && live + n + padding <= capacity_) {
      std::memmove(data_, data_ + begin_, live);
      begin_ = 0;
      end_ = live;
      return;
    }
    size_t want = capacity_ ? capacity_ * 2 : 4096;
    while (want < live + n + padding) want *= 2;
    char* fresh = static_cast<char*>(std::malloc(want));
    if (!fresh) std::abort();  // out of memory: no request can be served correctly
    if (live) std::memcpy(fresh, data_ + begin_, live);
    std::free(data_);
    data_ = fresh;
    capacity_ = want;
    begin_ = 0;
    end_ = live;
  }

  char* data_ = nullptr;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace mcpgate::core
