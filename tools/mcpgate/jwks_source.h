#pragma once

// Where the issuer's key set comes from, and the thread that reads it again when a token names
// a key the set lacks (control plane: a file read or an HTTP fetch never runs on a shard).

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "policy/oauth.h"

namespace mcpgate::tools {

// The text of the key set `where` names: an http:// or https:// URL (verified against `ca`, a
// PEM file, or the system's store), or a file (relative to base_dir). Throws
// std::runtime_error naming the cause.
std::string read_key_set(const std::string& where, const std::string& base_dir,
                         const std::string& ca);

// Re-reads the key set a refresh is asked for (policy::key_source::want_refresh), at most once
// per the source's min_refresh_s, and swaps it in when it parses; a failure is logged and the
// old set stays. One per process; watch() moves it to a reloaded configuration's source.
class jwks_refresher {
 public:
  jwks_refresher();
  ~jwks_refresher();
  jwks_refresher(const jwks_refresher&) = delete;
  jwks_refresher& operator=(const jwks_refresher&) = delete;

  // Null: nothing to refresh.
  void watch(std::shared_ptr<const policy::oauth_settings> oauth, std::string base_dir);

 private:
  void run();

  int wake_fd_;
  std::mutex mu_;
  std::shared_ptr<const policy::oauth_settings> oauth_;
  std::string base_dir_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mcpgate::tools
