#include "tools/mcpgate/file_write.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace mcpgate::tools {

std::optional<std::string> write_file_atomically(const std::string& path, const std::string& text,
                                                 const std::string& what) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return what + ": cannot write " + tmp + ": " + std::strerror(errno);
    out << text;
    out.flush();
    if (!out) return what + ": cannot write " + tmp + ": " + std::strerror(errno);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return what + ": cannot write " + path + ": " + ec.message();
  }
  return std::nullopt;
}

}  // namespace mcpgate::tools
