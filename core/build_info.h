#pragma once

namespace mcpgate {

// The version string printed by --version and reported on /metrics.
inline constexpr const char* version = "0.1.0";

}  // namespace mcpgate
