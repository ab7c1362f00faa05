#pragma once

// `mcpgate approvals list|approve|deny`: the admin listener's approval routes
// (net/approval/admin_routes.h) from the command line.

#include <string>
#include <vector>

namespace mcpgate::tools {

// args: what follows the word "approvals". Exit code: 0 done, 1 refused or unreachable, 2 a
// usage error.
int approvals_main(const std::vector<std::string>& args);

}  // namespace mcpgate::tools
