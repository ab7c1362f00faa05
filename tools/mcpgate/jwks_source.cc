#include "tools/mcpgate/jwks_source.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "core/stderr_log.h"
#include "net/address.h"
#include "tools/mcpgate/http_client.h"

namespace mcpgate::tools {

std::string read_key_set(const std::string& where, const std::string& base_dir,
                         const std::string& ca) {
  if (where.rfind("http://", 0) == 0) {
    net::http_url url = net::parse_http_url(where, "$.oauth.jwks");
    http_reply got = http_request(url.where, "GET", url.path, url.host_header,
                                  "Accept: application/json\r\n", {}, 10'000);
    if (got.status != 200)
      throw std::runtime_error(where + " answered HTTP " + std::to_string(got.status));
    return std::move(got.body);
  }
  if (where.rfind("https://", 0) == 0) {
    http_reply got = https_get(where, ca, 10'000);
    if (got.status != 200)
      throw std::runtime_error(where + " answered HTTP " + std::to_string(got.status));
    return std::move(got.body);
  }
  std::filesystem::path file = where;
  if (file.is_relative() && !base_dir.empty()) file = std::filesystem::path(base_dir) / file;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file.string() + ": " + std::strerror(errno));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

jwks_refresher::jwks_refresher() : wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  thread_ = std::thread([this] { run(); });
}

jwks_refresher::~jwks_refresher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  thread_.join();
  if (oauth_) oauth_->keys->set_wake_fd(-1);
  ::close(wake_fd_);
}

void jwks_refresher::watch(std::shared_ptr<const policy::oauth_settings> oauth,
                           std::string base_dir) {
  std::lock_guard lock(mu_);
  if (oauth_) oauth_->keys->set_wake_fd(-1);
  oauth_ = std::move(oauth);
  base_dir_ = std::move(base_dir);
  if (oauth_) oauth_->keys->set_wake_fd(wake_fd_);
}

void jwks_refresher::run() {
  pthread_setname_np(pthread_self(), "mcpgate-jwks");
  using clock = std::chrono::steady_clock;
  clock::time_point last = clock::now();
  for (;;) {
    pollfd p{wake_fd_, POLLIN, 0};
    ::poll(&p, 1, -1);
    uint64_t n;
    [[maybe_unused]] ssize_t r = ::read(wake_fd_, &n, sizeof n);
    std::shared_ptr<const policy::oauth_settings> oauth;
    std::string base_dir;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      oauth = oauth_;
      base_dir = base_dir_;
    }
    if (!oauth || !oauth->keys->take_wanted()) continue;
    // At most once per min_refresh_s: a stream of tokens with a made-up kid costs one fetch.
    auto earliest = last + std::chrono::seconds(oauth->keys->min_refresh_s());
    if (clock::now() < earliest) {
      int wait_ms = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(earliest - clock::now()).count());
      pollfd q{wake_fd_, POLLIN, 0};
      if (::poll(&q, 1, wait_ms) > 0) {
        std::lock_guard lock(mu_);
        if (stopping_) return;
      }
    }
    last = clock::now();
    try {
      auto keys = policy::jwks::parse(read_key_set(oauth->jwks_source, base_dir, oauth->jwks_ca),
                                      oauth->jwks_source);
      if (keys->size() == 0) throw std::runtime_error("it holds no key to verify with");
      size_t count = keys->size();
      oauth->keys->replace(std::move(keys));
      core::logf(core::log_level::info,
                 "mcpgate: a token named a key the set lacked; %s re-read: %zu keys",
                 oauth->jwks_source.c_str(), count);
    } catch (const std::exception& e) {
      core::logf(core::log_level::warn,
                 "mcpgate: a token named a key the set lacked; re-reading %s failed, the old "
                 "set stays: %s",
                 oauth->jwks_source.c_str(), e.what());
    }
  }
}

}  // namespace mcpgate::tools
